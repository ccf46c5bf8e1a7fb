"""Reading the published releases tree, and nothing else.

    releases/<dataset>/latest.json        pointer to the newest complete release
    releases/<dataset>/<n>/metadata.json  what the release holds; its "files" list is the only thing served

Folders whose name is not a number (``.incomplete-…``) are releases being written and are ignored, as is a
numbered folder newer than ``latest.json`` (renamed into place, pointer not moved yet). A file is served only
when its path is listed in the release's metadata.json and, with every symlink resolved, still lies inside
that release's own folder.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

log = logging.getLogger(__name__)

DATASET_ID = re.compile(r"^[a-z][a-z0-9_]*$")
RELEASE_NUMBER = re.compile(r"^[1-9][0-9]{0,8}$")
RESOURCE_ID = re.compile(
    r"^(?P<dataset>[a-z][a-z0-9_]*)-(?P<number>[1-9][0-9]{0,8})-(?P<key>[a-z0-9][a-z0-9-]*)$")
CITY_PART = re.compile(r"^(?P<code>\d{6})_(?P<rest>.+)$")
# A release may publish this file (DCAT description of itself); it is linked and served when present.
DCAT_FILE = "dcat.jsonld"

FORMATS = {
    ".csv": ("CSV", "text/csv; charset=utf-8"),
    ".parquet": ("Parquet", "application/vnd.apache.parquet"),
    ".json": ("JSON", "application/json"),
    ".geojson": ("GeoJSON", "application/geo+json"),
    ".jsonld": ("JSON-LD", "application/ld+json"),
    ".xlsx": ("XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ".zip": ("ZIP", "application/zip"),
    ".txt": ("TXT", "text/plain; charset=utf-8"),
    ".md": ("Markdown", "text/markdown; charset=utf-8"),
}


@dataclass(frozen=True)
class ReleaseFile:
    """One file listed in a release's metadata.json."""

    path: str                 # as listed, relative to the release folder (POSIX separators)
    bytes: int
    sha256: str
    key: str                  # stable within the release: "csv", "excel-csv", "parquet", "122033-csv", …
    city_code: str | None     # set for a city's part (cities/<code>_…)
    table_view: bool          # this file is the release's table (or a city's part of it) in some format

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix.lower()

    @property
    def format(self) -> str:
        return FORMATS.get(self.suffix, (self.suffix.lstrip(".").upper() or "FILE", ""))[0]

    @property
    def media_type(self) -> str:
        return FORMATS.get(self.suffix, ("", "application/octet-stream"))[1]

    @property
    def for_excel(self) -> bool:
        """The UTF-8-with-BOM copy made for Excel (``…_excel.csv``)."""
        return self.suffix == ".csv" and PurePosixPath(self.path).stem.endswith("_excel")


