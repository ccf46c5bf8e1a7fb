"""Every kind of portal page in headless Chromium (Debian's), offline: axe-core (WCAG 2.1 A + AA) finds nothing
at desktop and phone widths, the page reflows at 390 and 320 CSS px, has one h1, a skip link and landmarks; the
filters, search and download work from the keyboard alone; the map draws one marker per located point of the
demo AED and evacuation GeoJSON files with no tile server reachable.

Screenshots for docs/screenshots/ are written when KOUIKI_SCREENSHOTS is set to a folder."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route
from tools.axe import NEEDS_CHROMIUM, accessibility_problems, chromium, reflow_problems

from portal.app import create_app
from portal.settings import GSI_TILES, PortalSettings
from portal.testing import build_sample_tree, serve

TILE_HOST = "cyberjapandata.gsi.go.jp"

pytestmark = NEEDS_CHROMIUM

# Every kind of page the portal serves as HTML: (name, path).
PAGES = [
    ("home", "/"),
    ("search results", "/?q=%E9%81%BF%E9%9B%A3"),                      # 避難
    ("no results", "/?q=zzzzzz"),
    ("filtered by kind and city", "/?kind=safety&city=222127"),
    ("dataset: AED (points)", "/dataset/aed"),
    ("dataset: evacuation sites (points)", "/dataset/evacuation_space"),
    ("dataset: population (table, no points)", "/dataset/population"),
    ("region-wide map", "/map"),
    ("cities (organisations)", "/organization"),
    ("one city", "/organization/city-222127"),
    ("not found", "/dataset/no_such_dataset"),
    ("home in English", "/?lang=en"),
    ("dataset in English", "/dataset/population?lang=en"),
    ("map in English", "/map?lang=en"),
]


class Portal:
    def __init__(self, url: str, releases: Path, frames: dict[str, pl.DataFrame]) -> None:
        self.url = url
        self.releases = releases
        self.frames = frames

    def geojson(self, dataset_id: str) -> dict[str, Any]:
        latest = json.loads((self.releases / dataset_id / "latest.json").read_text(encoding="utf-8"))
        folder = self.releases / dataset_id / str(latest["number"])
        document: dict[str, Any] = json.loads((folder / f"{dataset_id}.geojson").read_text(encoding="utf-8"))
        return document


def _population(releases: Path) -> None:
    """A table with no coordinates (人口), so a dataset page without a map is checked too."""
    from portal.testing import write_release
    frame = pl.DataFrame({"全国地方公共団体コード": ["122033", "222127"], "地方公共団体名": ["市川市", "焼津市"],
                          "調査年月日": ["2026-04-01", "2026-04-01"], "総人口": [496_000, 136_000]})
    write_release(releases, "population", frame, city_column="全国地方公共団体コード", title_ja="地域・年齢別人口",
                  title_en="Population by area and age", geojson=True)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    home = tmp_path_factory.mktemp("home")
    frames = build_sample_tree(home / "releases", geojson=True)
    _population(home / "releases")
    with serve(create_app(PortalSettings(home=home))) as url:
        yield Portal(url, home / "releases", frames)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def offline_context(browser: Browser, outside: list[str], **options: Any) -> BrowserContext:
    """A context in which every request off 127.0.0.1 fails (and is noted in ``outside``), as with no network."""
    context = browser.new_context(locale="ja-JP", **options)

    def route(route: Route) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    return context


@pytest.fixture()
def outside() -> list[str]:
    return []


@pytest.fixture()
def page(browser: Browser, outside: list[str]) -> Iterator[Page]:
    context = offline_context(browser, outside, accept_downloads=True)
    yield context.new_page()
    context.close()


def _open(page: Page, url: str) -> None:
    page.goto(url)
    if page.locator("#map").count():
        page.wait_for_selector("#map[data-ready]", state="attached", timeout=10_000)


def _check_landmarks(page: Page, name: str) -> None:
    """The portal's own layout (base.html): its skip link, header, navigation and footer."""
    skip = page.locator("a.skip-link")
    assert skip.count() == 1 and skip.get_attribute("href") == "#main", f"{name}: no skip link to #main"
    for landmark in ("header", "main#main", "footer", "nav"):
        assert page.locator(landmark).count() >= 1, f"{name}: no {landmark}"


