"""Where the portal reads from and how it presents itself; every value can come from the environment."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kouiki.settings import Paths, kouiki_home

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
GSI_TILES = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"


@dataclass(frozen=True)
class PortalSettings:
    """``home`` is KOUIKI_HOME; the portal reads ``home/releases`` and counts ``home/lake/findings``."""

    home: Path
    site_title_ja: str = "広域オープンデータカタログ"
    site_title_en: str = "Regional Open Data Catalogue"
    publisher_ja: str = "共同データ推進室"
    publisher_en: str = "Shared Data Office of the member cities"
    publisher_id: str = "kouiki"
    dcat_page_size: int = 100        # datasets per page of /catalog.* (ckanext.dcat.datasets_per_page)
    # Background map of point datasets: 地理院タイル (標準地図) by default. An empty URL shows the markers on a
    # plain background (no request leaves the site); the page's CSP allows only this URL's origin for images.
    map_tiles_url: str = GSI_TILES
    map_attribution_ja: str = "出典：国土地理院"
    map_attribution_en: str = "Source: Geospatial Information Authority of Japan"
    map_attribution_url: str = "https://maps.gsi.go.jp/development/ichiran.html"

    @property
    def releases(self) -> Path:
        return Paths(self.home).releases

    @property
    def remote_releases(self) -> str | None:
        """``<KOUIKI_LAKE_URL>/releases`` when set: the releases ``releases`` is a copy of (``portal.mirror``)."""
        return Paths(self.home).remote_releases

    @property
    def findings(self) -> Path:
        return Paths(self.home).local_lake / "findings"   # read on local disk only (docs/settings.md)

    @classmethod
    def from_env(cls) -> PortalSettings:
        """KOUIKI_HOME (as kouiki.settings reads it) plus optional KOUIKI_PORTAL_* overrides of the names."""
        overrides: dict[str, Any] = {
            field: value
            for field, env in (("site_title_ja", "KOUIKI_PORTAL_TITLE_JA"),
                               ("site_title_en", "KOUIKI_PORTAL_TITLE_EN"),
                               ("publisher_ja", "KOUIKI_PUBLISHER_JA"),
                               ("publisher_en", "KOUIKI_PUBLISHER_EN"),
                               ("map_attribution_ja", "KOUIKI_MAP_ATTRIBUTION_JA"),
                               ("map_attribution_en", "KOUIKI_MAP_ATTRIBUTION_EN"),
                               ("map_attribution_url", "KOUIKI_MAP_ATTRIBUTION_URL"))
            if (value := os.environ.get(env))
        }
        if "KOUIKI_MAP_TILES" in os.environ:     # set but empty: no background tiles
            overrides["map_tiles_url"] = map_tiles_url(os.environ["KOUIKI_MAP_TILES"])
        settings = cls(home=kouiki_home(), **overrides)
        page_size = os.environ.get("KOUIKI_DCAT_PAGE_SIZE", "").strip()
        if page_size:
            if not page_size.isdigit() or not 1 <= int(page_size) <= 1000:
                raise ValueError(f"KOUIKI_DCAT_PAGE_SIZE must be a number from 1 to 1000, got {page_size!r}")
            settings = dataclasses.replace(settings, dcat_page_size=int(page_size))
        return settings


def map_tiles_url(raw: str) -> str:
    """A tile URL template (https://host/…/{z}/{x}/{y}.png) or '' for none; anything else is refused."""
    url = raw.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or not all(
            f"{{{k}}}" in url for k in "zxy") or any(c in url for c in " ;'\"\n"):
        raise ValueError("KOUIKI_MAP_TILES must be a tile URL such as "
                         f"{GSI_TILES} (or empty for no background map), got {raw[:80]!r}")
    return url


def tile_origin(url: str) -> str:
    """The origin the page's Content-Security-Policy must allow images from ('' for no tiles)."""
    if not url:
        return ""
    parts = urlsplit(url.replace("{s}", "a"))
    return f"{parts.scheme}://{parts.netloc}".replace("://a.", "://*.") if "{s}" in url else \
        f"{parts.scheme}://{parts.netloc}"


def listen_port() -> int:
    """KOUIKI_PORT, else 8000."""
    raw = os.environ.get("KOUIKI_PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    port = int(raw)
    if not 0 < port < 65536:
        raise ValueError(f"KOUIKI_PORT must be between 1 and 65535, got {raw!r}")
    return port
