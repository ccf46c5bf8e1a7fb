"""A person's path through the portal in headless Chromium (Debian's): search in Japanese, open the dataset,
read the preview, download the CSV for Excel and check it holds the published rows."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from playwright.sync_api import Browser, Page
from tools.axe import NEEDS_CHROMIUM, chromium

from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import BOM, build_sample_tree, serve
from portal.web import PREVIEW_ROWS

pytestmark = NEEDS_CHROMIUM


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, pl.DataFrame]]]:
    home = tmp_path_factory.mktemp("home")
    frames = build_sample_tree(home / "releases")
    with serve(create_app(PortalSettings(home=home))) as url:
        yield url, frames


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, locale="ja-JP")
    yield context.new_page()
    context.close()


def test_search_open_preview_and_download_csv_for_excel(portal: tuple[str, dict[str, pl.DataFrame]],
                                                         page: Page, tmp_path: Path) -> None:
    base_url, frames = portal
    expected = frames["evacuation_space"]
    page.goto(base_url + "/")
    assert page.locator(".dataset-card").count() == 2
    page.fill("#q", "避難")
    page.click("#search-button")
    cards = page.locator(".dataset-card h2")
    assert cards.all_inner_texts() == ["指定緊急避難場所一覧"]

    cards.first.locator("a").click()
    page.wait_for_url("**/dataset/evacuation_space")
    assert page.inner_text("#dataset-title") == "指定緊急避難場所一覧"
    preview = page.locator("#preview-table")
    headers = preview.locator("thead th").all_inner_texts()
    assert headers == ["#", *expected.columns]
    rows = preview.locator("tbody tr")
    assert rows.count() == PREVIEW_ROWS
    first = rows.first.locator("td").all_inner_texts()
    assert first[headers.index("名称")] == expected["名称"][0]
    assert first[headers.index("所在地_連結表記")] == expected["所在地_連結表記"][0]

    with page.expect_download() as download_info:
        page.click("#region-files a[data-resource='evacuation_space-2-excel-csv']")
    download = download_info.value
    assert download.suggested_filename == "evacuation_space_excel.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith(BOM)
    downloaded = pl.read_csv(io.BytesIO(data[len(BOM):]), infer_schema=False)
    as_text = expected.with_columns(pl.col(c).cast(pl.String) for c in expected.columns)
    assert downloaded.columns == expected.columns
    assert downloaded.height == 152
    assert downloaded.drop("緯度", "経度", "標高").equals(as_text.drop("緯度", "経度", "標高"))
    for column in ("緯度", "経度"):
        assert downloaded[column].cast(pl.Float64).to_list() == expected[column].to_list()


def test_filters_and_language_switch(portal: tuple[str, dict[str, pl.DataFrame]], page: Page) -> None:
    base_url, _ = portal
    page.goto(base_url + "/")
    page.select_option("#city", "132195")          # the filters apply when the button is pressed
    page.click("#search-button")
    page.wait_for_url("**city=132195**")
    assert page.locator(".dataset-card h2").all_inner_texts() == ["AED設置箇所一覧"]
    page.select_option("#kind", "safety")
    page.click("#search-button")
    page.wait_for_url("**kind=safety**")
    assert page.locator(".dataset-card h2").all_inner_texts() == ["AED設置箇所一覧"]
    page.click("#lang-switch")
    page.wait_for_url("**lang=en**")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator(".dataset-card h2").all_inner_texts() == ["AED locations"]
    assert page.inner_text("#result-count") == "1 dataset(s)"
