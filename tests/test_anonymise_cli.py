"""anonymise_csv (the `kouiki anonymise` function) on small generated files with ARX-format hierarchies."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from anonymise.cli_entry import anonymise_csv, read_delimited
from anonymise.hierarchy import hierarchy_from_arx_csv, interval_hierarchy
from anonymise.synthetic import generate_care_records

SEX_CSV = Path(__file__).parents[1] / "config" / "anonymisation" / "hierarchies" / "sex.csv"


def write_inputs(folder: Path, records: int, delimiter: str) -> tuple[Path, dict[str, Path]]:
    """A CSV with exact ages, 町字, 性別, 要介護度 and identifiers, plus ARX hierarchies (';' and ',')."""
    source = generate_care_records("122033", records, seed=31)
    ages = (2025 - source["生年月日"].dt.year()).cast(pl.Int32)
    table = source.select("氏名", "個人番号", "町字", "性別", "要介護度").with_columns(年齢=ages.cast(pl.String))
    data = folder / "input.csv"
    table.write_csv(data, separator=delimiter)
    age = folder / "age.csv"
    interval_hierarchy("年齢", ages.unique().to_list(), (5, 10)).to_arx_csv(age, delimiter=";")
    area = folder / "area.csv"
    with area.open("w", encoding="utf-8") as handle:
        for name in sorted(source["町字"].unique()):
            handle.write(f"{name},市川市,*\n")
    return data, {"年齢": age, "町字": area, "性別": SEX_CSV}


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_cli_function_anonymises_and_reports(tmp_path: Path, delimiter: str) -> None:
    data, qis = write_inputs(tmp_path, 3_000, delimiter)
    out, report_path = tmp_path / "out.csv", tmp_path / "report.json"
    report = anonymise_csv(data, qis, ["要介護度"], k=5, l=2, max_suppression=5, out=out, report=report_path)
    assert report == json.loads(report_path.read_text(encoding="utf-8"))
    assert report["released"] is True and report["failure"] is None
    released, used = read_delimited(out)
    assert used == delimiter
    assert set(released.columns) == {"年齢", "町字", "性別", "要介護度"}
    assert set(report["dropped_columns"]) == {"氏名", "個人番号"}
    assert set(report["identifier_columns_scanned"]) == {"氏名", "個人番号"}
    # the report's figures are those of the file
    classes = released.group_by(["年齢", "町字", "性別"]).agg(pl.len(), pl.col("要介護度").n_unique().alias("d"))
    assert report["verification"]["k"] == classes["len"].to_numpy().min() >= 5
    assert report["verification"]["l"] == classes["d"].to_numpy().min() >= 2
    assert report["equivalence_classes"]["count"] == classes.height
    assert report["records_suppressed"] == 3_000 - released.height
    assert report["suppressed_pct"] <= 5
    assert 0 < report["loss"]["value"] < 1 and "ARX Loss" in report["loss"]["metric"]
    for qi, path in qis.items():
        level = report["levels"][qi]["level"]
        assert set(released[qi].unique()) <= set(hierarchy_from_arx_csv(path, qi).level_labels(level))


def test_cli_function_refuses_an_impossible_model(tmp_path: Path) -> None:
    data, qis = write_inputs(tmp_path, 200, ",")
    out, report_path = tmp_path / "out.csv", tmp_path / "report.json"
    out.write_text("stale", encoding="utf-8")
    report = anonymise_csv(data, qis, ["要介護度"], k=500, l=2, max_suppression=5, out=out, report=report_path)
    assert report["released"] is False
    assert not out.exists()
    assert report["failure"]["code"] == "model_not_achievable"
    assert "k=500" in report["failure"]["ja"] and "k=500" in report["failure"]["en"]


def test_cli_function_names_a_missing_column(tmp_path: Path) -> None:
    data, qis = write_inputs(tmp_path, 50, ",")
    report = anonymise_csv(data, {**qis, "住所": qis["町字"]}, [], 3, None, 5, tmp_path / "o.csv", tmp_path / "r.json")
    assert report["failure"]["code"] == "missing_column" and "住所" in report["failure"]["ja"]
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == report


def test_a_value_missing_from_a_hierarchy_is_named(tmp_path: Path) -> None:
    data, qis = write_inputs(tmp_path, 300, ",")
    partial = tmp_path / "sex_partial.csv"
    partial.write_text("男;*\n", encoding="utf-8")
    report = anonymise_csv(data, {**qis, "性別": partial}, [], 3, None, 5, tmp_path / "o.csv", tmp_path / "r.json")
    assert report["failure"]["code"] == "hierarchy_error" and "女" in report["failure"]["en"]
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == report  # written on this outcome too
    assert not (tmp_path / "o.csv").exists()


def test_cp932_input_is_read(tmp_path: Path) -> None:
    data = tmp_path / "sjis.csv"
    data.write_bytes("町字;性別\n髙田1丁目;女\n".encode("cp932"))
    table, delimiter = read_delimited(data)
    assert delimiter == ";" and table.row(0) == ("髙田1丁目", "女")
