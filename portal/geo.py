"""Points of a release for its map: read from the release's GeoJSON (the file the publisher writes for every
dataset with coordinates), for the list beside the map. The browser draws the markers from the same file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from portal.store import Release

log = logging.getLogger(__name__)
NAME_COLUMNS = ("名称", "施設名", "名前", "ID")
ADDRESS_COLUMNS = ("所在地_連結表記", "住所", "所在地")
LIST_LIMIT = 1000     # the list beside the map shows at most this many points (the map shows them all)


@dataclass(frozen=True)
class Point:
    name: str
    address: str
    lat: float
    lon: float


@dataclass(frozen=True)
class PointSet:
    """A release's points: ``features`` counts every feature, ``located`` those with a point geometry."""

    features: int
    points: tuple[Point, ...]
    url: str = ""          # where the browser downloads the GeoJSON (the release file's public URL)

    @property
    def located(self) -> int:
        return len(self.points)


def geojson_file(release: Release) -> Path | None:
    """The release's GeoJSON file, or None when the dataset has no coordinates."""
    listed = release.file("geojson")
    return release.folder / listed.path if listed else None


def release_points(release: Release) -> PointSet | None:
    """The points of ``release`` (None when it has no GeoJSON or the file does not read)."""
    path = geojson_file(release)
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    points = _read_points(path, stat.st_size, stat.st_mtime_ns)
    listed = release.file("geojson")
    if points is None or listed is None:
        return None
    return dataclasses.replace(points, url=f"/download/{release.dataset_id}/{release.number}/{quote(listed.path)}")


@functools.lru_cache(maxsize=32)
def _read_points(path: Path, size: int, mtime_ns: int) -> PointSet | None:
    # size and mtime are part of the cache key: a replaced file is read again
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("portal: %s does not read as GeoJSON: %s", path, exc)
        return None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        return None
    points = [p for p in (_point(f) for f in features) if p is not None]
    return PointSet(features=len(features), points=tuple(points))


def _point(feature: Any) -> Point | None:
    if not isinstance(feature, dict):
        return None
    geometry = feature.get("geometry") or {}
    props = feature.get("properties") or {}
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if (not isinstance(geometry, dict) or geometry.get("type") != "Point" or not isinstance(coordinates, list)
            or len(coordinates) < 2 or not all(isinstance(c, int | float) for c in coordinates[:2])):
        return None
    props = props if isinstance(props, dict) else {}
    return Point(name=_first(props, NAME_COLUMNS), address=_first(props, ADDRESS_COLUMNS),
                 lon=float(coordinates[0]), lat=float(coordinates[1]))


def _first(props: dict[str, Any], names: tuple[str, ...]) -> str:
    return next((str(props[n]) for n in names if props.get(n) not in (None, "")), "")
