"""The quality summary per city: published rows, and the number of findings of the city's latest checks.

Only counts leave this module: findings rows themselves (values, line numbers) stay private.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from portal.catalogue import City

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CityQuality:
    city: City
    rows: int
    errors: int | None      # None: no findings area to read (the row counts are all we know)
    warnings: int | None


def findings_counts(findings_root: Path, dataset_id: str) -> dict[str, dict[str, int]] | None:
    """{city code: {severity: count}} from ``lake/findings/<dataset>/city=<code>/*.parquet``; None when the
    findings area does not exist."""
    if not findings_root.is_dir():
        return None
    counts: dict[str, dict[str, int]] = {}
    for part in sorted((findings_root / dataset_id).glob("city=*/*.parquet")):
        if part.name.startswith("."):        # a partition being replaced
            continue
        code = part.parent.name.removeprefix("city=")
        try:
            by_severity = _count_part(part)
        except (OSError, pl.exceptions.PolarsError) as exc:
            log.warning("portal: cannot read findings %s: %s", part, exc)
            continue
        city_counts = counts.setdefault(code, {})
        for severity, n in by_severity.items():
            city_counts[severity] = city_counts.get(severity, 0) + n
    return counts


def _count_part(part: Path) -> dict[str, int]:
    frame = pl.scan_parquet(part)
    if "severity" not in frame.collect_schema().names():
        return {"error": int(frame.select(pl.len()).collect().item())}
    grouped = frame.group_by("severity").len().collect()
    return {str(sev or "error"): int(n) for sev, n in grouped.iter_rows()}


def city_quality(cities: list[City], findings: dict[str, dict[str, int]] | None) -> list[CityQuality]:
    """One line per city of the release; counts of findings when the findings area exists."""
    lines = []
    for city in cities:
        if findings is None:
            lines.append(CityQuality(city, city.rows, None, None))
            continue
        mine = findings.get(city.code, {})
        warnings = sum(n for sev, n in mine.items() if sev in ("warning", "warn", "info"))
        lines.append(CityQuality(city, city.rows, sum(mine.values()) - warnings, warnings))
    return lines
