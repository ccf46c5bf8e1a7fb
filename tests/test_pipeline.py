"""End to end: the demo cities' real files through the whole Dagster pipeline to a published release."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from kouiki import catalog
from kouiki.settings import Paths
from pipelines.definitions import defs

DEMO = Path(__file__).resolve().parent.parent / "demo" / "uploads"


def test_definitions_load() -> None:
    defs.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"intake/uploads", "lake/aed", "lake/evacuation_space", "conformed/aed", "publish/releases"} <= keys
    assert defs.resolve_job_def("ingest_city").partitions_def is not None


def _upload(run: dict, name: str) -> catalog.UploadRow:
    return next(u for u in run["uploads"] if u.original_name == name)


def test_every_city_run_succeeds_and_files_are_recognised(demo_run: dict) -> None:
    first = demo_run["first"]
    assert first.region_ok
    assert all(c.run_ok for c in first.cities), [c.member.code for c in first.cities if not c.run_ok]
    assert _upload(demo_run, "komae_132195_aed.csv").dataset_id == "aed"
    assert _upload(demo_run, "yaizu_222127_aed.csv").variant == "legacy"
    assert _upload(demo_run, "ichikawa_122033_103_evacuation_space.csv").variant == "current"


def test_row_counts_per_city(demo_run: dict) -> None:
    paths = demo_run["paths"]
    with duckdb.connect(str(paths.warehouse_db), read_only=True) as con:
        aed = dict(con.execute("SELECT _city_code, count(*) FROM conformed.aed GROUP BY 1").fetchall())
        evac = dict(con.execute(
            "SELECT _city_code, count(*) FROM conformed.evacuation_space GROUP BY 1").fetchall())
        quarantined = dict(con.execute(
            "SELECT _city_code, count(*) FROM quarantine.aed GROUP BY 1").fetchall())
    # accepted + quarantined = every data row of the file (SOURCES.md: komae 57, yaizu AED 82 rows)
    assert aed.get("132195", 0) + quarantined.get("132195", 0) == 57
    assert aed.get("222127", 0) + quarantined.get("222127", 0) == 82
    assert evac["122033"] == 121 - _quarantined(paths, "evacuation_space", "122033")
    assert evac["222127"] == 31 - _quarantined(paths, "evacuation_space", "222127")


def _quarantined(paths: Paths, dataset: str, city: str) -> int:
    f = paths.local_lake / "quarantine" / dataset / f"city={city}" / "data.parquet"
    return pl.read_parquet(f).height if f.exists() else 0


def test_cp932_text_is_decoded_exactly(demo_run: dict) -> None:
    paths = demo_run["paths"]
    with duckdb.connect(str(paths.warehouse_db), read_only=True) as con:
        row = con.execute(
            "SELECT 所在地_連結表記, 名称_カナ FROM conformed.evacuation_space WHERE 名称 = '県立国分高校'"
        ).fetchone()
    assert row is not None
    assert row[0] == "千葉県市川市稲越2丁目2-1"
    assert row[1] == "ケンリツコクブンコウコウ"   # half-width kana normalised to full-width


def test_known_bad_value_is_published_with_a_warning_on_its_line(demo_run: dict) -> None:
    """電話番号 なし is not a phone number: a warning, so the row is published with the cell empty."""
    lake_root = demo_run["paths"].lake
    staged = pl.read_parquet(lake_root / "staged" / "aed" / "city=132195" / "data.parquet")
    row = staged.filter(pl.col("名称") == "和泉多摩川地区センター")
    assert row.select("_source_line", "電話番号").rows() == [(57, None)]
    findings = pl.read_parquet(lake_root / "findings" / "aed" / "city=132195" / "data.parquet")
    warning = findings.filter(pl.col("source_line") == 57)
    assert warning.select("column", "raw_value", "error_code", "severity").rows() == [
        ("電話番号", "なし", "format-error", "warning")]
    detail = _upload(demo_run, "komae_132195_aed.csv").detail or {}
    report = json.loads((demo_run["home"] / detail["report_json"]).read_text(encoding="utf-8"))
    assert "57" in json.dumps(report, ensure_ascii=False)


def test_published_csv_rereads_to_the_same_rows(demo_run: dict) -> None:
    paths = demo_run["paths"]
    latest = json.loads((paths.releases / "aed" / "latest.json").read_text(encoding="utf-8"))
    folder = paths.releases / "aed" / str(latest["number"])
    csv = pl.read_csv(folder / "aed.csv", infer_schema=False)
    bom = (folder / "aed_excel.csv").read_bytes()
    assert bom.startswith(b"\xef\xbb\xbf")
    parquet = pl.read_parquet(folder / "aed.parquet")
    with duckdb.connect(str(paths.warehouse_db), read_only=True) as con:
        names = con.execute("SELECT 名称 FROM conformed.aed").fetchall()
    assert csv.height == parquet.height == len(names) == latest["rows"]
    assert csv["名称"].to_list() == [n[0] for n in names]
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    assert meta["licence"]["id"] == "CC-BY-4.0"
    assert set(meta["rows_by_city"]) == {"132195", "222127"}
    assert {s["file"] for s in meta["source_uploads"]} == {"komae_132195_aed.csv", "yaizu_222127_aed.csv"}


def test_second_run_is_idempotent(demo_run: dict) -> None:
    first, second = demo_run["first"], demo_run["second"]
    assert second.region_ok
    assert {k: v["number"] for k, v in first.releases.items()} == {k: v["number"] for k, v in second.releases.items()}
    landing_after = sorted((demo_run["home"] / "landing").rglob("*.*"))
    assert landing_after == demo_run["landing_before"]
    assert len(demo_run["uploads"]) == len([p for p in DEMO.rglob("*") if p.is_file()])
    assert not any(p.name.startswith(".") for p in Path(demo_run["paths"].releases).rglob("*") if p.is_dir())
