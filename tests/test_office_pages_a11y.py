"""The pages the pipeline writes for people, opened from disk in headless Chromium with axe-core (WCAG 2.1
A + AA) at 1280 and 390 CSS px: a city's validation report, the office's scoreboard and the office's
validation details page (in place of GE's Data Docs). Each has 0 violations, one h1, a skip link to <main>,
and no sideways scrolling down to 320 px (wide tables scroll inside a labelled, focusable region)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from test_report import NORMALISATIONS, NOTICES
from test_validate import aed_dataset, break_rows, komae_rows, write_staged
from tools.axe import NEEDS_CHROMIUM, assert_accessible, chromium

from assets.scoreboard import ScoreRow, write_report
from expectations.report import build_data_docs, render_report
from expectations.validate import ValidationResult, validate_table

WIDTHS = (1280, 390)

pytestmark = NEEDS_CHROMIUM


def score_row(code: str, name: str, dataset: str, dataset_ja: str, **values: object) -> ScoreRow:
    """A scoreboard line as marts.conformance_scoreboard gives it (a city with no file by default)."""
    line: dict[str, object] = dict(
        city_code=code, city_name=name, dataset_id=dataset, dataset_name_ja=dataset_ja, declared=True,
        has_file=False, uploads=0, last_file=None, last_received_at=None, last_decision=None, rows=None,
        rows_accepted=None, rows_quarantined=None, share_valid=None, share_valid_change=None, findings=None,
        errors_by_code=None, errors=None, warnings=None, top_issue=None, top_warning=None,
        share_valid_trend=None, rows_in_lake=0, status="missing", status_label="未提出 / missing")
    line.update(values)
    return ScoreRow(**line)  # type: ignore[arg-type]


def demo_scoreboard() -> list[ScoreRow]:
    """The demo's three cities and datasets (figures of a demo run), with a long hostile file name."""
    sent = dict(has_file=True, status="accept", status_label="受理 / accepted", last_decision="accept")
    return [
        score_row("122033", "市川市", "aed", "AED設置箇所一覧", declared=False, status="not_declared",
                  status_label="対象外 / not expected"),
        score_row("122033", "市川市", "evacuation_space", "指定緊急避難場所一覧", uploads=1, rows=234,
                  rows_accepted=234, rows_quarantined=0, share_valid=1.0, share_valid_trend=[1.0], findings=0,
                  errors=0, warnings=12, rows_in_lake=234, last_file="ichikawa_122033_103_evacuation_space.csv",
                  last_received_at=datetime(2026, 12, 3, 5, 44), top_warning="電話番号 書式の誤り ×12", **sent),
        score_row("122033", "市川市", "population", "地域・年齢別人口", uploads=2, rows=5_130, rows_accepted=5_130,
                  share_valid=0.998, share_valid_change=0.004, share_valid_trend=[0.994, 0.998], errors=0,
                  warnings=9, rows_in_lake=5_130, last_file="ichikawa_122033_104_population.csv",
                  last_received_at=datetime(2026, 12, 3, 5, 45), **sent),
        score_row("132195", "狛江市", "aed", "AED設置箇所一覧", uploads=3, rows=57, rows_accepted=57,
                  share_valid=1.0, share_valid_trend=[0.5, 0.9, 1.0], share_valid_change=0.1, errors=0, warnings=1,
                  errors_by_code='{"format-error": 1}', top_warning="電話番号 書式の誤り ×1", rows_in_lake=57,
                  last_file="komae_<b>aed</b>_" + "とても長いファイル名" * 8 + ".csv",
                  last_received_at=datetime(2026, 12, 3, 5, 44), **sent),
        score_row("132195", "狛江市", "evacuation_space", "指定緊急避難場所一覧"),
        score_row("132195", "狛江市", "population", "地域・年齢別人口", declared=False, status="not_declared",
                  status_label="対象外 / not expected"),
        score_row("222127", "焼津市", "aed", "AED設置箇所一覧", uploads=1, rows=120, rows_accepted=117,
                  rows_quarantined=3, share_valid=0.975, share_valid_trend=[0.975], errors=3, warnings=4,
                  errors_by_code='{"coordinate-error": 2, "unique-error": 1}', top_issue="緯度 座標が日本の範囲外 ×2",
                  rows_in_lake=117, last_file="yaizu_222127_aed.csv", last_received_at=datetime(2026, 12, 3, 5, 44),
                  has_file=True, status="quarantine", status_label="一部保留 / partly withheld",
                  last_decision="quarantine"),
        score_row("222127", "焼津市", "evacuation_space", "指定緊急避難場所一覧", uploads=1, rows=88, rows_accepted=0,
                  rows_quarantined=88, share_valid=0.2, share_valid_trend=[0.2], errors=70, warnings=0,
                  last_file="yaizu_222127_evacuation_space.csv", last_received_at=datetime(2026, 12, 3, 5, 44),
                  has_file=True, status="reject", status_label="受付不可 / rejected", last_decision="reject"),
        score_row("222127", "焼津市", "population", "地域・年齢別人口"),
    ]


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory) -> ValidationResult:
    values, raws = komae_rows()
    break_rows(values, raws)
    db = write_staged(tmp_path_factory.mktemp("office-pages") / "staged.duckdb", values, raws)
    return validate_table(db, "staged", aed_dataset(), raw_table="staged_raw", upload_id="132195-0123456789abcdef",
                          extra_columns=["都道府県名"])


