"""A city clerk's path through the upload page in headless Chromium (Debian's): log in with the city's token,
drop 狛江市's real AED file, read the result (line 57: 電話番号 'なし'), see the upload in the history and open
the full report; a file that is not a table gets a Japanese error; the page also speaks English."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tools.axe import NEEDS_CHROMIUM, chromium

from kouiki.tokens import issue_token
from service.testing import RunningService, catalog_url, run_service, write_members

KOMAE_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
KOMAE = "132195"

pytestmark = [
    *NEEDS_CHROMIUM,
    pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, str]]:
    root = tmp_path_factory.mktemp("service-browser")
    members = write_members(root / "members.yaml", [(KOMAE, "狛江市"), ("222127", "焼津市")])
    with run_service(root / "home", members) as running:
        yield running, issue_token(catalog_url(running.home), KOMAE, "browser test").token


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="ja-JP")
    yield context.new_page()
    context.close()


def log_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("#login-button")
    expect(page.locator("#city-name")).to_have_text("狛江市")


def drop_file(page: Page, selector: str, path: Path, name: str | None = None) -> None:
    """Drop a file on an element the way a browser does (a drop event carrying a DataTransfer)."""
    data_transfer = page.evaluate_handle(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "text/csv" }));
            return transfer;
        }""",
        [base64.b64encode(path.read_bytes()).decode(), name or path.name],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": data_transfer})


def test_log_in_drop_a_file_and_read_its_report(service: tuple[RunningService, str], page: Page) -> None:
    server, token = service
    log_in(page, server.url, token)
    drop_file(page, "#drop-zone", KOMAE_AED)
    expect(page.locator("#chosen-name")).to_have_text(KOMAE_AED.name)
    page.click("#upload-button")

    expect(page.locator("#result")).to_be_visible(timeout=90_000)
    assert page.inner_text("#rows-total") == "57"
    assert page.inner_text("#rows-accepted") == "57"                # なし is a warning: the row is published
    assert page.inner_text("#rows-quarantined") == "0"
    assert "確認のお願い" in page.inner_text("#decision")
    phone = page.locator('.problem[data-column="電話番号"]')
    expect(phone).to_have_count(1)
    assert "行: 57" in phone.inner_text()
    example = phone.locator("tr.example").first.locator("td").all_inner_texts()
    assert example[:2] == ["57", "なし"]
    assert "03-1234-5678" in phone.locator(".hint").inner_text()

    upload_id = page.inner_text("#result-upload-id")
    row = page.locator(f'#uploads [data-upload-id="{upload_id}"]')
    expect(row).to_have_count(1)
    assert row.get_attribute("data-status") == "landed"
    assert KOMAE_AED.name in row.inner_text()

    with page.context.expect_page() as report_info:
        page.click("#report-link")
    report = report_info.value
    report.wait_for_load_state()
    assert "データ検証結果" in report.inner_text("h1")
    assert "なし" in report.inner_text("body") and "57" in report.inner_text("body")


def test_a_file_that_is_not_a_table_gets_a_japanese_error(service: tuple[RunningService, str], page: Page,
                                                           tmp_path: Path) -> None:
    server, token = service
    log_in(page, server.url, token)
    image = tmp_path / "aed.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    page.set_input_files("#file", str(image))
    page.click("#upload-button")
    error = page.locator("#error")
    expect(error).to_be_visible(timeout=30_000)
    assert "PNG画像" in error.inner_text() and "unsupported-format" in error.inner_text()


def test_a_wrong_token_is_refused_and_english_is_available(service: tuple[RunningService, str],
                                                           page: Page) -> None:
    server, _ = service
    page.goto(server.url + "/?lang=en")
    assert page.inner_text("#login-button") == "Log in"
    page.fill("#token", "kouiki_000000000000_" + "x" * 43)
    page.click("#login-button")
    expect(page.locator("#error")).to_contain_text("The token is wrong or has been revoked.")
    expect(page.locator("#city-name")).to_have_count(0)
