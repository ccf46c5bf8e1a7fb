"""Releases: formats, CSV-injection neutralisation, change lists, idempotence and atomic publication."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from expectations.registry import default_registry
from publish.release import PublishError, latest_release, publish_dataset

AED = default_registry().get("aed")


def _table(con: duckdb.DuckDBPyConnection, rows: list[dict[str, object]]) -> str:
    df = pl.DataFrame(rows, schema={"全国地方公共団体コード": pl.String, "ID": pl.String, "名称": pl.String,
                                    "緯度": pl.Float64, "経度": pl.Float64, "備考": pl.String,
                                    "_city_code": pl.String, "_upload_id": pl.String})
    con.register("df", df.to_arrow())
    con.execute("CREATE OR REPLACE TABLE aed AS SELECT * FROM df")
    con.unregister("df")
    return "aed"


ROWS: list[dict[str, object]] = [
    {"全国地方公共団体コード": "132195", "ID": "1", "名称": "狛江市役所", "緯度": 35.6348, "経度": 139.5786,
     "備考": "=HYPERLINK(\"http://evil\")", "_city_code": "132195", "_upload_id": "u1"},
    {"全国地方公共団体コード": "132195", "ID": "2", "名称": "中央公民館", "緯度": None, "経度": None,
     "備考": "-", "_city_code": "132195", "_upload_id": "u1"},
    {"全国地方公共団体コード": "222127", "ID": "1", "名称": "焼津市役所", "緯度": 34.867, "経度": 138.3237,
     "備考": "@SUM(A1)", "_city_code": "222127", "_upload_id": "u2"},
]


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[duckdb.DuckDBPyConnection, Path, str]:
    con = duckdb.connect()
    return con, tmp_path / "releases", f"sqlite:///{tmp_path / 'catalog.sqlite'}"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_release_formats_and_formula_neutralisation(setup: tuple[duckdb.DuckDBPyConnection, Path, str]) -> None:
    con, root, url = setup
    result = publish_dataset(con, AED, _table(con, ROWS), root, url)
    assert result.published and result.number == 1 and result.rows == 3
    folder = result.path
    text = (folder / "aed.csv").read_text(encoding="utf-8")
    cells = list(csv.DictReader(io.StringIO(text)))
    assert [c["備考"] for c in cells] == ["'=HYPERLINK(\"http://evil\")", "'-", "'@SUM(A1)"]
    assert "_city_code" not in cells[0]
    assert (folder / "aed_excel.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    # Parquet and JSON keep the value exactly as published by the city (no spreadsheet runs them)
    assert pl.read_parquet(folder / "aed.parquet")["備考"][0] == "=HYPERLINK(\"http://evil\")"
    records = json.loads((folder / "aed.json").read_text(encoding="utf-8"))
    assert [r["名称"] for r in records] == ["狛江市役所", "中央公民館", "焼津市役所"]
    geo = json.loads((folder / "aed.geojson").read_text(encoding="utf-8"))
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 3
    assert geo["features"][0]["geometry"]["coordinates"] == [139.5786, 35.6348]   # [lon, lat]
    assert geo["features"][1]["geometry"] is None
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    assert meta["rows_by_city"] == {"132195": 2, "222127": 1}
    for f in meta["files"]:
        assert _sha(folder / f["path"]) == f["sha256"]
    assert (folder / "cities" / "132195_aed.csv").exists()


def test_unchanged_data_publishes_nothing(setup: tuple[duckdb.DuckDBPyConnection, Path, str]) -> None:
    con, root, url = setup
    table = _table(con, ROWS)
    assert publish_dataset(con, AED, table, root, url).published
    again = publish_dataset(con, AED, table, root, url)
    assert not again.published and again.number == 1
    assert sorted(p.name for p in (root / "aed").iterdir()) == ["1", "latest.json"]


def test_changes_by_id(setup: tuple[duckdb.DuckDBPyConnection, Path, str]) -> None:
    con, root, url = setup
    publish_dataset(con, AED, _table(con, ROWS), root, url)
    rows = [dict(r) for r in ROWS[:2]]
    rows[1]["名称"] = "中央公民館（改修後）"
    rows.append({**ROWS[0], "ID": "3", "名称": "新しい施設"})
    second = publish_dataset(con, AED, _table(con, rows), root, url)
    changes = json.loads((second.path / "changes.json").read_text(encoding="utf-8"))
    assert (changes["added"], changes["removed"], changes["changed"]) == (1, 1, 1)
    assert changes["keys"] == {"added": ["132195/3"], "removed": ["222127/1"], "changed": ["132195/2"]}


def test_crash_mid_publication_keeps_previous_release(setup: tuple[duckdb.DuckDBPyConnection, Path, str]) -> None:
    con, root, url = setup
    publish_dataset(con, AED, _table(con, ROWS), root, url)
    before = {p: _sha(p) for p in (root / "aed" / "1").rglob("*") if p.is_file()}
    changed = [{**r, "名称": f"{r['名称']}（更新）"} for r in ROWS]
    table = _table(con, changed)
    with pytest.raises(PublishError, match="injected failure"):
        publish_dataset(con, AED, table, root, url, fail_after_files=3)
    latest = latest_release(root, "aed")
    assert latest is not None and latest["number"] == 1
    assert {p: _sha(p) for p in (root / "aed" / "1").rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (root / "aed").iterdir()) == ["1", "latest.json"]   # no half release
    completed = publish_dataset(con, AED, table, root, url)
    assert completed.published and completed.number == 2
    latest = latest_release(root, "aed")
    assert latest is not None and latest["number"] == 2
    assert pl.read_csv(root / "aed" / "2" / "aed.csv")["名称"][0] == "狛江市役所（更新）"
