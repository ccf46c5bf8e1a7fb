"""Headers on two or three rows (issue 15): a group label over sub-columns joined into one name per column.

Generated files in the shapes cities publish (大分市's clinic list: 病床数 over 一般/療養/計, a title line above
and a note line below; the same as an xlsx with merged cells made by openpyxl), read and staged as an upload
would be; cells, names and row counts asserted.
"""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

from expectations.registry import default_registry
from intake.header_rows import Merge, count_header_rows, join_header_rows
from intake.headers import header_score
from intake.process import stage_file
from intake.read import RawTable, read_bytes

BEDS = ["病床数_一般", "病床数_療養", "病床数_計"]

CLINIC_CSV = """\
大分市 医療機関一覧（令和6年4月1日現在）
都道府県コード又は市区町村コード,NO,名称,名称_カナ,医療機関の種類,住所,電話番号,診療曜日,診療開始時間,診療終了時間,診療科目,病床数,,,URL
,,,,,,,,,,,一般,療養,計,
442011,1,大分ｾﾝﾀ-病院,ｵｵｲﾀｾﾝﾀ-ﾋﾞｮｳｲﾝ,病院,大分市中央町１－１－１,097-111-1111,月火水木金,9:00,17:00,内科,120,30,150,https://example.jp/a
442011,2,府内クリニック,フナイクリニック,診療所,大分県大分市府内町２ー２,097-222-2222,月火水木金土,8:30,12:30,外科,0,0,0,
,,,,,,,,,,,,,,
442011,3,ｺｰｽ-A診療所,ｺｰｽ-Aｼﾝﾘｮｳｼﾞｮ,診療所,荷揚町３−５,097-333-3333,月水金,9:00,18:00,小児科,,,,
※病床数は令和6年4月1日現在
"""


def _read(data: bytes, name: str) -> RawTable:
    registry = default_registry()
    return read_bytes(data, name, header_scorer=lambda h: header_score(h, registry))


# ------------------------------------------------------------------------------------------ the rules


def test_group_row_over_sub_columns_is_joined() -> None:
    header = ["番号", "医療機関名", "病床数", "", ""]
    sub = ["", "", "一般", "療養", "計"]
    data = ["1", "大分病院", "120", "30", "150"]
    assert count_header_rows([header, sub, data]) == 2
    assert join_header_rows([header, sub]) == ["番号", "医療機関名", *BEDS]


def test_three_rows_split_a_group_twice() -> None:
    rows = [["名称", "病床数", "", "", "", ""],
            ["", "一般", "", "療養", "", "計"],
            ["", "男", "女", "男", "女", ""],
            ["大分病院", "1", "2", "3", "4", "10"]]
    assert count_header_rows(rows) == 3
    assert join_header_rows(rows[:3]) == ["名称", "病床数_一般_男", "病床数_一般_女", "病床数_療養_男",
                                          "病床数_療養_女", "病床数_計"]


@pytest.mark.parametrize("rows", [
    [["番号", "名称", "電話"], ["1", "大分病院", "097-111-1111"]],             # an ordinary data row
    [["名称", "備考", ""], ["公民館", "休館", "月曜"]],                       # text under a single column
    [["医療機関一覧", "", ""], ["番号", "名称", "電話"]],                      # a title is not a group
    [["名称", "病床数", "", ""], ["", "120", "30", "150"]],                   # numbers are values, not labels
])
def test_rows_that_are_not_sub_headers(rows: list[list[str]]) -> None:
    assert count_header_rows(rows) == 1


def test_merged_cells_decide_even_for_numeric_sub_labels() -> None:
    rows = [["地区", "人口", "", ""], ["", "2020", "2021", "2022"], ["A地区", "100", "120", "130"]]
    merges = [Merge(0, 0, 1, 0), Merge(0, 1, 0, 3)]   # A1:A2 merged down, B1:D1 across
    assert count_header_rows(rows) == 1              # without merges: years look like values
    assert count_header_rows(rows, merges) == 2
    assert join_header_rows(rows[:2], merges) == ["地区", "人口_2020", "人口_2021", "人口_2022"]


# ------------------------------------------------------------------------------------------ CSV files


