"""Times as people read them: Japan time, labelled (``2026-12-03 14:45 JST``). Imports nothing heavy, so the
CLI can use it without paying for the report's libraries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9), "JST")


def format_jst(moment: datetime | None) -> str:
    """``2026-12-03 14:45 JST``: a person in a city office reads Japan time, labelled (naive times are UTC, as
    the catalog stores them); empty for no time."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(JST).strftime("%Y-%m-%d %H:%M JST")
