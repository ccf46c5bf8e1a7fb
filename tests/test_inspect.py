"""``kouiki inspect`` reports the data rows it read, whatever it decides about the dataset (issue 15).

Every file in ../shared/samples and the demo inbox is inspected; its row count is asserted against the number
published in ../shared/samples/SOURCES.md (rows × cols) and against an independent count made here with the
csv module (records after the header, '#' metadata lines and blank records left out)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.cli import app
from commands.inspect import inspect_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")
DEMO = ROOT / "demo" / "uploads"

# rows per file as SOURCES.md gives them (takamatsu: 70 rows + 4 blank lines)
EXPECTED_ROWS = {
    "ichikawa_122033_101_public_facility.csv": 342,
    "ichikawa_122033_102_cultural_property.csv": 76,
    "ichikawa_122033_103_evacuation_space.csv": 121,
    "ichikawa_122033_104_population.csv": 237,
    "ichikawa_122033_105_preschool.csv": 384,
    "ichikawa_122033_106_open_data_list.csv": 36,
    "ichikawa_122033_107_public_wireless_lan.csv": 45,
    "yaizu_222127_aed.csv": 82,
    "yaizu_222127_public_toilet.csv": 112,
    "yaizu_222127_evacuation_space.csv": 31,
    "yaizu_222127_preschool.csv": 60,
    "yaizu_222127_public_wireless_lan.csv": 17,
    "komae_132195_aed.csv": 57,
    "takamatsu_0012_kindergarten.csv": 70,
}
FILES = sorted([*SAMPLES.glob("*.csv"), *DEMO.glob("*/*.csv")]) if SAMPLES.is_dir() else []
pytestmark = pytest.mark.skipif(not FILES, reason="../shared/samples is absent")


def _independent_count(path: Path) -> int:
    """Non-blank records below the header, '#' lines skipped, by the csv module alone (a LinkData file's header
    is its '#property' line, itself a '#' line)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp932")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    linkdata = any(row and row[0].strip().lower() == "#property" for row in rows)
    records = [row for row in rows if not (row and row[0].startswith("#")) and any(cell.strip() for cell in row)]
    return len(records) - (0 if linkdata else 1)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_inspect_reports_rows_of_every_sample_and_demo_file(path: Path) -> None:
    report = inspect_file(path, validate=False)
    assert report["ok"], report.get("error")
    assert report["rows"] == EXPECTED_ROWS[path.name] == _independent_count(path)
    linkdata = path.name.startswith("takamatsu")   # its '#property' names are reported for mapping
    assert bool(report["properties"]) is linkdata
    if linkdata:
        assert report["properties"]["address"] == "address" and report["properties"]["location"] == "location"


def test_every_sample_has_an_expected_count() -> None:
    assert {p.name for p in FILES} == set(EXPECTED_ROWS)


OWN_LAYOUT = """\
番号,医療機関名,所在地,電話,病床数,,
,,,,一般,療養,計
1,ａクリニック,大分市中央町1-1,097-111-1111,10,0,10
2,ｂ医院,大分市府内町2-2,097-222-2222,0,5,5
3,ｃ診療所,大分市荷揚町3-3,097-333-3333,,,
"""


def test_a_refused_file_still_reports_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "clinics.csv"
    path.write_text(OWN_LAYOUT, encoding="utf-8")
    report = inspect_file(path, validate=False)
    assert not report["ok"] and report["error"]["code"] == "no-dataset-match"
    assert report["rows"] == 3
    assert report["columns"] == ["番号", "医療機関名", "所在地", "電話", "病床数_一般", "病床数_療養", "病床数_計"]
    assert report["candidates"] and report["encoding"] == "utf-8"


def test_header_only_and_unknown_dataset_still_report_rows(tmp_path: Path) -> None:
    header_only = tmp_path / "222127_aed.csv"
    header_only.write_text("全国地方公共団体コード,ID,名称,所在地_連結表記,緯度,経度\n", encoding="utf-8")
    report = inspect_file(header_only, validate=False)
    assert (report["ok"], report["rows"], report["error"]["code"]) == (False, 0, "no-data-rows")
    unknown = inspect_file(FILES[0], "no_such_dataset", validate=False)
    assert (unknown["ok"], unknown["rows"], unknown["error"]["code"]) == (False, EXPECTED_ROWS[FILES[0].name],
                                                                          "unknown-dataset")


def test_unreadable_file_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "picture.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    report = inspect_file(path)
    assert (report["ok"], report["rows"], report["error"]["code"]) == (False, None, "unsupported-format")


def test_cli_prints_rows_for_a_refused_file_and_a_sample(tmp_path: Path) -> None:
    path = tmp_path / "clinics.csv"
    path.write_text(OWN_LAYOUT, encoding="utf-8")
    refused = CliRunner().invoke(app, ["inspect", str(path)])
    assert refused.exit_code == 2
    assert "rows / 行数 3" in refused.output and "病床数_一般" in refused.output
    sample = SAMPLES / "komae_132195_aed.csv"
    result = CliRunner().invoke(app, ["inspect", str(sample), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["rows"] == 57
    assert (report["validation"]["decision"], report["validation"]["rows_accepted"]) == ("accept", 57)
