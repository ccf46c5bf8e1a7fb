"""A date or time intake could not read takes no part in the 開始日/終了日 (開始時間/終了時間) order check (issue 17):
the city is told once, by the date check (「13月は存在しません」), not also that 終了日 comes before 開始日.

Real-shaped data: an event list (イベント一覧, the legacy columns cities publish) validated through intake, the
staging DuckDB file and both validation paths, Great Expectations (the pipeline) and SQL (``kouiki inspect``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest

from commands.inspect import inspect_file, validate_with_sql
from expectations.registry import default_registry
from intake.process import stage_file

HEADER = ["都道府県コード又は市区町村コード", "NO", "都道府県名", "市区町村名", "イベント名", "イベント名_カナ",
          "開始日", "終了日", "開始時間", "終了時間", "説明", "場所名称", "住所", "緯度", "経度", "URL"]
ROWS = [   # line 2 …
    ["132195", "1", "東京都", "狛江市", "花火大会", "ハナビタイカイ", "2023/08/05", "2023/08/05", "19:00", "20:30",
     "多摩川河川敷で花火を打ち上げます。", "多摩川河川敷", "東京都狛江市元和泉三丁目", "35.6280", "139.5790",
     "https://www.city.komae.tokyo.jp/"],
    # line 3: a start date that is not in the calendar, with an end date that reads
    ["132195", "2", "東京都", "狛江市", "市民まつり", "シミンマツリ", "令和5年13月1日", "2023/11/05", "10:00", "16:00",
     "市役所周辺で市民まつりを開きます。", "狛江市役所", "東京都狛江市和泉本町一丁目1番5号", "35.6348", "139.5787", ""],
    # line 4: a start time that is not a time
    ["132195", "3", "東京都", "狛江市", "星空観察会", "ホシゾラカンサツカイ", "2023/12/02", "2023/12/02", "夕方",
     "08:00", "天体望遠鏡で冬の星座を観察します。", "狛江市西河原公民館", "東京都狛江市元和泉一丁目2番1号", "35.6301",
     "139.5739", ""],
    # line 5: a real order error, both dates readable: still found
    ["132195", "4", "東京都", "狛江市", "講演会", "コウエンカイ", "2023/04/10", "2023/04/01", "10:00", "12:00",
     "防災についての講演会です。", "狛江市中央公民館", "東京都狛江市和泉本町一丁目1番5号", "35.6348", "139.5787", ""],
]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([HEADER, *ROWS])
    path = tmp_path_factory.mktemp("events") / "komae_132195_event.csv"
    path.write_bytes(out.getvalue().encode("cp932"))    # as cities' Excel saves it
    return path


def by_line(findings: pl.DataFrame) -> dict[int, set[tuple[str, str]]]:
    found: dict[int, set[tuple[str, str]]] = {}
    for row in findings.filter(pl.col("source_line").is_not_null()).iter_rows(named=True):
        found.setdefault(row["source_line"], set()).add((row["column"], row["error_code"]))
    return found


@pytest.mark.parametrize("with_ge", [False, True], ids=["sql", "great-expectations"])
def test_an_unreadable_date_or_time_is_not_compared(events: Path, with_ge: bool) -> None:
    staged = stage_file(events, default_registry())
    assert staged.dataset.id == "event"
    result = validate_with_sql(staged, with_ge=with_ge)
    found = by_line(result.findings)
    assert ("開始日", "date-error") in found[3]                         # said once, by the date check
    assert not any(code == "cross-column-error" for _, code in found[3]), found[3]
    assert ("開始時間", "format-error") in found[4]
    assert not any(code == "cross-column-error" for _, code in found[4]), found[4]
    assert found[5] == {("終了日", "cross-column-error")}               # a real order error is still found
    assert 2 not in found
    order = {e.check_id: e.unexpected_count for e in result.expectations if e.error_code == "cross-column-error"}
    assert order == {"cross-column-error:終了日": 1, "cross-column-error:終了時間": 0}
    assert all(gap.consistent for gap in result.gaps)


def test_inspect_reports_the_date_once(events: Path) -> None:
    report = inspect_file(events)
    validation = report["validation"]
    assert report["dataset"] == "event"
    assert validation["counts_by_code"]["cross-column-error"] == 1
    lines = {(f["source_line"], f["error_code"]) for f in validation["first_findings"] if f["source_line"]}
    assert (3, "date-error") in lines and (3, "cross-column-error") not in lines
    assert (5, "cross-column-error") in lines
