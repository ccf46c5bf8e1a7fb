"""Dagster resources: where kouiki's state lives. Assets never build paths themselves.

Locally everything is under one kouiki home (DuckDB file, Parquet lake, SQLite catalog); pointing the home at
another place, the catalog at PostgreSQL (``KOUIKI_CATALOG_URL``) or the lake at object storage
(``KOUIKI_LAKE_URL``) is a resource change, not a code change.

The resource is the pipeline's face of :class:`kouiki.settings.Settings` (the one settings object of every entry
point): its fields are the same variables, given to Dagster as ``EnvVar`` so the UI shows which variable a value
comes from and never the value itself (a catalog URL may hold a password).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, EnvVar

from expectations.registry import Registry, default_registry
from kouiki.members import Member, load_members
from kouiki.settings import ENV, Paths, Settings

# resource field → the settings name (kouiki.settings.ENV) it stands for
FIELDS = {"home": "home", "members_file": "members", "catalog_url": "catalog_url", "lake_url": "lake_url",
          "dagster_pg_url": "dagster_pg_url", "schemas": "schemas", "policies": "policies"}


class KouikiHome(ConfigurableResource):
    """The kouiki data directory and the configuration (member registry, schema registry). An empty field is the
    environment's value (:meth:`Settings.from_env`), so ``KouikiHome()`` is the installation's settings."""

    home: str = ""            # KOUIKI_HOME (default ./.kouiki)
    members_file: str = ""    # KOUIKI_MEMBERS (default config/members.yaml)
    catalog_url: str = ""     # KOUIKI_CATALOG_URL (default SQLite in the home)
    lake_url: str = ""        # KOUIKI_LAKE_URL (default: the lake in the home)
    dagster_pg_url: str = ""  # KOUIKI_DAGSTER_PG_URL (default SQLite under the home)
    schemas: str = ""         # KOUIKI_SCHEMAS (default: the built-in schemas only)
    policies: str = ""        # KOUIKI_ANONYMISATION_POLICIES (default config/anonymisation)

    @classmethod
    def from_env(cls) -> KouikiHome:
        """The resource the definitions register: every variable that is set, as an ``EnvVar``."""
        fields: dict[str, Any] = {name: EnvVar(ENV[setting][0]) for name, setting in FIELDS.items()
                                  if os.environ.get(ENV[setting][0], "").strip()}
        return cls(**fields)

    def settings(self) -> Settings:
        """The settings: this resource's fields over the environment's."""
        given = {ENV[setting][0]: value for name, setting in FIELDS.items() if (value := getattr(self, name))}
        return Settings.from_env({**os.environ, **given})

    def paths(self) -> Paths:
        return self.settings().paths().ensure()

    def registry(self) -> Registry:
        return default_registry()

    def members(self) -> list[Member]:
        return load_members(Path(self.members_file) if self.members_file else None)
