"""Dagster resources: where kouiki's state lives. Assets never build paths themselves.

Locally everything is under one kouiki home (DuckDB file, Parquet lake, SQLite catalog); pointing the home at
another place, the catalog at PostgreSQL (``KOUIKI_CATALOG_URL``) or the lake at object storage
(``KOUIKI_LAKE_URL``) is a resource change, not a code change.

The resource is the pipeline's face of :class:`kouiki.settings.Settings` (the one settings object of every entry
point): its fields are the shared variables of the settings table. Every variable that is set is given to Dagster
as an ``EnvVar`` (:meth:`KouikiHome.from_env`), so the UI shows which variable the value comes from and never the
value itself (a catalog URL may hold a password). A field left empty means one thing everywhere: ``Settings``
reads the variable when the run builds its settings, and applies the table's default when it is unset — the
defaults live in one place, kouiki/settings.py.

Why not an ``EnvVar`` for an unset variable too: Dagster refuses to resolve an ``EnvVar`` whose variable is unset
when the run starts, and declaring the unset ones empty at load does not survive a process that removes a
variable after loading the definitions (the test suite does, with ``monkeypatch.delenv``, in nine modules).
"""

from __future__ import annotations

from dagster import ConfigurableResource, EnvVar

from expectations.registry import Registry, default_registry
from kouiki.members import Member, load_members
from kouiki.settings import Paths, Settings

# resource field → the variable it stands for: the shared rows of kouiki.settings.VARIABLES (a test keeps them equal)
FIELDS = {"home": "KOUIKI_HOME", "members_file": "KOUIKI_MEMBERS", "catalog_url": "KOUIKI_CATALOG_URL",
          "lake_url": "KOUIKI_LAKE_URL", "dagster_pg_url": "KOUIKI_DAGSTER_PG_URL", "schemas": "KOUIKI_SCHEMAS",
          "policies": "KOUIKI_ANONYMISATION_POLICIES", "floors": "KOUIKI_ANONYMISATION_FLOORS",
          "mappings": "KOUIKI_MAPPINGS", "automation": "KOUIKI_AUTOMATION", "file_cache": "KOUIKI_FILE_CACHE"}


class KouikiHome(ConfigurableResource):
    """The kouiki data directory and the configuration (member registry, schema registry). A field left empty in
    code is the environment's value, so ``KouikiHome()`` is the installation's settings and ``KouikiHome(home=…)``
    changes only the home (tests)."""

    home: str = ""            # KOUIKI_HOME
    members_file: str = ""    # KOUIKI_MEMBERS
    catalog_url: str = ""     # KOUIKI_CATALOG_URL
    lake_url: str = ""        # KOUIKI_LAKE_URL
    dagster_pg_url: str = ""  # KOUIKI_DAGSTER_PG_URL
    schemas: str = ""         # KOUIKI_SCHEMAS
    policies: str = ""        # KOUIKI_ANONYMISATION_POLICIES
    floors: str = ""          # KOUIKI_ANONYMISATION_FLOORS
    mappings: str = ""        # KOUIKI_MAPPINGS
    automation: str = ""      # KOUIKI_AUTOMATION
    file_cache: str = ""      # KOUIKI_FILE_CACHE

    @classmethod
    def from_env(cls) -> KouikiHome:
        """The resource the definitions register: an ``EnvVar`` for every variable that is set (as ``Settings``
        reads the environment: empty is unset), the others empty (the default, applied by ``Settings``)."""
        given = Settings.from_env().env
        return cls(**{name: EnvVar(variable) for name, variable in FIELDS.items()
                      if given.get(variable, "").strip()})

    def settings(self) -> Settings:
        """The settings: this resource's non-empty fields over the environment's."""
        return Settings.from_env(overrides={variable: value for name, variable in FIELDS.items()
                                            if (value := getattr(self, name))})

    def paths(self) -> Paths:
        return self.settings().paths().ensure()

    def registry(self) -> Registry:
        return default_registry()

    def members(self) -> list[Member]:
        return load_members(self.settings().members)
