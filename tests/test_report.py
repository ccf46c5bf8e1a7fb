"""The per-upload report (HTML for city staff + the same as JSON) and GE Data Docs for the office."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from test_validate import SCRIPT, aed_dataset, break_rows, komae_rows, write_staged

from expectations.report import build_data_docs, render_report
from expectations.validate import ValidationResult, validate_table
from kouiki.model import Policy

NORMALISATIONS = {"開始時間": {"time-padded": 28}, "名称_カナ": {"halfwidth-kana": 57},
                  "備考": {"some-future-rule": 2, "whitespace-stripped": 0}}
NOTICES: list[dict[str, Any]] = [
    {"code": "blank-row", "message_ja": "空の行を2行読み飛ばしました。",
     "message_en": "Skipped 2 blank rows.", "line": 60, "column": None, "count": 2, "details": {}},
]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> ValidationResult:
    values, raws = komae_rows()
    break_rows(values, raws)
    db = write_staged(tmp_path_factory.mktemp("report") / "staged.duckdb", values, raws)
    return validate_table(db, "staged", aed_dataset(), raw_table="staged_raw", upload_id="up-7",
                          extra_columns=["都道府県名"])


@pytest.fixture(scope="module")
def report(result: ValidationResult) -> tuple[str, dict[str, Any]]:
    return render_report(result, file_name="komae_<b>aed</b>.csv", city_name="狛江市",
                         dataset_name_ja="AED設置箇所一覧", normalisations=NORMALISATIONS, notices=NOTICES)


def test_hostile_cell_is_escaped(report: tuple[str, dict[str, Any]]) -> None:
    html, _ = report
    assert "<script" not in html.lower()                    # the page has no script of its own either
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<b>aed</b>" not in html and "komae_&lt;b&gt;aed&lt;/b&gt;.csv" in html
    assert "Content-Security-Policy" in html


def _problem_section(html: str, title_ja: str, column: str) -> str:
    start = html.index(f"{title_ja}：「{column}」")
    return html[start:html.index("</section>", start)]


def test_html_shows_lines_values_and_hints(report: tuple[str, dict[str, Any]]) -> None:
    html, _ = report
    phone = _problem_section(html, "書式の誤り", "電話番号")
    cells = [unescape(c) for c in re.findall(r'<td class="(?:num|cell)">(.*?)</td>', phone)]
    assert cells == ["10", SCRIPT, "57", "なし"]                # line number, then the value as written
    assert "03-1234-5678 のように半角数字とハイフンで記入してください" in phone
    assert "How to fix:" in phone                             # English below the Japanese
    unique = _problem_section(html, "IDの重複", "ID")
    assert re.findall(r'<td class="num">(\d+)</td>', unique) == ["5", "6"]
    assert "53 行を受け付けて公開し、公開すると誤解を招く誤りのある 4 行は保留しました" in html
    assert "そのうち 4 行に確認のお願いがあります" in html
    assert "確認のお願い：行は公開しています" in phone and "要修正：この行は公開していません" in unique
    assert "標準にない列" in html and "都道府県名" in html
    assert "時刻を2桁にそろえた" in html and "some-future-rule" in html
    assert "空の行を2行読み飛ばしました。" in html and "空の行は取り込んでいません" in html


def test_json_has_the_same_counts(report: tuple[str, dict[str, Any]], result: ValidationResult) -> None:
    _, data = report
    data = json.loads(json.dumps(data, ensure_ascii=False))      # JSON-able as it is
    assert data["counts_by_code"] == result.counts_by_code
    assert sum(p["count"] for p in data["problems"]) == result.findings.height
    by_key = {(p["error_code"], p["column"]): p for p in data["problems"]}
    assert by_key[("format-error", "電話番号")]["lines"] == [10, 57]
    assert [x["raw_value"] for x in by_key[("format-error", "電話番号")]["examples"]] == [SCRIPT, "なし"]
    assert (data["summary"]["rows_total"], data["summary"]["rows_accepted"],
            data["summary"]["rows_quarantined"], data["summary"]["decision"]) == (57, 53, 4, "quarantine")
    assert data["summary"]["rows_with_warnings"] == 4
    # errors (rows withheld) before warnings, heavier first in each; file-level problems without examples
    severities = [p["severity"] for p in data["problems"]]
    assert severities == sorted(severities)           # "error" < "warning"
    for severity in ("error", "warning"):
        weights = [p["weight"] for p in data["problems"] if p["severity"] == severity]
        assert weights == sorted(weights, reverse=True)
    assert by_key[("extra-label", "都道府県名")]["examples"] == []
    rules = [n["rule"] for n in data["normalisations"]]
    assert rules == ["time-padded", "halfwidth-kana", "some-future-rule"]        # count 0 left out


def test_examples_are_capped_but_every_line_is_listed(tmp_path: Path) -> None:
    values, raws = komae_rows()
    for v, r in zip(values, raws, strict=True):
        v["電話番号"] = r["電話番号"] = "なし"
    db = write_staged(tmp_path / "all_bad.duckdb", values, raws)
    # a dataset whose policy makes 電話番号 strict: every row is withheld, so the upload is refused
    strict = Policy(reject_above=0.5, strict_columns=("電話番号",))
    bad = validate_table(db, "staged", aed_dataset(strict), raw_table="staged_raw")
    html, data = render_report(bad, file_name="aed.csv", city_name="狛江市",
                               dataset_name_ja="AED設置箇所一覧", normalisations={}, notices=[])
    phone = next(p for p in data["problems"] if p["column"] == "電話番号")
    assert len(phone["examples"]) == 20 and len(phone["lines"]) == 57
    assert "ほか 37件" in html
    assert data["summary"]["decision"] == "reject" and data["summary"]["rows_accepted"] == 0
    assert "基準の 50% を超えたため" in data["summary"]["decision_ja"]


def test_data_docs_for_the_office(result: ValidationResult, tmp_path: Path) -> None:
    """The office's page of a validation replaces GE's Data Docs site: every expectation with its result,
    failures first, self-contained (no script, no network), and GE's result JSON beside it."""
    stale = tmp_path / "docs" / "validations" / "old.html"      # an older GE site in the same folder
    stale.parent.mkdir(parents=True)
    stale.write_text("<html>old</html>", encoding="utf-8")
    index = build_data_docs(result.ge_result, tmp_path / "docs", run_name="132195-up-7")
    page = index.read_text(encoding="utf-8")
    assert not stale.exists()
    assert json.loads((tmp_path / "docs" / "validation.json").read_text(encoding="utf-8")) == json.loads(
        json.dumps(result.ge_result, default=str))
    assert "kouiki.aed.test" in page and "電話番号" in page and "狛江市 132195" in page
    assert "expect_column_values_to_have_valid_local_government_check_digit" in page
    assert "<script" not in page and not re.search(r"(src|href)=\"https?:", page)
    rows = re.findall(r'<tr class="(passed|failed)">', page)
    failed = sum(not e.success for e in result.expectations)
    assert failed > 0 and rows == ["failed"] * failed + ["passed"] * (len(result.expectations) - failed)
    assert "JST" in page