def test_every_page_kind_passes_axe_and_reflows(portal: Portal, page: Page) -> None:
    problems: list[str] = []
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for name, path in PAGES:
            _open(page, portal.url + path)
            _check_landmarks(page, name)
            problems += accessibility_problems(page, f"{name} at {width} px")
            if width < 1000:
                problems += reflow_problems(page, name, (390, 320))
    assert not problems, "\n".join(problems)


def _marker_count(page: Page) -> int:
    """Markers on the map: single markers plus the number each cluster icon shows."""
    singles = page.locator(".leaflet-marker-pane img.leaflet-marker-icon").count()
    clustered = sum(int(text) for text in page.locator(".leaflet-marker-pane .marker-cluster span").all_inner_texts())
    return singles + clustered


@pytest.mark.parametrize("dataset_id", ["aed", "evacuation_space"])
def test_map_shows_every_located_point_offline(portal: Portal, page: Page, outside: list[str],
                                               dataset_id: str) -> None:
    features = portal.geojson(dataset_id)["features"]
    located = [f for f in features if f["geometry"]]
    assert len(located) > 50            # the demo files: 139 AEDs, 152 evacuation sites
    page.set_viewport_size({"width": 1280, "height": 900})
    _open(page, f"{portal.url}/dataset/{dataset_id}")
    assert page.get_attribute("#map", "data-ready") == "true"
    assert page.get_attribute("#map", "data-markers") == str(len(located))
    assert _marker_count(page) == len(located)
    assert page.locator(".marker-cluster").count() >= 1          # clustered
    assert page.locator("#map-list button.point").count() == len(located)
    # the attribution the tile licence asks for, and no request anywhere but the tile server (which failed)
    assert "出典：国土地理院" in page.inner_text(".leaflet-control-attribution")
    assert outside and all(TILE_HOST in url for url in outside), outside[:3]


def test_region_map_and_keyboard_list(portal: Portal, page: Page) -> None:
    expected = sum(len([f for f in portal.geojson(d)["features"] if f["geometry"]])
                   for d in ("aed", "evacuation_space"))
    page.set_viewport_size({"width": 1280, "height": 900})
    _open(page, portal.url + "/map")
    assert page.get_attribute("#map", "data-markers") == str(expected)
    assert _marker_count(page) == expected
    # keyboard only: Tab to the first point of the list, Enter opens its marker's popup
    first = page.locator("#map-list button.point").first
    name = first.inner_text()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('point')"):
            break
    assert page.evaluate("() => document.activeElement.textContent") == name
    page.keyboard.press("Enter")
    page.wait_for_selector(".leaflet-popup-content", timeout=5_000)
    assert name in page.inner_text(".leaflet-popup-content")
    assert page.inner_text("#map-status") == f"地図に表示しました: {name}"     # told to screen readers
    assert page.evaluate("() => document.activeElement.textContent") == name   # focus stays in the list


def test_no_tiles_configured_means_no_outside_request(browser: Browser, portal: Portal,
                                                      tmp_path: Path) -> None:
    outside: list[str] = []
    home = portal.releases.parent
    app = create_app(PortalSettings(home=home, map_tiles_url=""))
    context = offline_context(browser, outside)
    try:
        with serve(app) as url:
            page = context.new_page()
            response = page.goto(url + "/dataset/aed")
            assert response is not None
            policy = response.headers["content-security-policy"]
            assert TILE_HOST not in policy and "img-src 'self' data:;" in policy
            page.wait_for_selector("#map[data-ready='true']", state="attached")
            assert _marker_count(page) == page.locator("#map-list button.point").count()
    finally:
        context.close()
    assert outside == []


def test_csp_allows_only_the_configured_tile_host(portal: Portal, page: Page) -> None:
    response = page.goto(portal.url + "/map")
    assert response is not None
    policy = response.headers["content-security-policy"]
    img = next(part.strip() for part in policy.split(";") if part.strip().startswith("img-src"))
    assert img == "img-src 'self' data: https://" + TILE_HOST
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert GSI_TILES.startswith("https://" + TILE_HOST)