@dataclass(frozen=True)
class Release:
    """One numbered, complete release of a dataset, as its metadata.json describes it."""

    dataset_id: str
    number: int
    folder: Path
    meta: dict[str, Any]

    @property
    def resource_prefix(self) -> str:
        return f"{self.dataset_id}-{self.number}-"

    @property
    def title_ja(self) -> str:
        return str((self.meta.get("title") or {}).get("ja") or self.dataset_id)

    @property
    def title_en(self) -> str:
        return str((self.meta.get("title") or {}).get("en") or self.title_ja)

    @property
    def published_at(self) -> str:
        return str(self.meta.get("published_at") or "")

    @property
    def rows(self) -> int:
        return int(self.meta.get("rows") or 0)

    @property
    def rows_by_city(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in (self.meta.get("rows_by_city") or {}).items()}

    @property
    def licence(self) -> dict[str, str]:
        raw = self.meta.get("licence") or {}
        return {key: str(raw.get(key, "")) for key in ("id", "title", "url")}

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.meta.get("columns") or []]

    @property
    def schema_version(self) -> str:
        return str(self.meta.get("schema_version") or "")

    @property
    def content_hash(self) -> str:
        return str(self.meta.get("content_hash") or "")

    @cached_property
    def files(self) -> tuple[ReleaseFile, ...]:
        """The listed files that really are inside the release folder (a listed path that is missing,
        absolute, climbs out with ``..`` or is a symlink leading outside is no file of the release)."""
        listed = _release_files(self.dataset_id, self.meta.get("files") or [])
        return tuple(f for f in listed if _inside(self.folder / f.path, self.folder))

    def file(self, key: str) -> ReleaseFile | None:
        return next((f for f in self.files if f.key == key), None)

    def file_by_path(self, path: str) -> ReleaseFile | None:
        return next((f for f in self.files if f.path == path), None)

    @property
    def parquet(self) -> ReleaseFile | None:
        """The region-wide Parquet file, which answers previews and datastore_search."""
        return self.file("parquet")

    @property
    def region_files(self) -> list[ReleaseFile]:
        return [f for f in self.files if f.city_code is None]

    def city_files(self, code: str) -> list[ReleaseFile]:
        return [f for f in self.files if f.city_code == code]

    @property
    def dcat_file(self) -> ReleaseFile | None:
        listed = self.file_by_path(DCAT_FILE)
        if listed:
            return listed
        # Published beside metadata.json but not listed in it: still a public file of the release.
        if _inside(self.folder / DCAT_FILE, self.folder):
            size = (self.folder / DCAT_FILE).stat().st_size
            return ReleaseFile(DCAT_FILE, size, "", "dcat-jsonld", city_code=None, table_view=False)
        return None


def file_key(dataset_id: str, path: str) -> tuple[str, str | None]:
    """(resource key, city code) of a listed path: ``aed_excel.csv`` → ``excel-csv``,
    ``cities/122033_aed.csv`` → ``122033-csv``; the dataset id is dropped (the resource id starts with it)."""
    pure = PurePosixPath(path)
    stem, ext = pure.stem, pure.suffix.lstrip(".")
    city = None
    folders = list(pure.parent.parts)
    if folders == ["cities"] and (match := CITY_PART.match(stem)):
        city, stem = match["code"], match["rest"]
        folders = []
    if stem == dataset_id:
        stem = ""
    elif stem.startswith(dataset_id + "_"):
        stem = stem[len(dataset_id) + 1:]
    raw = "-".join(p for p in (*folders, city or "", stem, ext) if p)
    return re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-"), city


def _release_files(dataset_id: str, listed: list[Any]) -> tuple[ReleaseFile, ...]:
    files: list[ReleaseFile] = []
    seen: set[str] = set()
    for entry in listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        path = entry["path"]
        key, city = file_key(dataset_id, path)
        if not key or key in seen:   # non-Latin or clashing names still get a stable, unique key
            key = f"{key}-{len(files) + 1}".strip("-")
        seen.add(key)
        stem = PurePosixPath(path).stem
        table_stems = {dataset_id, f"{dataset_id}_excel"} if city is None else \
            {f"{city}_{dataset_id}", f"{city}_{dataset_id}_excel"}
        in_table_folder = PurePosixPath(path).parent.as_posix() == ("." if city is None else "cities")
        files.append(ReleaseFile(path=path, bytes=int(entry.get("bytes") or 0),
                                 sha256=str(entry.get("sha256") or ""), key=key, city_code=city,
                                 table_view=in_table_folder and stem in table_stems))
    return tuple(files)


def _inside(candidate: Path, folder: Path) -> bool:
    """True when ``candidate`` is a regular file that, with every symlink resolved, lies inside ``folder``."""
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return real.is_relative_to(folder.resolve()) and real.is_file()