@pytest.fixture(scope="module")
def pages(validation: ValidationResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("office-pages-out")
    html, _ = render_report(validation, file_name="komae_<b>aed</b>.csv", city_name="狛江市",
                            dataset_name_ja="AED設置箇所一覧", normalisations=NORMALISATIONS, notices=NOTICES,
                            received_at=datetime(2026, 12, 3, 5, 44))
    report = root / "132195" / "132195-0123456789abcdef.html"
    report.parent.mkdir()
    report.write_text(html, encoding="utf-8")
    return {
        "city report": report,
        "scoreboard": write_report(root / "office" / "scoreboard.html", demo_scoreboard()),
        "data docs": build_data_docs(validation.ge_result, root / "office" / "data_docs" / "aed",
                                     run_name="batch-132195-0123456789abcdef"),
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def open_page(browser: Browser, path: Path, width: int) -> Page:
    page = browser.new_context(locale="ja-JP", viewport={"width": width, "height": 900}).new_page()
    page.goto(path.as_uri())
    return page


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["city report", "scoreboard", "data docs"])
def test_page_is_accessible(pages: dict[str, Path], browser: Browser, kind: str, width: int) -> None:
    page = open_page(browser, pages[kind], width)
    assert_accessible(page, f"{kind} at {width} px")
    page.context.close()


def test_wide_tables_scroll_in_a_focusable_labelled_region(pages: dict[str, Path], browser: Browser) -> None:
    page = open_page(browser, pages["scoreboard"], 390)
    regions = page.locator('.scroll[role="region"]')
    assert regions.count() == 2
    for i in range(regions.count()):
        region = regions.nth(i)
        assert region.get_attribute("tabindex") == "0" and region.get_attribute("aria-labelledby")
        assert region.evaluate("r => r.scrollWidth > r.clientWidth")     # the table is wider: it scrolls here
        region.focus()
        page.keyboard.press("ArrowRight")
        # …by keyboard too (the browser may animate the scroll: wait for it, up to 5 s on a busy machine)
        page.wait_for_function("r => r.scrollLeft > 0", arg=region.element_handle(), timeout=5000)
    page.context.close()


def test_times_are_labelled_japan_time(pages: dict[str, Path]) -> None:
    board = pages["scoreboard"].read_text(encoding="utf-8")
    assert "2026-12-03 14:44 JST" in board and "UTC" not in board     # 05:44 UTC is 14:44 in Japan
    report = pages["city report"].read_text(encoding="utf-8")
    assert "2026-12-03 14:44 JST" in report and "狛江市（132195）" in report
