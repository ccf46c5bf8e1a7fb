"""Where kouiki keeps its state: one data directory, ``KOUIKI_HOME`` (default ``./.kouiki``).

Layout (the embedded default; every path is derived from the home so tests can use a temporary one):

    landing/<city>/<sha256>.<ext>      raw uploads, content-addressed, never overwritten
    catalog.sqlite                      uploads, releases, audit log (SQLAlchemy; Postgres when a URL is given)
    lake/<area>/<dataset>/city=<code>/  Parquet written by city partitions (staged, quarantine, findings)
    warehouse.duckdb                    the one DuckDB database (views/tables over the lake); one writer
    reports/<city>/<upload_id>.{html,json}
    releases/<dataset>/<n>/             published releases (immutable); releases/<dataset>/latest.json
    dagster/                            DAGSTER_HOME (SQLite run/event storage)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kouiki.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    """All locations under one kouiki home."""

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def inbox(self) -> Path:
        """Where files arrive before landing (uploads dropped per city: inbox/<city>/<file>)."""
        return self.home / "inbox"

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def warehouse_db(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def private(self) -> Path:
        """Never published: 加工方法等情報, extract logs."""
        return self.home / "private"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def catalog_url(self) -> str:
        return os.environ.get("KOUIKI_CATALOG_URL") or f"sqlite:///{self.home / 'catalog.sqlite'}"

    def ensure(self) -> Paths:
        """Create the layout; a home that cannot be created or written is a :class:`ConfigError` (one line)."""
        try:
            for p in (self.landing, self.inbox, self.lake, self.reports, self.releases, self.private,
                      self.dagster_home, self.tmp):
                p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{exc.filename or self.home}: KOUIKI_HOME を作成できません / cannot create the kouiki "
                              f"home ({exc.strerror}) — 書き込めるフォルダを KOUIKI_HOME に指定してください / set "
                              "KOUIKI_HOME to a writable folder") from None
        for p in (self.home, self.tmp):
            if not os.access(p, os.W_OK):
                raise ConfigError(f"{p}: 書き込めません / not writable — 書き込めるフォルダを KOUIKI_HOME に指定するか"
                                  "権限を直してください / set KOUIKI_HOME to a writable folder or fix its permissions")
        return self


def kouiki_home() -> Path:
    return Path(os.environ.get("KOUIKI_HOME", REPO_ROOT / ".kouiki")).resolve()


def get_paths() -> Paths:
    """The paths of the current kouiki home, created if missing."""
    return Paths(kouiki_home()).ensure()


def members_file() -> Path:
    """The member registry (YAML). ``KOUIKI_MEMBERS`` points elsewhere (tests, the all-Japan scale run)."""
    return Path(os.environ.get("KOUIKI_MEMBERS", REPO_ROOT / "config" / "members.yaml"))