class ReleaseStore:
    """The releases under one root; metadata is re-read only when its file changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[int, Release | None]] = {}
        self._lock = threading.Lock()

    def dataset_ids(self) -> list[str]:
        """Datasets with at least one complete release, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if DATASET_ID.match(p.name) and self._latest_number(p.name) is not None)

    def signature(self) -> tuple[tuple[str, int], ...]:
        """(dataset, latest.json modification time) of every dataset folder: changes with every release."""
        if not self.root.is_dir():
            return ()
        found = []
        for folder in self.root.iterdir():
            try:
                found.append((folder.name, (folder / "latest.json").stat().st_mtime_ns))
            except OSError:
                continue
        return tuple(sorted(found))

    def latest(self, dataset_id: str) -> Release | None:
        number = self._latest_number(dataset_id)
        return self.release(dataset_id, number) if number is not None else None

    def releases(self, dataset_id: str) -> list[Release]:
        """Every complete release up to the latest, newest first."""
        latest = self._latest_number(dataset_id)
        if latest is None:
            return []
        numbers = sorted((int(p.name) for p in (self.root / dataset_id).iterdir()
                          if RELEASE_NUMBER.match(p.name) and int(p.name) <= latest), reverse=True)
        return [r for n in numbers if (r := self.release(dataset_id, n)) is not None]

    def release(self, dataset_id: str, number: int | str) -> Release | None:
        """Release ``number`` of ``dataset_id``, or None when it is not a complete, readable release."""
        text = str(number)
        if not DATASET_ID.match(dataset_id) or not RELEASE_NUMBER.match(text):
            return None
        folder = self.root / dataset_id / text
        if not self._is_own_folder(folder, dataset_id, text):
            return None
        latest = self._latest_number(dataset_id)
        if latest is None or int(text) > latest:
            return None
        return self._load(folder, dataset_id, int(text))

    def resolve(self, release: Release, path: str) -> Path | None:
        """The real file behind ``path`` if the release lists it and it stays inside the release folder."""
        listed = release.file_by_path(path) or (release.dcat_file if path == DCAT_FILE else None)
        if listed is None:
            return None
        candidate = release.folder / listed.path
        return candidate.resolve() if _inside(candidate, release.folder) else None

    def resource(self, resource_id: str) -> tuple[Release, ReleaseFile] | None:
        """The release file a resource id names: ``<dataset>-<n>-<key>``."""
        match = RESOURCE_ID.match(resource_id or "")
        if not match:
            return None
        release = self.release(match["dataset"], match["number"])
        if release is None:
            return None
        found = release.file(match["key"])
        return (release, found) if found else None

    # ------------------------------------------------------------------------------------------ internals

    def _is_own_folder(self, folder: Path, *parts: str) -> bool:
        """No symlink may lead a dataset or release folder out of (or around inside) the releases root."""
        try:
            return folder.is_dir() and folder.resolve() == self.root.resolve().joinpath(*parts)
        except OSError:
            return False

    def _latest_number(self, dataset_id: str) -> int | None:
        if not DATASET_ID.match(dataset_id) or not self._is_own_folder(self.root / dataset_id, dataset_id):
            return None
        pointer = self.root / dataset_id / "latest.json"
        try:
            number = json.loads(pointer.read_text(encoding="utf-8")).get("number")
        except (OSError, ValueError, AttributeError):
            return None
        return number if isinstance(number, int) and number > 0 else None

    def _load(self, folder: Path, dataset_id: str, number: int) -> Release | None:
        meta_path = folder / "metadata.json"
        try:
            stamp = meta_path.stat().st_mtime_ns
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(folder)
        if cached and cached[0] == stamp:
            return cached[1]
        release = _read_release(meta_path, folder, dataset_id, number)
        with self._lock:
            self._cache[folder] = (stamp, release)
        return release


def _read_release(meta_path: Path, folder: Path, dataset_id: str, number: int) -> Release | None:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("portal: unreadable %s: %s", meta_path, exc)
        return None
    if not isinstance(meta, dict) or meta.get("dataset_id") != dataset_id or meta.get("release") != number:
        log.warning("portal: %s does not describe release %s of %s; ignored", meta_path, number, dataset_id)
        return None
    return Release(dataset_id=dataset_id, number=number, folder=folder, meta=meta)
