"""The portal's shared state (settings, release store, datastore) and the CKAN-shaped views of datasets.

A CKAN *package* is a dataset's latest release; its *resources* are the files that release lists (the
region-wide table in every format, each city's part, and whatever else the release publishes). Resource ids
are ``<dataset>-<release>-<key>`` (``aed-3-csv``, ``aed-3-excel-csv``, ``aed-3-122033-csv``): stable for a
release, and a new release gives new ids, so a cached id never silently changes content.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

from portal import catalogue
from portal.catalogue import DatasetEntry
from portal.datastore import Datastore
from portal.settings import PortalSettings
from portal.store import Release, ReleaseFile, ReleaseStore
from portal.themes import THEMES, Theme


@dataclass
class PortalService:
    """Everything a request handler needs; one per application."""

    settings: PortalSettings
    store: ReleaseStore = field(init=False)
    datastore: Datastore = field(init=False)
    _city_scopes: dict[tuple[Path, str], tuple[str, str] | None] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.store = ReleaseStore(self.settings.releases)
        self.datastore = Datastore(self.settings.releases)

    def close(self) -> None:
        self.datastore.close()

    # ------------------------------------------------------------------------------------------ lookups

    def entries(self) -> list[DatasetEntry]:
        return catalogue.dataset_entries(self.store)

    def entry(self, dataset_id: str) -> DatasetEntry | None:
        release = self.store.latest(dataset_id)
        return DatasetEntry(release, catalogue.registry_dataset(dataset_id)) if release else None

    def parquet_path(self, release: Release) -> Path | None:
        parquet = release.parquet
        return self.store.resolve(release, parquet.path) if parquet else None

    def scope(self, release: Release, file: ReleaseFile) -> tuple[str, str] | bool | None:
        """How datastore_search reads ``file``: None for the whole table, (column, code) for a city's part,
        False when it cannot be answered from the Parquet file."""
        if not file.table_view or self.parquet_path(release) is None:
            return False
        if file.city_code is None:
            return None
        return self._city_scope(release, file.city_code) or False

    def _city_scope(self, release: Release, code: str) -> tuple[str, str] | None:
        """(code column, code) when filtering the region table on it gives exactly the city's rows."""
        key = (release.folder, code)
        with self._lock:
            if key in self._city_scopes:
                return self._city_scopes[key]
        entry = DatasetEntry(release, catalogue.registry_dataset(release.dataset_id))
        column, parquet = entry.code_column, self.parquet_path(release)
        scope = None
        if column and parquet:
            counted = self.datastore.count(parquet, (column, code))
            scope = (column, code) if counted == release.rows_by_city.get(code) else None
        with self._lock:
            self._city_scopes[key] = scope
        return scope

    # ------------------------------------------------------------------------------------------ CKAN shapes

    def organization(self) -> dict[str, Any]:
        s = self.settings
        return {
            "id": s.publisher_id, "name": s.publisher_id, "title": s.publisher_ja,
            "title_translated": {"ja": s.publisher_ja, "en": s.publisher_en},
            "display_name": s.publisher_ja, "type": "organization", "is_organization": True,
            "state": "active", "approval_status": "approved", "description": "", "image_url": "",
        }

    @staticmethod
    def group(theme: Theme) -> dict[str, Any]:
        return {"id": theme.id, "name": theme.id, "title": theme.ja, "display_name": theme.ja,
                "title_translated": {"ja": theme.ja, "en": theme.en}, "type": "group", "state": "active"}

    @staticmethod
    def tags(entry: DatasetEntry) -> list[str]:
        """Keywords: the theme and the member cities whose rows the dataset holds."""
        return [entry.theme.ja, *(c.name for c in entry.cities)]

    def package(self, entry: DatasetEntry, base_url: str) -> dict[str, Any]:
        release = entry.release
        history = self.store.releases(entry.id)
        created = history[-1].published_at if history else release.published_at
        resources = [self.resource(release, f, base_url, position=i) for i, f in enumerate(release.files)]
        tags = self.tags(entry)
        licence = release.licence
        conformance = release.meta.get("conformance") or {}
        return {
            "id": entry.id, "name": entry.id, "type": "dataset", "state": "active", "private": False,
            "title": entry.title("ja"),
            "title_translated": {"ja": entry.title("ja"), "en": entry.title("en")},
            "notes": entry.description("ja"),
            "notes_translated": {"ja": entry.description("ja"), "en": entry.description("en")},
            "license_id": licence["id"], "license_title": licence["title"], "license_url": licence["url"],
            "version": str(release.number), "metadata_created": created,
            "metadata_modified": release.published_at,
            "author": self.settings.publisher_ja, "maintainer": self.settings.publisher_ja,
            "url": f"{base_url}dataset/{entry.id}", "owner_org": self.settings.publisher_id,
            "organization": self.organization(), "groups": [self.group(entry.theme)],
            "tags": [{"name": t, "display_name": t, "state": "active"} for t in tags], "num_tags": len(tags),
            "resources": resources, "num_resources": len(resources),
            "extras": [{"key": k, "value": str(v)} for k, v in (
                ("release", release.number), ("rows", release.rows),
                ("schema_version", release.schema_version),
                ("content_hash", release.content_hash), ("cities", ",".join(sorted(entry.city_codes))),
                # share of published rows whose every standard column meets the standard (publish/conformance.py)
                *((("conformance", conformance["share_rows_conforming"]),) if conformance else ()))],
            "conformance": conformance or None,
            "rows": release.rows,
            "cities": [{"code": c.code, "name": c.full_name, "rows": c.rows} for c in entry.cities],
            "releases": [self.release_summary(r, base_url) for r in history],
        }

    def release_summary(self, release: Release, base_url: str) -> dict[str, Any]:
        return {"number": release.number, "published_at": release.published_at, "rows": release.rows,
                "content_hash": release.content_hash,
                "files": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256,
                           "url": self.download_url(release, f, base_url)} for f in release.files]}

    @staticmethod
    def download_url(release: Release, file: ReleaseFile, base_url: str) -> str:
        return f"{base_url}download/{release.dataset_id}/{release.number}/{url_quote(file.path)}"

    def resource(self, release: Release, file: ReleaseFile, base_url: str,
                 position: int = 0) -> dict[str, Any]:
        name_ja, name_en = resource_names(release, file)
        return {
            "id": release.resource_prefix + file.key, "package_id": release.dataset_id, "position": position,
            "name": name_ja, "name_translated": {"ja": name_ja, "en": name_en},
            "description": "", "format": file.format, "mimetype": file.media_type.split(";")[0],
            "url": self.download_url(release, file, base_url), "url_type": None,
            "size": file.bytes, "hash": file.sha256, "state": "active",
            "created": release.published_at, "last_modified": release.published_at,
            "datastore_active": self.scope(release, file) is not False,
            "release": release.number, "city_code": file.city_code, "path": file.path,
        }


def resource_names(release: Release, file: ReleaseFile) -> tuple[str, str]:
    """Readable names (ja, en) of a release file, e.g. "市川市 CSV（UTF-8）"."""
    if file.for_excel:
        kind_ja, kind_en = "CSV（Excel用・BOM付きUTF-8）", "CSV for Excel (UTF-8 with BOM)"
    elif file.format == "CSV":
        kind_ja, kind_en = "CSV（UTF-8）", "CSV (UTF-8)"
    else:
        kind_ja = kind_en = file.format
    if file.city_code:
        place = catalogue.city(file.city_code)
        return f"{place.name} {kind_ja}", f"{place.name} ({place.code}) {kind_en}"
    if file.table_view:
        return f"{release.title_ja} {kind_ja}", f"{release.title_en} {kind_en}"
    return f"{file.name}", f"{file.name}"


def theme_groups() -> list[dict[str, Any]]:
    return [PortalService.group(t) for t in THEMES]
