"""Dagster resources: where kouiki's state lives. Assets never build paths themselves.

Locally everything is under one kouiki home (DuckDB file, Parquet lake, SQLite catalog); pointing the home at
another place, or the catalog at PostgreSQL (``KOUIKI_CATALOG_URL``), is a resource change, not a code change.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from expectations.registry import Registry, default_registry
from kouiki.members import Member, load_members
from kouiki.settings import Paths, kouiki_home


class KouikiHome(ConfigurableResource):
    """The kouiki data directory and the configuration (member registry, schema registry)."""

    home: str = ""          # empty: $KOUIKI_HOME or ./.kouiki
    members_file: str = ""  # empty: $KOUIKI_MEMBERS or config/members.yaml

    def paths(self) -> Paths:
        return Paths(Path(self.home).resolve() if self.home else kouiki_home()).ensure()

    def registry(self) -> Registry:
        return default_registry()

    def members(self) -> list[Member]:
        return load_members(Path(self.members_file) if self.members_file else None)
