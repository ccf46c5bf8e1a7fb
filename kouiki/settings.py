"""Where kouiki keeps its state: one data directory, ``KOUIKI_HOME`` (default ``./.kouiki``).

Layout (the embedded default; every path is derived from the home so tests can use a temporary one):

    landing/<city>/<sha256>.<ext>      raw uploads, content-addressed, never overwritten
    catalog.sqlite                      uploads, releases, audit log (SQLAlchemy; Postgres when a URL is given)
    lake/<area>/<dataset>/city=<code>/  Parquet written by city partitions (staged, quarantine, findings)
    warehouse.duckdb                    the one DuckDB database (views/tables over the lake); one writer
    reports/<city>/<upload_id>.{html,json}
    releases/<dataset>/<n>/             published releases (immutable); releases/<dataset>/latest.json
    dagster/                            DAGSTER_HOME (SQLite run/event storage)

Every entry point (the pipeline, the CLI, the portal, the upload service) reads its settings from the environment
through one object, :class:`Settings` (``Settings.from_env()``); the pipeline gets the same values as a Dagster
resource with ``EnvVar`` fields (``assets.resources.KouikiHome``), which builds this object. It lives here, not
in a new module, because every entry point already imports this one and it must stay light: ``kouiki inspect``
imports neither Dagster nor pydantic (tests/test_inspect_speed.py). docs/settings.md lists every variable.

``KOUIKI_LAKE_URL`` (an fsspec URL such as ``s3://bucket/kouiki``) moves the lake to object storage, and keeps a
copy of every landed upload and every release there (``<url>/lake``, ``<url>/landing``, ``<url>/releases``); the
catalog, ``warehouse.duckdb``, reports and Dagster's storage stay on local disk under the home.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kouiki.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
# name → (environment variable, default); an unset or empty variable means the default. The one list of the
# settings every entry point shares (docs/settings.md and the README's table say the same).
ENV = {
    "home": ("KOUIKI_HOME", REPO_ROOT / ".kouiki"),
    "catalog_url": ("KOUIKI_CATALOG_URL", None),            # None: SQLite in the home
    "dagster_pg_url": ("KOUIKI_DAGSTER_PG_URL", None),      # None: SQLite under the home's dagster/
    "lake_url": ("KOUIKI_LAKE_URL", None),                  # None: lake, landing and releases in the home
    "members": ("KOUIKI_MEMBERS", REPO_ROOT / "config" / "members.yaml"),
    "schemas": ("KOUIKI_SCHEMAS", None),                    # None: only the built-in expectations/schemas
    "policies": ("KOUIKI_ANONYMISATION_POLICIES", REPO_ROOT / "config" / "anonymisation"),
    "mappings": ("KOUIKI_MAPPINGS", REPO_ROOT / "config" / "mappings"),
    "automation": ("KOUIKI_AUTOMATION", REPO_ROOT / "config" / "automation.yaml"),
    "file_cache": ("KOUIKI_FILE_CACHE", "1"),
}
_OFF = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """The settings every entry point shares, read from the environment once (:meth:`from_env`)."""

    home: Path
    catalog_url: str
    dagster_pg_url: str | None
    lake_url: str | None
    members: Path
    schemas: Path | None
    policies: Path
    mappings: Path
    automation: Path
    file_cache: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: ``os.environ``); an unset or empty variable is its default."""
        raw = {name: _value(os.environ if env is None else env, var, default)
               for name, (var, default) in ENV.items()}
        home = _path(raw["home"]).resolve()
        return cls(
            home=home,
            catalog_url=raw["catalog_url"] or default_catalog_url(home),
            dagster_pg_url=raw["dagster_pg_url"],
            lake_url=lake_url(raw["lake_url"]),
            members=_path(raw["members"]),
            schemas=Path(raw["schemas"]) if raw["schemas"] else None,
            policies=_path(raw["policies"]),
            mappings=_path(raw["mappings"]),
            automation=_path(raw["automation"]),
            file_cache=str(raw["file_cache"]).lower() not in _OFF,
        )

    def paths(self) -> Paths:
        """The home's layout with this catalog and lake (not created: :meth:`Paths.ensure` does that)."""
        return Paths(self.home, lake_url=self.lake_url or "", catalog=self.catalog_url)


def _value(env: Mapping[str, str], var: str, default: object) -> str | None:
    value = env.get(var, "").strip()
    return value or (None if default is None else str(default))


def _path(value: str | None) -> Path:
    assert value is not None, "a setting with a default"
    return Path(value)


def default_catalog_url(home: Path) -> str:
    return f"sqlite:///{home / 'catalog.sqlite'}"


def lake_url(raw: str | None) -> str | None:
    """``KOUIKI_LAKE_URL`` without a trailing slash; a local path is made absolute. None: the home's folders."""
    if not raw:
        return None
    if "://" not in raw:
        return str(Path(raw).resolve())
    if raw.startswith("file://"):
        return str(Path(raw.removeprefix("file://")).resolve())
    return raw.rstrip("/")


def _env_lake_url() -> str:
    return Settings.from_env().lake_url or ""


def _env_catalog() -> str:
    return _value(os.environ, *ENV["catalog_url"]) or ""     # only a URL given: the default follows the home


@dataclass(frozen=True)
class Paths:
    """All locations under one kouiki home, and where the lake is. ``Paths(home)`` alone takes the catalog and
    the lake URL from the environment (:class:`Settings`); :meth:`Settings.paths` passes them explicitly."""

    home: Path
    lake_url: str = field(default_factory=_env_lake_url)    # "": the lake, landing and releases are in the home
    catalog: str = field(default_factory=_env_catalog)      # "": SQLite in the home

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def inbox(self) -> Path:
        """Where files arrive before landing (uploads dropped per city: inbox/<city>/<file>)."""
        return self.home / "inbox"

    @property
    def local_lake(self) -> Path:
        """The lake's folder in the home (where the lake is when ``KOUIKI_LAKE_URL`` is not set)."""
        return self.home / "lake"

    @property
    def lake(self) -> Path | str:
        """The lake root for ``kouiki.lake``: the home's folder, or ``<KOUIKI_LAKE_URL>/lake``."""
        return f"{self.lake_url}/lake" if self.lake_url else self.local_lake

    @property
    def remote_landing(self) -> str | None:
        """The store of record of landed uploads when ``KOUIKI_LAKE_URL`` is set (``<url>/landing``), else None:
        :attr:`landing` is then a working copy, filled from it (``intake.landing.local_copy``)."""
        return f"{self.lake_url}/landing" if self.lake_url else None

    @property
    def remote_releases(self) -> str | None:
        """The store of record of releases when ``KOUIKI_LAKE_URL`` is set (``<url>/releases``), else None:
        :attr:`releases` is then a working copy, filled from it (``publish.remote.pull_releases``)."""
        return f"{self.lake_url}/releases" if self.lake_url else None

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
        return self.catalog or default_catalog_url(self.home)

    def ensure(self) -> Paths:
        """Create the layout; a home that cannot be created or written is a :class:`ConfigError` (one line)."""
        try:
            for p in (self.landing, self.inbox, self.local_lake, self.reports, self.releases, self.private,
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
    return Settings.from_env().home


def get_paths() -> Paths:
    """The paths of the current kouiki home, created if missing."""
    return Settings.from_env().paths().ensure()


def members_file() -> Path:
    """The member registry (YAML). ``KOUIKI_MEMBERS`` points elsewhere (tests, the all-Japan scale run)."""
    return Settings.from_env().members
