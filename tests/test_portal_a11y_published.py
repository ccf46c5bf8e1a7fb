"""The portal's pages over what the real pipeline published (issue 17): the demo run (three real cities' files,
intake → lake → models → publish, tests/conftest.py ``demo_run``) served by the portal, and every dataset page,
city page and the map checked in headless Chromium with axe-core (WCAG 2.1 A + AA) at desktop and phone widths,
in Japanese and English, with no sideways scroll at 390 and 320 CSS px.

tests/test_portal_a11y.py checks every page *kind* on releases written by portal.testing; this one checks the
pages as the publisher really fills them (the quality table with findings, conformance figures, the data
dictionary of every schema, points files of every dataset with coordinates)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page
from tools.axe import NEEDS_CHROMIUM, accessibility_problems, chromium, reflow_problems

from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import serve

pytestmark = NEEDS_CHROMIUM


@pytest.fixture(scope="module")
def published(demo_run: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """The portal over the demo run's home, and the dataset ids it lists."""
    home = demo_run["home"]
    with serve(create_app(PortalSettings(home=home))) as url:
        listed = httpx.get(f"{url}/api/3/action/package_list", timeout=30).json()["result"]
        yield url, listed


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="ja-JP")
    # offline: the background tiles (地理院タイル) are the only request off the site; the page works without them
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1:")
                  else route.abort("internetdisconnected"))
    yield context.new_page()
    context.close()


def _datasets_published(demo_run: dict[str, Any]) -> list[str]:
    releases = demo_run["home"] / "releases"
    return sorted(p.parent.name for p in releases.glob("*/latest.json"))


def test_every_published_dataset_is_listed(published: tuple[str, list[str]], demo_run: dict[str, Any]) -> None:
    _, listed = published
    on_disk = _datasets_published(demo_run)
    assert len(on_disk) >= 3, on_disk     # aed, evacuation_space, population at least (three real cities)
    assert set(on_disk) <= set(listed), f"published but not listed: {set(on_disk) - set(listed)}"


def test_every_published_page_passes_axe_and_reflows(published: tuple[str, list[str]], page: Page,
                                                     demo_run: dict[str, Any]) -> None:
    url, _ = published
    cities = sorted(p.name for p in (demo_run["home"] / "landing").iterdir() if p.is_dir())
    paths = ["/", "/map", "/organization", *(f"/organization/city-{code}" for code in cities)]
    for dataset_id in _datasets_published(demo_run):
        paths.append(f"/dataset/{dataset_id}")
    problems: list[str] = []
    checked = 0
    for lang in ("ja", "en"):
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            for path in paths:
                full = f"{url}{path}{'&' if '?' in path else '?'}lang={lang}"
                response = page.goto(full)
                assert response is not None and response.status == 200, f"{full}: {response and response.status}"
                if page.locator("#map").count():
                    page.wait_for_selector("#map[data-ready]", state="attached", timeout=10_000)
                what = f"{path} ({lang}, {width} px)"
                problems += accessibility_problems(page, what)
                if width < 1000:
                    problems += reflow_problems(page, what, (390, 320))
                checked += 1
    assert checked == 4 * len(paths)
    assert not problems, "\n".join(problems)


def test_points_of_every_located_dataset_are_on_its_map(published: tuple[str, list[str]], page: Page,
                                                       demo_run: dict[str, Any]) -> None:
    """A dataset whose release has a points file shows a map with one keyboard-reachable entry per point."""
    url, _ = published
    releases = demo_run["home"] / "releases"
    located = 0
    for dataset_id in _datasets_published(demo_run):
        latest = json.loads((releases / dataset_id / "latest.json").read_text(encoding="utf-8"))
        points = releases / dataset_id / str(latest["number"]) / f"{dataset_id}.geojson"
        if not points.exists():
            continue
        features = [f for f in json.loads(points.read_text(encoding="utf-8"))["features"] if f.get("geometry")]
        page.goto(f"{url}/dataset/{dataset_id}")
        page.wait_for_selector("#map[data-ready]", state="attached", timeout=10_000)
        assert page.get_attribute("#map", "data-markers") == str(len(features)), dataset_id
        listed = page.locator("#map-list button.point").count()
        assert listed == len(features), f"{dataset_id}: {listed} entries beside the map, {len(features)} points"
        located += 1
    assert located >= 2   # aed and evacuation_space carry 緯度/経度