def test_keyboard_filter_search_and_download(portal: Portal, page: Page, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(portal.url + "/")
    # arrow keys move through the options without leaving the page (WCAG 3.2.2); focus stays on the select
    page.focus("#city")
    for _ in range(3):                       # すべて → 市川市 → 狛江市 → 焼津市
        page.keyboard.press("ArrowDown")
    assert page.input_value("#city") == "222127"
    page.wait_for_timeout(300)               # a submit on change would have navigated by now
    assert page.url.rstrip("/") == portal.url
    assert page.evaluate("() => document.activeElement.id") == "city"
    page.keyboard.press("Tab")               # on to the button, then Enter applies the filters
    assert page.evaluate("() => document.activeElement.id") == "search-button"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "city=222127" in page.url
    assert sorted(page.locator(".dataset-card h2").all_inner_texts()) == [
        "AED設置箇所一覧", "地域・年齢別人口", "指定緊急避難場所一覧"]

    # search by reading: ひなん (hiragana), ﾋﾅﾝ (half-width katakana) and 避難 find the evacuation sites
    for query in ("ひなん", "ﾋﾅﾝ", "避難"):
        page.goto(portal.url + "/")
        page.focus("#q")
        page.keyboard.type(query)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator(".dataset-card h2").all_inner_texts() == ["指定緊急避難場所一覧"], query

    # to the dataset page and the CSV download with the keyboard only
    page.focus(".dataset-card h2 a")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    link = page.locator("#region-files a[data-resource='evacuation_space-2-csv']")
    link.focus()
    with page.expect_download() as download_info:
        page.keyboard.press("Enter")
    saved = tmp_path / "download.csv"
    download_info.value.save_as(saved)
    assert pl.read_csv(saved, infer_schema=False).height == portal.frames["evacuation_space"].height


def test_skip_link_moves_focus_to_main(portal: Portal, page: Page) -> None:
    page.goto(portal.url + "/dataset/aed")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    assert page.locator("a.skip-link").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"


def test_language_is_remembered_and_times_carry_their_zone(portal: Portal, page: Page) -> None:
    page.goto(portal.url + "/")
    page.click("#lang-switch")
    page.wait_for_url("**lang=en**")
    page.goto(portal.url + "/dataset/population")               # no ?lang: the choice is remembered
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.inner_text("h1") == "Population by area and age"
    published = page.locator("#overview time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d JST", published.inner_text())
    assert published.get_attribute("datetime", timeout=1000).endswith("+09:00")  # type: ignore[union-attr]
    page.click("#lang-switch")
    page.wait_for_url("**lang=ja**")
    page.goto(portal.url + "/organization")
    assert page.locator("html").get_attribute("lang") == "ja"


def test_screenshots(portal: Portal, browser: Browser) -> None:
    """Writes docs/screenshots/*.png when KOUIKI_SCREENSHOTS names the folder (skipped otherwise)."""
    folder = os.environ.get("KOUIKI_SCREENSHOTS")
    if not folder:
        pytest.skip("set KOUIKI_SCREENSHOTS=docs/screenshots to write the screenshots")
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    desktop = offline_context(browser, outside, viewport={"width": 1280, "height": 900})
    phone = offline_context(browser, outside, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                            is_mobile=True, has_touch=True)
    try:
        page = desktop.new_page()
        _open(page, portal.url + "/map")
        page.locator("#map").scroll_into_view_if_needed()
        page.screenshot(path=str(target / "portal-map-region.png"), full_page=False)
        page.locator("#map-list button.point[data-layer='0']").nth(60).click()    # an AED in 焼津市
        for _ in range(3):
            page.click(".leaflet-control-zoom-out")
        page.locator("#map-section, section[aria-labelledby='map-heading']").first.screenshot(
            path=str(target / "portal-map-region-zoomed.png"))
        _open(page, portal.url + "/dataset/aed")
        page.locator("#map-section").screenshot(path=str(target / "portal-map-aed.png"))
        page.locator("#map-list button.point").nth(2).click()        # zoom to one point from the list
        page.wait_for_selector(".leaflet-popup-content")
        page.locator("#map-section").screenshot(path=str(target / "portal-map-aed-point.png"))
        mobile = phone.new_page()
        _open(mobile, portal.url + "/dataset/evacuation_space")
        mobile.screenshot(path=str(target / "portal-dataset-phone.png"), full_page=False)
        mobile.locator("#downloads").screenshot(path=str(target / "portal-dataset-phone-downloads.png"))
    finally:
        desktop.close()
        phone.close()
