"""Generated files for intake cases the real samples do not show: several municipalities in one file (split by
code, refused where the uploader may not submit) and latitude/longitude swapped in every row."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from expectations.registry import default_registry
from intake.inbox import detect_upload
from intake.landing import land_file
from intake.process import stage_file
from kouiki import catalog, lake
from kouiki.settings import get_paths
from warehouse.load import load_uploads

HEADER = "全国地方公共団体コード,ID,名称,所在地_連結表記,緯度,経度,設置位置\n"


def _land(tmp: Path, city: str, name: str, text: str) -> catalog.UploadRow:
    paths = get_paths()
    (tmp / name).write_text(text, encoding="utf-8")
    landed = land_file(paths, city, tmp / name)
    upload = catalog.get_upload(paths.catalog_url, landed.upload_id)
    assert upload is not None
    detect_upload(paths, default_registry(), upload)
    fresh = catalog.get_upload(paths.catalog_url, landed.upload_id)
    assert fresh is not None
    return fresh


def _row_errors(codes: dict[str, int]) -> dict[str, int]:
    """The codes found in rows (the short generated files also lack many optional columns: missing-label)."""
    return {code: n for code, n in codes.items() if code != "missing-label"}


def test_multi_municipality_file_is_split_and_unauthorised_rows_refused(kouiki_home: Path, tmp_path: Path) -> None:
    rows = [
        "222127,1,焼津市役所,静岡県焼津市本町2-16-32,34.867,138.3237,1階",      # the uploader itself
        "222143,2,藤枝市役所,静岡県藤枝市岡出山1-11-1,34.867,138.2578,1階",      # 藤枝市: allowed
        "222143,3,藤枝市民会館,静岡県藤枝市岡出山1-11-2,34.868,138.2580,2階",
        "222038,4,沼津市役所,静岡県沼津市御幸町16-1,35.0954,138.8634,1階",       # 沼津市: not allowed
        "220001,5,県の施設,静岡県焼津市本町1-1,34.866,138.3230,1階",            # the prefecture's code
    ]
    upload = _land(tmp_path, "222127", "shared_aed.csv", HEADER + "\n".join(rows) + "\n")
    paths = get_paths()
    [outcome] = load_uploads(paths, default_registry(), [upload], {"222127": ("222143",)})
    assert outcome.decision == "quarantine"
    assert _row_errors(outcome.failures_by_code) == {"other-municipality": 1}
    staged = lake.read_partition(paths.lake, "staged", "aed", "222127")
    assert staged is not None
    by_city = dict(staged.group_by("_city_code").len().iter_rows())
    assert by_city == {"222127": 2, "222143": 2}
    quarantine = lake.read_partition(paths.lake, "quarantine", "aed", "222127")
    assert quarantine is not None
    assert quarantine.select("_source_line", "_errors").row(0) == (5, "全国地方公共団体コード:other-municipality")
    findings = lake.read_partition(paths.lake, "findings", "aed", "222127")
    assert findings is not None
    refused = findings.filter(pl.col("error_code") == "other-municipality")
    assert refused["message_ja"][0].startswith("「全国地方公共団体コード」が「222038」")


def test_without_rights_every_other_municipality_row_is_refused(kouiki_home: Path, tmp_path: Path) -> None:
    text = HEADER + "222127,1,焼津市役所,静岡県焼津市本町2-16-32,34.867,138.3237,1階\n" \
        + "222143,2,藤枝市役所,静岡県藤枝市岡出山1-11-1,34.867,138.2578,1階\n"
    upload = _land(tmp_path, "222127", "aed2.csv", text)
    [outcome] = load_uploads(get_paths(), default_registry(), [upload])
    assert (outcome.rows_accepted, _row_errors(outcome.failures_by_code)) == (1, {"other-municipality": 1})


def _aed_rows(coordinates: list[tuple[str, str]]) -> str:
    return HEADER + "".join(f"222127,{i},施設{i},静岡県焼津市本町{i},{lat},{lon},1階\n"
                            for i, (lat, lon) in enumerate(coordinates, start=1))


def test_file_swapped_in_every_row_is_fixed_and_the_city_told(kouiki_home: Path, tmp_path: Path) -> None:
    swapped = [(f"138.32{i}", f"34.86{i}") for i in range(1, 8)]
    upload = _land(tmp_path, "222127", "222127_aed.csv", _aed_rows(swapped))
    paths = get_paths()
    [outcome] = load_uploads(paths, default_registry(), [upload])
    assert (outcome.decision, outcome.rows, outcome.rows_accepted, outcome.rows_quarantined) == ("accept", 7, 7, 0)
    staged = lake.read_partition(paths.lake, "staged", "aed", "222127")
    assert staged is not None
    assert staged.sort("_source_line").select("緯度", "経度").row(0) == ("34.861", "138.321")   # swapped back
    findings = lake.read_partition(paths.lake, "findings", "aed", "222127")
    assert findings is not None
    fixed = findings.filter(pl.col("error_code") == "swapped-coordinates-fixed")
    # one warning per fixed cell, on its line, quoting the value as written
    assert fixed.height == 14 and set(fixed["severity"]) == {"warning"}
    assert sorted(fixed.filter(pl.col("column") == "緯度")["source_line"]) == list(range(2, 9))
    assert fixed.filter((pl.col("column") == "緯度") & (pl.col("source_line") == 2)).select(
        "raw_value", "value").row(0) == ("138.321", "34.861")
    report = (paths.home / outcome.report_html).read_text(encoding="utf-8") if outcome.report_html else ""
    assert "緯度と経度が入れ替わっています（7/7行）。ファイル全体で入れ替わっているため、入れ替えて公開します" in report


def test_mixed_swaps_stay_findings(kouiki_home: Path, tmp_path: Path) -> None:
    rows = [("34.861", "138.321"), ("34.862", "138.322"), ("138.323", "34.863"),   # line 4 swapped
            ("34.864", "138.324"), ("34.865", "138.325"), ("0", "0"),              # line 7 outside Japan
            ("34.867", "138.327")]
    upload = _land(tmp_path, "222127", "mixed_aed.csv", _aed_rows(rows))
    paths = get_paths()
    [outcome] = load_uploads(paths, default_registry(), [upload])
    assert (outcome.rows_accepted, outcome.rows_quarantined) == (6, 1)
    staged = lake.read_partition(paths.lake, "staged", "aed", "222127")
    assert staged is not None
    swapped_row = staged.filter(pl.col("_source_line") == 4)
    assert swapped_row.select("緯度", "経度").row(0) == (None, None)       # not guessed: published without
    findings = lake.read_partition(paths.lake, "findings", "aed", "222127")
    assert findings is not None
    assert sorted(findings.filter(pl.col("error_code") == "swapped-coordinates")["source_line"]) == [4, 4]
    errors = findings.filter(pl.col("severity") == "error")
    assert set(zip(errors["error_code"], errors["source_line"], strict=True)) == {("coordinate-error", 7)}


def test_policy_can_turn_the_swap_fix_off(tmp_path: Path) -> None:
    from dataclasses import replace

    from intake.process import stage_table
    path = tmp_path / "222127_aed.csv"
    path.write_text(_aed_rows([(f"138.32{i}", f"34.86{i}") for i in range(1, 8)]), encoding="utf-8")
    staged = stage_file(path, default_registry())
    aed = default_registry().get("aed")
    keeping = replace(aed, policy=replace(aed.policy, fix_swapped_coordinates=False))
    kept = stage_table(staged.raw_table, keeping, staged.match)
    [notice] = [n for n in kept.notices if n.code == "swapped-coordinates"]
    assert notice.count == 7 and notice.details["fixed"] is False
    assert kept.values["緯度"][0] == "138.321" and kept.cell_problems.is_empty()   # left as written


def test_header_only_and_empty_files_are_refused_at_intake(kouiki_home: Path, tmp_path: Path) -> None:
    """Nothing to publish is refused with a message when the file is detected, never as a failed check."""
    paths = get_paths()
    for name, text, code in (("222127_aed.csv", HEADER, "no-data-rows"),
                             ("blank_aed.csv", HEADER + ",,,,,,\n\n,,,,,,\n", "no-data-rows"),
                             ("empty_aed.csv", "", "empty-file")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        landed = land_file(paths, "222127", tmp_path / name)
        upload = catalog.get_upload(paths.catalog_url, landed.upload_id)
        assert upload is not None
        assert detect_upload(paths, default_registry(), upload) == "unreadable"
        refused = catalog.get_upload(paths.catalog_url, landed.upload_id)
        assert refused is not None and refused.status == "unreadable" and refused.dataset_id is None
        error = (refused.detail or {})["error"]
        assert error["code"] == code, name
        assert error["message_ja"] and error["message_en"] and error["hint_ja"]
        if code == "no-data-rows":
            assert "データの行がありません" in error["message_ja"] and name in error["message_ja"]


def test_columns_without_a_standard_counterpart_are_kept(tmp_path: Path) -> None:
    header = "全国地方公共団体コード,ID,名称,所在地_連結表記,緯度,経度,設置位置,名称,担当課,,_row\n"
    row = "222127,1,焼津市役所,静岡県焼津市本町2-16-32,34.867,138.3237,1階,市役所本館, 管財課 ,メモ,x\n"
    path = tmp_path / "222127_aed.csv"
    path.write_text(header + row, encoding="utf-8")
    staged = stage_file(path, default_registry())
    extras = staged.extra_columns
    # a second 名称, a city's own column, an unnamed column with data, a name the lake uses itself
    assert extras == {"名称_列8": "名称", "担当課": "担当課", "列10": "", "row_列11": "_row"}
    first = staged.values.row(0, named=True)
    assert (first["名称"], first["名称_列8"], first["担当課"], first["列10"]) == ("焼津市役所", "市役所本館",
                                                                               " 管財課 ", "メモ")
    assert first["_row"] == 0 and first["row_列11"] == "x"   # kept raw, never overwriting the lake's own
    canonical = [c.name for c in staged.dataset.canonical.columns]
    assert staged.values.columns[2:2 + len(canonical)] == canonical   # standard columns first, extras after
