"""The portal's shared state (settings, release store, datastore) and the CKAN-shaped views of datasets.

A CKAN *package* is a dataset's latest release; its *resources* are the files that release lists (the
region-wide table in every format, each city's part, and whatever else the release publishes). Resource ids
are ``<dataset>-<release>-<key>`` (``aed-3-csv``, ``aed-3-excel-csv``, ``aed-3-122033-csv``): stable for a
release, and a new release gives new ids, so a cached id never silently changes content.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

import yaml

from portal import catalogue, readings
from portal.catalogue import City, DatasetEntry
from portal.datastore import Datastore
from portal.mirror import ReleaseMirror
from portal.search_index import SearchDocument, SearchIndex, SearchRequest
from portal.settings import PortalSettings
from portal.store import Release, ReleaseFile, ReleaseStore
from portal.themes import OTHER, THEMES, Theme

log = logging.getLogger(__name__)

KOUIKI_NAMESPACE = uuid.UUID("5b1f4e2a-6d0c-5a7e-9c3b-6b6f75696b69")
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
EPOCH_CREATED = "2026-01-01T00:00:00"
INDEX_CHECK_S = 1.0
PACKAGE_CACHE = 4096
DOCUMENT_CACHE = 64
MIN_TAG_LENGTH, MAX_TAG_LENGTH = 2, 100      # ckan.logic.validators
GROUP_IN_PACKAGE = ("id", "name", "title", "display_name", "description", "image_display_url")
VOCABULARIES = Path(__file__).resolve().parent / "vocabularies.yaml"


@dataclass
class PortalService:
    """Everything a request handler needs; one per application."""

    settings: PortalSettings
    store: ReleaseStore = field(init=False)
    datastore: Datastore = field(init=False)
    _city_scopes: dict[tuple[Path, str], tuple[str, str] | None] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _index_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _build_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _index: SearchIndex | None = field(default=None, init=False)
    _index_signature: tuple[tuple[str, int], ...] = field(default=(), init=False)
    _index_checked: float = field(default=0.0, init=False)
    _names_by_uuid: dict[str, str] = field(default_factory=dict, init=False)
    _indexed: dict[str, DatasetEntry] = field(default_factory=dict, init=False)
    _resources_by_uuid: dict[str, str] = field(default_factory=dict, init=False)
    _cities: list[City] = field(default_factory=list, init=False)
    _packages: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict, init=False)
    _documents: dict[tuple[str, ...], tuple[bytes, str]] = field(default_factory=dict, init=False)

    mirror: ReleaseMirror | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        remote = self.settings.remote_releases
        if remote is not None:      # KOUIKI_LAKE_URL: the releases there, copied before serving and kept in step
            self.mirror = ReleaseMirror(remote, self.settings.releases)
            self.mirror.pull()
            self.mirror.start()
        self.store = ReleaseStore(self.settings.releases)
        self.datastore = Datastore(self.settings.releases)

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.stop()
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

    def datastore_ready(self, release: Release, file: ReleaseFile) -> bool:
        """Whether datastore_search can answer for ``file``, judged without reading data (package lists must
        stay cheap): a table file of a release with a Parquet table, and for a city's part a code column.
        datastore_search itself still checks the city's row count (``scope``)."""
        if not file.table_view or release.parquet is None:
            return False
        if file.city_code is None:
            return True
        return DatasetEntry(release, catalogue.registry_dataset(release.dataset_id)).code_column is not None

    def _city_scope(self, release: Release, code: str) -> tuple[str, str] | None:
        """(code column, code) when filtering the region table on it gives exactly the city's rows. All cities
        of a release are checked at once (one grouped count) and remembered."""
        key = (release.folder, code)
        with self._lock:
            if key in self._city_scopes:
                return self._city_scopes[key]
        entry = DatasetEntry(release, catalogue.registry_dataset(release.dataset_id))
        column, parquet = entry.code_column, self.parquet_path(release)
        counted = self.datastore.count_by(parquet, column) if column and parquet else {}
        scopes: dict[tuple[Path, str], tuple[str, str] | None] = {}
        for city_code, rows in release.rows_by_city.items():
            matches = column is not None and counted.get(city_code) == rows
            scopes[(release.folder, city_code)] = (column, city_code) if matches and column else None
        with self._lock:
            self._city_scopes.update(scopes)
            return self._city_scopes.setdefault(key, None)

    # ------------------------------------------------------------------------------------------ search

    def search_index(self) -> SearchIndex:
        """The index of the current releases: rebuilt when a dataset gets a new release (checked at most
        every ``INDEX_CHECK_S`` seconds, by the ``latest.json`` pointers' modification times). While one
        thread rebuilds, the others keep searching the previous index: a new release never stalls searches."""
        now = time.monotonic()
        with self._index_lock:
            current = self._index
            if current is not None and now - self._index_checked < INDEX_CHECK_S:
                return current
            self._index_checked = now
        signature = self.store.signature()
        if current is not None and signature == self._index_signature:
            return current
        if current is None:
            self._build_lock.acquire()
        elif not self._build_lock.acquire(blocking=False):
            return current          # someone else is rebuilding: search the previous index meanwhile
        try:
            if self._index is not None and self._index_signature == signature:
                return self._index
            self._rebuild(signature)
        finally:
            self._build_lock.release()
        assert self._index is not None
        return self._index

    def _rebuild(self, signature: tuple[tuple[str, int], ...]) -> None:
        entries = self.entries()
        index = SearchIndex([self.search_document(e) for e in entries])
        cities = self._find_member_cities(entries)
        resources = {resource_uuid(r, f): r.resource_prefix + f.key
                     for e in entries for r in self.store.releases(e.id) for f in r.files}
        with self._index_lock, self._lock:
            self._resources_by_uuid = resources
            self._index, self._index_signature = index, signature
            self._indexed = {e.id: e for e in entries}
            self._cities = cities
            self._names_by_uuid = {dataset_uuid(e.id): e.id for e in entries}
            self._packages.clear()
            self._documents.clear()

    def document(self, key: tuple[str, ...], build: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str]:
        """A generated document (DCAT serialisations) kept until the releases change: building one takes
        seconds for a page of 100 datasets, serving it again takes nothing."""
        self.search_index()        # clears the documents when a release was published
        with self._lock:
            cached = self._documents.get(key)
        if cached is not None:
            return cached
        made = build()
        with self._lock:
            if len(self._documents) >= DOCUMENT_CACHE:
                self._documents.pop(next(iter(self._documents)))
            self._documents[key] = made
        return made

    def dataset_name(self, name_or_id: str) -> str:
        """The dataset id (CKAN name) for a name or a package UUID ('' when unknown)."""
        if DATASET_NAME.match(name_or_id):
            return name_or_id
        self.search_index()
        return self._names_by_uuid.get(name_or_id.lower(), "")

    def search_document(self, entry: DatasetEntry) -> SearchDocument:
        release = entry.release
        files = release.files
        tags = ckan_tags(entry)
        orgs = [self.settings.publisher_id, *(city_org_name(c.code) for c in entry.cities)]
        return SearchDocument(
            name=entry.id, id=dataset_uuid(entry.id), title=entry.title("ja"),
            metadata_modified=ckan_timestamp(release.published_at),
            metadata_created=ckan_timestamp(self.first_published(entry)),
            license_id=release.licence["id"], version=str(release.number), num_resources=len(files),
            num_tags=len(tags),
            strings={"id": [dataset_uuid(entry.id)], "name": [entry.id], "tags": tags,
                     "groups": [entry.theme.id], "organization": orgs, "owner_org": [self.office_uuid()],
                     "res_format": [f.format for f in files], "license_id": [release.licence["id"]],
                     "type": ["dataset"], "state": ["active"], "capacity": ["public"],
                     "city": [v for c in entry.cities for v in (c.code, c.name, c.full_name)],
                     "version": [str(release.number)], "title_string": [entry.title("ja")],
                     "entity_type": ["package"]},
            texts={"name": entry.id, "title": f"{entry.title('ja')} {entry.title('en')}",
                   "notes": f"{entry.description('ja')} {entry.description('en')}", "tags": " ".join(tags),
                   "groups": f"{entry.theme.id} {entry.theme.ja} {entry.theme.en}",
                   "organization": " ".join([self.settings.publisher_ja, *(c.full_name for c in entry.cities)]),
                   "res_name": " ".join(" ".join(resource_names(release, f)) for f in files),
                   "res_format": " ".join(f.format for f in files),
                   "author": self.settings.publisher_ja, "maintainer": self.settings.publisher_ja,
                   "cities": " ".join(c.full_name for c in entry.cities),
                   # the kana readings of the names and keywords (ひなん finds 避難): portal/readings.yaml
                   "text": " ".join(release.columns) + "\n" + readings.reading(
                       " ".join([entry.title("ja"), entry.description("ja"), entry.theme.ja, *tags,
                                 *(c.full_name for c in entry.cities)]))},
            extras={k: str(v) for k, v in self.extras(entry).items()},
        )

    # ------------------------------------------------------------------------------------------ CKAN shapes

    def office_uuid(self) -> str:
        return stable_uuid("organization", self.settings.publisher_id)

    def organization(self) -> dict[str, Any]:
        """The shared data office: the owner of every dataset."""
        s = self.settings
        return {
            "id": self.office_uuid(), "name": s.publisher_id, "title": s.publisher_ja,
            "title_translated": {"ja": s.publisher_ja, "en": s.publisher_en},
            "display_name": s.publisher_ja, "type": "organization", "is_organization": True,
            "state": "active", "approval_status": "approved", "description": s.publisher_en, "image_url": "",
            "created": EPOCH_CREATED,
        }

    def organizations(self) -> list[dict[str, Any]]:
        """The office, then one organization per member city (a dataset counts for every city whose rows
        it holds), each with ``package_count``."""
        counts = self.field_counts("organization")
        office = {**self.organization(), "package_count": counts.get(self.settings.publisher_id, 0)}
        cities = []
        for place in self.member_cities():
            name = city_org_name(place.code)
            cities.append({
                "id": stable_uuid("organization", name), "name": name, "title": place.full_name,
                "title_translated": {"ja": place.full_name, "en": f"{place.full_name} ({place.code})"},
                "display_name": place.full_name, "type": "organization", "is_organization": True,
                "state": "active", "approval_status": "approved",
                "description": f"全国地方公共団体コード {place.code}", "image_url": "",
                "created": EPOCH_CREATED, "package_count": counts.get(name, 0)})
        return [office, *cities]

    def groups(self) -> list[dict[str, Any]]:
        counts = self.field_counts("groups")
        return [{**group(t), "package_count": counts.get(t.id, 0)} for t in (*THEMES, OTHER)]

    def field_counts(self, field_name: str) -> dict[str, int]:
        result = self.search_index().search(SearchRequest(rows=0, facet_fields=(field_name,), facet_limit=-1))
        return dict(result.facets[field_name])

    def find_resource(self, resource_id: str) -> tuple[Release, ReleaseFile] | None:
        """The release file a resource id (UUID) or alias (``aed-3-csv``) names."""
        found = self.store.resource(resource_id)
        if found is None and len(resource_id) == 36:
            self.search_index()
            alias = self._resources_by_uuid.get(resource_id.lower())
            found = self.store.resource(alias) if alias else None
        return found

    def indexed_entry(self, name: str) -> DatasetEntry | None:
        """The dataset as the search index saw it (search results come from that snapshot)."""
        self.search_index()
        return self._indexed.get(name)

    def member_cities(self) -> list[City]:
        """The member registry's cities and every city that appears in a release, by code (as of the last
        index build)."""
        self.search_index()
        return list(self._cities)

    @staticmethod
    def _find_member_cities(entries: list[DatasetEntry]) -> list[City]:
        codes = {c for e in entries for c in e.city_codes}
        try:
            from kouiki.members import load_members
            codes |= {m.code for m in load_members()}
        except Exception as exc:   # the portal must still answer without the office's configuration
            log.info("portal: member registry unavailable (%s); listing cities found in releases", exc)
        return [catalogue.city(code) for code in sorted(codes)]

    def first_published(self, entry: DatasetEntry) -> str:
        history = self.store.releases(entry.id)
        return history[-1].published_at if history else entry.release.published_at

    def extras(self, entry: DatasetEntry) -> dict[str, Any]:
        release = entry.release
        extras: dict[str, Any] = {
            "release": release.number, "rows": release.rows, "schema_version": release.schema_version,
            "content_hash": release.content_hash, "cities": ",".join(sorted(entry.city_codes)),
            "theme": entry.theme.ja, "published_at": release.published_at}
        conformance = release.meta.get("conformance")
        if isinstance(conformance, dict) and "share_rows_conforming" in conformance:
            # share of published rows whose every standard column meets the standard (publish/conformance.py)
            extras["conformance"] = conformance["share_rows_conforming"]
        return extras

    def package(self, entry: DatasetEntry, base_url: str) -> dict[str, Any]:
        """The CKAN package dict (cached per release and base URL; callers must not change it)."""
        key = (base_url, entry.id, entry.release.number)
        with self._lock:
            cached = self._packages.get(key)
        if cached is not None:
            return cached
        package = self._package(entry, base_url)
        with self._lock:
            if len(self._packages) > PACKAGE_CACHE:
                self._packages.clear()
            self._packages[key] = package
        return package

    def _package(self, entry: DatasetEntry, base_url: str) -> dict[str, Any]:
        release = entry.release
        history = self.store.releases(entry.id)
        resources = [self.resource(release, f, base_url, position=i) for i, f in enumerate(release.files)]
        tags = ckan_tags(entry)
        licence = licence_of(release.licence)
        return {
            "id": dataset_uuid(entry.id), "name": entry.id, "type": "dataset", "state": "active",
            "private": False, "title": entry.title("ja"),
            "title_translated": {"ja": entry.title("ja"), "en": entry.title("en")},
            "notes": entry.description("ja"),
            "notes_translated": {"ja": entry.description("ja"), "en": entry.description("en")},
            "license_id": licence["id"], "license_title": licence["title"], "license_url": licence["url"],
            "version": str(release.number), "metadata_created": ckan_timestamp(self.first_published(entry)),
            "metadata_modified": ckan_timestamp(release.published_at),
            "author": self.settings.publisher_ja, "author_email": None,
            "maintainer": self.settings.publisher_ja, "maintainer_email": None,
            "url": f"{base_url}dataset/{entry.id}", "owner_org": self.office_uuid(),
            "creator_user_id": None, "isopen": True,
            "organization": self.organization(),
            "groups": [{k: v for k, v in group(entry.theme).items() if k in GROUP_IN_PACKAGE}],
            "tags": [{"id": stable_uuid("tag", t), "name": t, "display_name": t, "state": "active",
                      "vocabulary_id": None} for t in tags],
            "num_tags": len(tags), "resources": resources, "num_resources": len(resources),
            "extras": [{"key": k, "value": str(v)} for k, v in self.extras(entry).items()],
            "relationships_as_object": [], "relationships_as_subject": [], "rows": release.rows,
            # per-column conformance (a single object: CKAN keeps it as an extra value)
            "conformance": release.meta.get("conformance") or None,
            # lists of objects outside CKAN's schema would be "__junk" to package_create: kept in one dict
            "kouiki": {"theme": {"id": entry.theme.id, "ja": entry.theme.ja, "en": entry.theme.en},
                       "rows": release.rows,
                       "cities": [{"code": c.code, "name": c.full_name, "rows": c.rows,
                                   "organization": city_org_name(c.code)} for c in entry.cities],
                       "releases": [self.release_summary(r, base_url) for r in history]},
        }

    def release_summary(self, release: Release, base_url: str) -> dict[str, Any]:
        return {"number": release.number, "published_at": ckan_timestamp(release.published_at),
                "rows": release.rows, "content_hash": release.content_hash,
                "files": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256,
                           "url": self.download_url(release, f, base_url)} for f in release.files]}

    @staticmethod
    def download_url(release: Release, file: ReleaseFile, base_url: str) -> str:
        return f"{base_url}download/{release.dataset_id}/{release.number}/{url_quote(file.path)}"

    def resource(self, release: Release, file: ReleaseFile, base_url: str,
                 position: int = 0) -> dict[str, Any]:
        name_ja, name_en = resource_names(release, file)
        published = ckan_timestamp(release.published_at)
        return {
            # CKAN 2.11 accepts only UUIDs as resource ids; the readable id stays usable as an alias
            "id": resource_uuid(release, file), "alias": release.resource_prefix + file.key,
            "package_id": dataset_uuid(release.dataset_id),
            "position": position, "name": name_ja, "name_translated": {"ja": name_ja, "en": name_en},
            "description": "", "format": file.format, "mimetype": file.media_type.split(";")[0],
            "url": self.download_url(release, file, base_url), "url_type": None,
            "size": file.bytes, "hash": f"sha256:{file.sha256}" if file.sha256 else "", "state": "active",
            "created": published, "last_modified": published, "metadata_modified": published,
            "datastore_active": self.datastore_ready(release, file),
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


def group(theme: Theme) -> dict[str, Any]:
    return {"id": stable_uuid("group", theme.id), "name": theme.id, "title": theme.ja,
            "display_name": theme.ja, "title_translated": {"ja": theme.ja, "en": theme.en},
            "description": theme.en, "type": "group", "is_organization": False, "state": "active",
            "approval_status": "approved", "image_url": "", "image_display_url": "", "created": EPOCH_CREATED}


def stable_uuid(kind: str, name: str) -> str:
    """A UUID that never changes for the same thing (CKAN ids are UUIDs; ours derive from names)."""
    return str(uuid.uuid5(KOUIKI_NAMESPACE, f"{kind}:{name}"))


def dataset_uuid(dataset_id: str) -> str:
    return stable_uuid("dataset", dataset_id)


def resource_uuid(release: Release, file: ReleaseFile) -> str:
    return stable_uuid("resource", release.resource_prefix + file.key)


def city_org_name(code: str) -> str:
    return f"city-{code}"


def ckan_timestamp(text: str) -> str:
    """A timestamp as CKAN writes one: naive UTC ISO 8601 (``2026-04-01T09:00:00``), which CKAN's isodate
    validator accepts (it rejects ``+00:00``); '' when unreadable."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat()


def ckan_tag(text: str) -> str:
    """``text`` as a tag CKAN 2.10/2.11 accepts: only word characters, spaces, ``-``, ``_`` and ``.``
    (``防災・安全`` → ``防災 安全``), 2–100 characters; '' when nothing is left."""
    cleaned = "".join(c if c.isalnum() or c in " -_." else " " for c in text)
    cleaned = " ".join(cleaned.split())[:MAX_TAG_LENGTH].strip()
    return cleaned if len(cleaned) >= MIN_TAG_LENGTH else ""


def ckan_tags(entry: DatasetEntry) -> list[str]:
    """Keywords: each word of the theme (防災・安全 → 防災, 安全) and the cities whose rows the dataset holds."""
    words = [*entry.theme.ja.split("・"), *(c.name for c in entry.cities)]
    return list(dict.fromkeys(t for t in (ckan_tag(w) for w in words) if t))


def licence_of(raw: dict[str, str]) -> dict[str, str]:
    """The release's licence with the canonical IRI as ``url`` (the one ckanext-dcat recognises)."""
    known = vocabularies()["licences"].get(raw.get("id", ""))
    if known is None:
        return dict(raw)
    return {"id": raw["id"], "title": raw.get("title") or known["title"], "url": known["iri"],
            "page": raw.get("url", "")}


@functools.cache
def vocabularies() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VOCABULARIES.read_text(encoding="utf-8"))
    return loaded


def theme_groups() -> list[dict[str, Any]]:
    return [group(t) for t in THEMES]
