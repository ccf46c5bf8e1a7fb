"""Where the portal reads from and how it presents itself: a view on :class:`kouiki.settings.Settings` (its
variables are ``settings.portal`` in the one settings table, which reads and checks them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from kouiki.settings import GSI_TILES, PARSERS, VARIABLE, Paths, Settings, default

DEFAULT_HOST = "127.0.0.1"   # the loopback address only: a reverse proxy publishes the portal
__all__ = ["DEFAULT_HOST", "GSI_TILES", "PortalSettings", "listen_port", "map_tiles_url", "tile_origin"]


@dataclass(frozen=True)
class PortalSettings:
    """``home`` is KOUIKI_HOME; the portal reads ``home/releases`` and counts ``home/lake/findings``. The other
    fields' defaults are the settings table's."""

    home: Path
    site_title_ja: str = default("KOUIKI_PORTAL_TITLE_JA")
    site_title_en: str = default("KOUIKI_PORTAL_TITLE_EN")
    publisher_ja: str = default("KOUIKI_PUBLISHER_JA")
    publisher_en: str = default("KOUIKI_PUBLISHER_EN")
    publisher_id: str = "kouiki"
    dcat_page_size: int = default("KOUIKI_DCAT_PAGE_SIZE")   # datasets per page of /catalog.* (ckanext.dcat)
    # Background map of point datasets: 地理院タイル (標準地図) by default. An empty URL shows the markers on a
    # plain background (no request leaves the site); the page's CSP allows only this URL's origin for images.
    map_tiles_url: str = default("KOUIKI_MAP_TILES")
    map_attribution_ja: str = default("KOUIKI_MAP_ATTRIBUTION_JA")
    map_attribution_en: str = default("KOUIKI_MAP_ATTRIBUTION_EN")
    map_attribution_url: str = default("KOUIKI_MAP_ATTRIBUTION_URL")

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
        """KOUIKI_HOME and the KOUIKI_PORTAL_*, KOUIKI_PUBLISHER_*, KOUIKI_MAP_*, KOUIKI_DCAT_PAGE_SIZE variables."""
        settings = Settings.from_env()
        portal = settings.portal
        return cls(home=settings.home, site_title_ja=portal.title_ja, site_title_en=portal.title_en,
                   publisher_ja=portal.publisher_ja, publisher_en=portal.publisher_en,
                   dcat_page_size=portal.dcat_page_size, map_tiles_url=portal.map_tiles,
                   map_attribution_ja=portal.map_attribution_ja, map_attribution_en=portal.map_attribution_en,
                   map_attribution_url=portal.map_attribution_url)


def map_tiles_url(raw: str) -> str:
    """A tile URL template (https://host/…/{z}/{x}/{y}.png) or '' for none; anything else is a ConfigError."""
    return str(PARSERS["tiles"](VARIABLE["KOUIKI_MAP_TILES"], raw.strip()))


def tile_origin(url: str) -> str:
    """The origin the page's Content-Security-Policy must allow images from ('' for no tiles)."""
    if not url:
        return ""
    parts = urlsplit(url.replace("{s}", "a"))
    return f"{parts.scheme}://{parts.netloc}".replace("://a.", "://*.") if "{s}" in url else \
        f"{parts.scheme}://{parts.netloc}"


def listen_port() -> int:
    """KOUIKI_PORT (default 8000)."""
    return Settings.from_env().portal.port