def test_clinic_csv_two_row_header_read_and_normalised(tmp_path: Path) -> None:
    path = tmp_path / "442011_clinic.csv"
    path.write_text(CLINIC_CSV, encoding="utf-8")
    staged = stage_file(path, default_registry())
    raw = staged.raw_table
    assert raw.header[-4:] == [*BEDS, "URL"] and raw.preamble == ["大分市 医療機関一覧（令和6年4月1日現在）"]
    assert staged.dataset.id == "hospital"
    values = staged.values
    assert values.height == 3                                  # lines 4, 5, 7: blank line 6 and the note dropped
    assert values["_source_line"].to_list() == [4, 5, 7]
    assert values["病床数_一般"].to_list() == ["120", "0", ""]
    assert values["病床数_計"].to_list() == ["150", "0", ""]
    assert values["名称"].to_list() == ["大分センター病院", "府内クリニック", "コース-A診療所"]
    assert values["名称_カナ"].to_list() == ["オオイタセンタービョウイン", "フナイクリニック", "コース-Aシンリョウジョ"]
    assert values["住所"].to_list() == ["大分県大分市中央町1-1-1", "大分県大分市府内町2-2", "大分県大分市荷揚町3-5"]
    assert staged.raw["住所"].to_list() == ["大分市中央町１－１－１", "大分県大分市府内町２ー２", "荷揚町３−５"]
    codes = {n.code: n for n in staged.notices}
    assert codes["header-rows"].details["lines"] == [2, 3]
    assert codes["note-row"].details["notes"] == ["※病床数は令和6年4月1日現在"]


def test_cp932_three_row_header(tmp_path: Path) -> None:
    text = ("地区,人口,,,,世帯数\r\n,男,,女,,\r\n,日本人,外国人,日本人,外国人,\r\n"
            "府内,100,3,110,2,90\r\n中央,200,5,210,4,180\r\n")
    table = read_bytes(text.encode("cp932"), "population.csv")
    assert table.encoding == "cp932"
    assert table.header == ["地区", "人口_男_日本人", "人口_男_外国人", "人口_女_日本人", "人口_女_外国人", "世帯数"]
    assert table.data.height == 2 and table.data["_source_line"].to_list() == [4, 5]
    assert table.data["人口_女_外国人"].to_list() == ["2", "4"]


# ------------------------------------------------------------------------------------------ xlsx files


def _clinic_workbook(*, merged: bool, start_column: int = 1) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    rows: list[list[str | int | None]] = [
        ["医療機関一覧（令和6年4月1日現在）"],
        ["番号", "医療機関名", "所在地", "病床数", None, None, "診療科目"],
        [None, None, None, "一般", "療養", "計", None],
        [1, "大分ｾﾝﾀ-病院", "大分市中央町１－１－１", 120, 30, 150, "内科"],
        [2, "府内クリニック", "大分市府内町2ー2", 0, 0, 0, "外科"],
    ]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=start_column):
            if value is not None:
                sheet.cell(r, c, value)
    if merged:
        col = openpyxl.utils.get_column_letter
        for first, last in ((0, 0), (1, 1), (2, 2), (6, 6)):
            sheet.merge_cells(f"{col(start_column + first)}2:{col(start_column + last)}3")
        sheet.merge_cells(f"{col(start_column + 3)}2:{col(start_column + 5)}2")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize(("merged", "start_column"), [(True, 1), (True, 3), (False, 1)])
def test_xlsx_two_row_header(merged: bool, start_column: int) -> None:
    table = _read(_clinic_workbook(merged=merged, start_column=start_column), "clinic.xlsx")
    assert table.header == ["番号", "医療機関名", "所在地", *BEDS, "診療科目"]
    assert table.data.height == 2 and table.data["_source_line"].to_list() == [4, 5]
    assert table.data["病床数_療養"].to_list() == ["30", "0"]
    assert table.data["診療科目"].to_list() == ["内科", "外科"]
    notice = next(n for n in table.notices if n.code == "header-rows")
    assert notice.details["merged_cells"] is merged and notice.details["lines"] == [2, 3]


def test_xlsx_merged_years_under_a_group() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["B2"], sheet["C2"] = "地区", "人口"
    sheet["C3"], sheet["D3"], sheet["E3"] = 2020, 2021, 2022
    for row, values in ((4, ("府内", 100, 120, 130)), (5, ("中央", 200, 210, 220))):
        for col, value in enumerate(values, start=2):
            sheet.cell(row, col, value)
    sheet.merge_cells("B2:B3")
    sheet.merge_cells("C2:E2")
    out = io.BytesIO()
    book.save(out)
    table = read_bytes(out.getvalue(), "population.xlsx")
    assert table.header == ["地区", "人口_2020", "人口_2021", "人口_2022"]
    assert table.data.rows() == [(4, "府内", "100", "120", "130"), (5, "中央", "200", "210", "220")]
