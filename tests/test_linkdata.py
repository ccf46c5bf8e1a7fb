"""LinkData files (issue 15): the '#…' metadata lines above the data, English '#property' names kept beside the
header, Japanese labels used as the header when the file has them; every data row counted."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest

from expectations.registry import default_registry
from intake.headers import header_score
from intake.read import RawTable, read_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")

METADATA = """\
#LINK,,,,,
#lang,ja,,,,
#attribution_name,高松市,,,,
#license,http://creativecommons.org/licenses/by/3.0/deed.ja,,,,
#file_name,event,,,,
#download_from,https://example.jp/ckan/dataset/event,,,,
#property,name,address,startDate,telephoneNumber,location
#object_type_xsd,string,string,date,string,string
#property_context,Assertion,Assertion,Assertion,Assertion,Assertion
"""
LABELS = "名称,住所,開始日,電話番号,位置"
ROWS = """\
1,夏祭り,高松市番町１－８－１５,2024/8/1,087-839-2011,"34.34,134.04"
,,,,,
3,ｾﾝﾀ-まつり,香川県高松市鍛冶屋町３－３,令和6年9月1日,087-000-0000,"34.33,134.05"
4,秋祭り,高松市香西西町59-1,2024/10/5,087-882-0161,"34.34,133.99"
"""
PROPERTIES = ["", "name", "address", "startDate", "telephoneNumber", "location"]


def _read(text: str, name: str = "event.csv") -> RawTable:
    registry = default_registry()
    return read_bytes(text.encode("utf-8"), name, header_scorer=lambda h: header_score(h, registry))


def test_label_line_is_the_header_and_properties_are_kept() -> None:
    table = _read(METADATA + "#label," + LABELS + "\n" + ROWS)
    assert table.header == ["", "名称", "住所", "開始日", "電話番号", "位置"]
    assert table.property_names == PROPERTIES
    assert table.property_types == ["", "string", "string", "date", "string", "string"]
    assert len(table.preamble) == 10                          # 9 metadata lines and the #label line
    assert table.data.height == 3 and table.blank_rows_skipped == 1
    assert table.data["_source_line"].to_list() == [11, 13, 14]
    assert table.data["名称"].to_list() == ["夏祭り", "ｾﾝﾀ-まつり", "秋祭り"]   # read as written; staging widens
    assert table.data["列1"].to_list() == ["1", "3", "4"]    # LinkData's subject column, kept
    assert any(n.details.get("chosen_by") == "linkdata-label" for n in table.notices)


def test_plain_label_row_under_the_metadata_is_the_header() -> None:
    table = _read(METADATA + "ID," + LABELS + "\n" + ROWS)
    assert table.header == ["ID", "名称", "住所", "開始日", "電話番号", "位置"]
    assert table.property_names == PROPERTIES
    assert len(table.preamble) == 9
    assert table.data.height == 3 and table.data["_source_line"].to_list() == [11, 13, 14]
    assert table.data["開始日"].to_list() == ["2024/8/1", "令和6年9月1日", "2024/10/5"]


def test_without_labels_the_english_names_are_the_header() -> None:
    table = _read(METADATA + ROWS)
    assert table.header == PROPERTIES and table.property_names == PROPERTIES
    assert table.data.height == 3 and table.data["_source_line"].to_list() == [10, 12, 13]
    assert table.data["address"].to_list()[0] == "高松市番町１－８－１５"


def test_linkdata_in_an_excel_sheet() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in csv.reader(io.StringIO(METADATA + "#label," + LABELS + "\n" + ROWS)):
        sheet.append([cell or None for cell in row])
    out = io.BytesIO()
    book.save(out)
    registry = default_registry()
    table = read_bytes(out.getvalue(), "event.xlsx", header_scorer=lambda h: header_score(h, registry))
    assert table.header == ["", "名称", "住所", "開始日", "電話番号", "位置"]
    assert table.property_names == PROPERTIES
    assert table.data.height == 3 and table.data["_source_line"].to_list() == [11, 13, 14]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")
def test_takamatsu_sample_rows_and_properties() -> None:
    data = (SAMPLES / "takamatsu_0012_kindergarten.csv").read_bytes()
    registry = default_registry()
    table = read_bytes(data, "takamatsu_0012_kindergarten.csv", header_scorer=lambda h: header_score(h, registry))
    # counted independently: lines after the 9 '#' lines that hold any cell
    lines = data.decode("utf-8-sig").splitlines()
    assert sum(1 for line in lines if line.startswith("#")) == 9
    filled = [line for line in lines[9:] if line.strip(",")]
    assert table.data.height == len(filled) == 70
    assert table.blank_rows_skipped == len(lines) - 9 - 70 == 4
    assert table.property_names == ["", "name", "address", "telephoneNumber", "referenceObject", "note", "location"]
