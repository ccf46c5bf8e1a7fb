"""The upload service's pages for everyone, in headless Chromium with axe-core (WCAG 2.1 A + AA):

- every page kind the city clerk sees (log-in, the upload page with a result and the history, the validation
  report, the page of a refused upload) has 0 axe violations at 1280 and 390 CSS px, one h1, a skip link to
  <main>, and no sideways scrolling down to 320 px;
- a keyboard-only clerk logs in, chooses the file, submits it, hears the result (live region) and finds the
  focus on it; a refused file moves the focus to the alert;
- the history lists every refused upload with its reason and a link to its report; times are labelled JST.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tools.axe import NEEDS_CHROMIUM, assert_accessible, chromium

from kouiki.tokens import issue_token
from service.testing import RunningService, catalog_url, run_service, write_members

KOMAE_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
KOMAE = "132195"
WIDTHS = (1280, 390)
# an event list with two dates that are not in the calendar and one that is not a date at all
EVENTS = ("都道府県コード又は市区町村コード,NO,都道府県名,市区町村名,イベント名,イベント名_カナ,開始日,終了日,開始時間,"
          "終了時間,場所名称,住所\n"
          "132195,1,東京都,狛江市,花火大会,ハナビタイカイ,2023/02/30,2023/03/01,19:00,20:00,多摩川河川敷,狛江市元和泉\n"
          "132195,2,東京都,狛江市,市民まつり,シミンマツリ,令和5年13月1日,2023/11/05,10:00,16:00,市役所,狛江市和泉本町\n"
          "132195,3,東京都,狛江市,講演会,コウエンカイ,2023/4/1,未定,10:00,12:00,市役所,狛江市和泉本町\n")

pytestmark = [
    *NEEDS_CHROMIUM,
    pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads"),
]


class Uploaded:
    """The service with a token and, uploaded through the API, the real AED file and a header-only file."""

    def __init__(self, server: RunningService, token: str, accepted: str, refused: str, events: str) -> None:
        self.server, self.token, self.accepted, self.refused = server, token, accepted, refused
        self.events = events


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uploaded]:
    root = tmp_path_factory.mktemp("upload-pages")
    members = write_members(root / "members.yaml", [(KOMAE, "狛江市")])
    header_only = root / "komae_aed_見出しだけ.csv"
    header_only.write_bytes(KOMAE_AED.read_bytes().splitlines(keepends=True)[0])
    with run_service(root / "home", members, wait_ready=True) as server:
        token = issue_token(catalog_url(server.home), KOMAE, "a11y test").token
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as api:
            accepted = api.post("/api/uploads", files={"file": (KOMAE_AED.name, KOMAE_AED.read_bytes())})
            refused = api.post("/api/uploads", files={"file": (header_only.name, header_only.read_bytes())})
            events = api.post("/api/uploads", params={"dataset": "event"},
                              files={"file": ("komae_132195_event.csv", EVENTS.encode())})
        assert accepted.status_code == 201, accepted.text
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "no-data-rows", refused.text
        assert events.status_code == 201, events.text
        yield Uploaded(server, token, accepted.json()["upload_id"], refused.json()["error"]["upload_id"],
                       events.json()["upload_id"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def new_page(browser: Browser, width: int) -> Page:
    context = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900})
    return context.new_page()


def log_in(page: Page, up: Uploaded) -> None:
    page.goto(up.server.url + "/")
    page.fill("#token", up.token)
    page.click("#login-button")
    expect(page.locator("#city-name")).to_have_text("狛江市")


@pytest.mark.parametrize("width", WIDTHS)
def test_log_in_page(uploaded: Uploaded, browser: Browser, width: int) -> None:
    page = new_page(browser, width)
    page.goto(uploaded.server.url + "/")
    assert_accessible(page, f"log-in page at {width} px")
    page.goto(uploaded.server.url + "/?lang=en")
    assert page.get_attribute("html", "lang") == "en"
    assert_accessible(page, f"English log-in page at {width} px")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_upload_page_with_a_result_and_the_history(uploaded: Uploaded, browser: Browser, width: int) -> None:
    page = new_page(browser, width)
    log_in(page, uploaded)
    page.set_input_files("#file", str(KOMAE_AED))      # uploaded before: the earlier answer, at once
    page.click("#upload-button")
    expect(page.locator("#result")).to_be_visible(timeout=60_000)
    expect(page.locator(f'#uploads [data-upload-id="{uploaded.refused}"]')).to_have_count(1)
    assert_accessible(page, f"upload page with a result at {width} px")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_report_pages(uploaded: Uploaded, browser: Browser, width: int) -> None:
    page = new_page(browser, width)
    log_in(page, uploaded)
    page.goto(f"{uploaded.server.url}/uploads/{uploaded.accepted}/report")
    assert "データ検証結果" in page.inner_text("h1")
    body = page.inner_text("body")
    assert "狛江市（132195）" in body and "JST" in body
    assert_accessible(page, f"validation report at {width} px")

    page.goto(f"{uploaded.server.url}/uploads/{uploaded.refused}/report")
    assert "受け付けられませんでした" in page.inner_text("h1")
    body = page.inner_text("body")
    assert "見出し行だけがあり" in body and "データの行が入ったファイルを登録してください" in body
    assert "問題は見つかりませんでした" not in body
    assert_accessible(page, f"refused upload's page at {width} px")
    page.context.close()


def test_history_gives_every_refusal_its_reason_and_report(uploaded: Uploaded, browser: Browser) -> None:
    page = new_page(browser, 1280)
    log_in(page, uploaded)
    card = page.locator(f'#uploads [data-upload-id="{uploaded.refused}"]')
    expect(card).to_have_count(1)
    assert "見出し行だけがあり" in card.locator(".reason").inner_text()
    assert card.locator("a").get_attribute("href") == f"/uploads/{uploaded.refused}/report"
    accepted = page.locator(f'#uploads [data-upload-id="{uploaded.accepted}"]')
    assert "JST" in accepted.inner_text() and "AED設置箇所一覧" in accepted.inner_text()
    page.context.close()


def tab_to(page: Page, element_id: str, limit: int = 30) -> None:
    """Press Tab until the element with ``element_id`` has the focus (as a keyboard user would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with Tab")


def test_keyboard_only_upload(uploaded: Uploaded, browser: Browser, tmp_path: Path) -> None:
    page = new_page(browser, 390)
    page.goto(uploaded.server.url + "/")
    tab_to(page, "token")
    page.keyboard.type(uploaded.token)
    page.keyboard.press("Enter")
    expect(page.locator("#city-name")).to_have_text("狛江市")
    # the page reloads after the log-in: under load Chromium ignored a Space on the file input of a document
    # still loading (CI, once), so the keyboard walk starts when the reloaded page and its history have settled
    page.wait_for_load_state("networkidle")

    # a new file (one more row), so that it is validated now rather than answered from before
    fresh = tmp_path / "komae_aed_追加.csv"
    lines = KOMAE_AED.read_text(encoding="utf-8").splitlines()
    fresh.write_text("\n".join([*lines, lines[-1].replace("狛江市", "狛江市 ", 1)]) + "\n", encoding="utf-8")
    tab_to(page, "file")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(fresh))
    expect(page.locator("#chosen-name")).to_have_text(fresh.name)
    tab_to(page, "upload-button")
    page.keyboard.press("Enter")

    status = page.locator("#status")
    assert status.get_attribute("role") == "status"
    expect(status).to_contain_text("検証が終わりました", timeout=90_000)
    expect(status).to_contain_text("行")
    assert page.evaluate("() => document.activeElement.id") == "result-heading"
    assert page.locator("#result").is_visible()

    # a refused file: the alert says why and takes the focus
    tab_to(page, "file")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(empty))
    tab_to(page, "upload-button")
    page.keyboard.press("Enter")
    error = page.locator("#error")
    expect(error).to_contain_text("「empty.csv」は空です", timeout=30_000)
    assert page.evaluate("() => document.activeElement.id") == "error"
    assert error.get_attribute("role") == "alert"
    page.context.close()


def test_dates_not_in_the_calendar_are_reported_as_such(uploaded: Uploaded, browser: Browser) -> None:
    with httpx.Client(base_url=uploaded.server.url, headers={"Authorization": f"Bearer {uploaded.token}"}) as api:
        report = api.get(f"/api/uploads/{uploaded.events}/report").json()
    dates = next(p for p in report["problems"] if p["error_code"] == "date-error")
    assert dates["title_ja"] == "存在しない日付" and dates["column"] == "開始日" and dates["lines"] == [2, 3]
    messages = [x["message_ja"] for x in dates["examples"]]
    assert messages == ["「開始日」の「2023/02/30」：2月30日は存在しません（2023年2月は28日まで）。",
                        "「開始日」の「令和5年13月1日」：13月は存在しません（月は1〜12）。"]
    # 「未定」 is not shaped like a date: it stays a format error
    other = next(p for p in report["problems"] if p["error_code"] == "format-error" and p["column"] == "終了日")
    assert other["examples"][0]["raw_value"] == "未定"

    page = new_page(browser, 390)
    log_in(page, uploaded)
    page.goto(f"{uploaded.server.url}/uploads/{uploaded.events}/report")
    body = page.inner_text("main")
    assert "2月30日は存在しません" in body and "13月は存在しません" in body and "正しい日付を" in body
    assert_accessible(page, "report with impossible dates at 390 px")
    page.context.close()
