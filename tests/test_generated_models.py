"""Generated staging/conformed models: what a file changes (replace, extend), how they type and fill values, and
the conformance figures of a release, over a real lake (Parquet written as intake writes it) and a real DuckDB
file, built and published by Dagster."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from assets.models import MODELS_ROOT, build_model_assets, load_models
from assets.publish import releases
from assets.resources import KouikiHome
from expectations.registry import default_registry
from kouiki import lake
from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import serve
from warehouse.sql_models import ModelError, discover

REGISTRY = default_registry()
TOURISM = REGISTRY.get("tourism")
UPLOAD = "132195-00000000000000aa"
MEMBERS_YAML = 'members:\n  - {code: "132195", name: 狛江市, datasets: [tourism]}\n'

# Four rows of a city's 観光施設一覧 as intake stages them (text, canonical columns, provenance), plus a column
# the city added that the standard does not have (独自メモ): it must reach the release unchanged.
LAKE_ROWS: dict[str, list[str | None]] = {
    "ID": ["T1", "T2", "T3", "T4"],
    "名称": ["狛江古墳群", "多摩川河川敷", "泉龍寺", None],
    "名称_カナ": ["コマエコフングン", "タマガワカセンジキ", "Senryuji", "イズミ"],
    "緯度": ["35.6348", "35.6200", "35.6390", "abc"],
    "経度": ["139.5786", "139.5700", "139.5790", "139.58"],
    "連絡先電話番号": ["03-3430-1111", "なし", "03-3430-1111", "－"],
    "所在地_連結表記": ["東京都狛江市和泉本町1-1", "東京都狛江市駒井町3", "東京都狛江市元和泉1-6-1", "東京都狛江市"],
    "説明": ["古墳群", "河川敷の広場", "寺院", "説明"],
    "独自メモ": ["駐車場あり", None, "国史跡", "要確認"],
}
# Failing cells the lake holds for them (one row per cell): warnings, since these rows are published. The last
# two must not count: a file-level finding (no line) and a finding of an upload that is no longer in the lake.
FINDINGS = [
    (UPLOAD, 3, 1, "連絡先電話番号", "format-error", "warning"),
    (UPLOAD, 4, 2, "名称_カナ", "format-warning", "warning"),
    (UPLOAD, 5, 3, "連絡先電話番号", "format-error", "warning"),
    (UPLOAD, 5, 3, "緯度", "type-error", "warning"),
    (UPLOAD, 5, 3, "名称", "missing-cell", "warning"),
    (UPLOAD, None, None, "独自メモ", "extra-label", "warning"),
    ("132195-00000000000000ff", 2, 0, "名称", "missing-cell", "error"),
]


def write_lake(home: Path) -> None:
    n = len(LAKE_ROWS["ID"])
    columns = {c.name: [None] * n for c in TOURISM.canonical.columns} | LAKE_ROWS
    staged = pl.DataFrame(columns, schema={k: pl.String for k in columns}).with_columns(
        pl.Series("_row", range(n), dtype=pl.Int64), pl.Series("_source_line", range(2, n + 2), dtype=pl.Int64),
        pl.lit("132195").alias("_city_code"), pl.lit(UPLOAD).alias("_upload_id"),
        pl.lit("komae_tourism.csv").alias("_source_file"))
    lake.write_partition(staged, home / "lake", "staged", "tourism", "132195")
    findings = pl.DataFrame(FINDINGS, schema={"upload_id": pl.String, "source_line": pl.Int64, "row": pl.Int64,
                                              "column": pl.String, "error_code": pl.String, "severity": pl.String},
                            orient="row").with_columns(pl.lit("132195").alias("_city_code"))
    lake.write_partition(findings, home / "lake", "findings", "tourism", "132195")


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write_lake(home)
    (tmp_path / "members.yaml").write_text(MEMBERS_YAML, encoding="utf-8")
    return home


def run(project: Path, home: Path, with_publish: bool = False) -> dict[str, dict[str, Any]]:
    """Build the project's models (and the generated ones of tourism) with Dagster; returns metadata by asset."""
    resource = KouikiHome(home=str(home), members_file=str(home.parent / "members.yaml"))
    assets = build_model_assets(root=project, datasets=[TOURISM])
    result = materialize([*assets, *([releases] if with_publish else [])], resources={"kouiki": resource},
                         instance=DagsterInstance.ephemeral(),
                         selection=[a.key for a in assets if a.key.path[0] != "marts"]
                         + ([releases.key] if with_publish else []))
    assert result.success
    checks = {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}
    return {"checks": checks, **{e.materialization.asset_key.to_user_string(): dict(e.materialization.metadata)
                                 for e in result.get_asset_materialization_events()}}


def empty_project(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for schema in ("staging", "conformed", "marts"):
        (root / schema).mkdir(parents=True)
    return root


def test_every_registry_dataset_has_a_model_and_files_replace_the_generated_ones() -> None:
    models = load_models()
    for dataset_id in REGISTRY.datasets:
        for schema in ("staging", "conformed"):
            model = models[f"{schema}.{dataset_id}"]
            file = MODELS_ROOT / schema / f"{dataset_id}.sql"
            assert model.path == file and model.is_file == file.exists()
            assert model.generated_from == (None if file.exists() else dataset_id)
    assert models["conformed.aed"].sql == (MODELS_ROOT / "conformed" / "aed.sql").read_text(encoding="utf-8")
    assert models["conformed.tourism"].model_deps == ("staging.tourism",)
    assert models["staging.tourism"].source_deps == ("lake.tourism",)


def test_generated_models_type_fill_and_keep_extra_columns(tmp_path: Path, home: Path) -> None:
    meta = run(empty_project(tmp_path), home, with_publish=True)
    assert meta["conformed/tourism"]["dagster/row_count"].value == 4
    assert all(meta["checks"].values()) and len(meta["checks"]) == 3
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = 'conformed' AND table_name = 'tourism'").fetchall())
        rows = con.execute('SELECT "全国地方公共団体コード", "地方公共団体名", "緯度", "連絡先電話番号", "独自メモ" '
                           "FROM conformed.tourism").fetchall()
    assert types["緯度"] == "DOUBLE" and types["連絡先電話番号"] == "VARCHAR" and "_row" not in types
    assert rows == [("132195", "東京都狛江市", 35.6348, "03-3430-1111", "駐車場あり"),
                    ("132195", "東京都狛江市", 35.62, "なし", None),
                    ("132195", "東京都狛江市", 35.639, "03-3430-1111", "国史跡"),
                    ("132195", "東京都狛江市", None, "－", "要確認")]   # 'abc' is no number: NULL, and counted below
    release = home / "releases" / "tourism" / "1"
    assert pl.read_csv(release / "tourism.csv", infer_schema=False)["独自メモ"].to_list() == \
        ["駐車場あり", None, "国史跡", "要確認"]


def test_release_metadata_counts_conformance_per_column(tmp_path: Path, home: Path) -> None:
    run(empty_project(tmp_path), home, with_publish=True)
    meta = json.loads((home / "releases" / "tourism" / "1" / "metadata.json").read_text(encoding="utf-8"))
    conformance = meta["conformance"]
    # rows 3 (line 3), 4 and 5 each fail somewhere; line 2 meets the standard in every column
    assert (conformance["rows"], conformance["rows_conforming"], conformance["share_rows_conforming"]) == (4, 1, 0.25)
    columns = conformance["columns"]
    assert list(columns) == [c.name for c in TOURISM.canonical.columns]     # standard columns only, in order
    assert columns["連絡先電話番号"] | {} == {
        "required": False, "type": "phone", "rows_conforming": 2, "share": 0.5, "warnings": 2, "errors": 0,
        "empty_required": 0, "findings_by_code": {"format-error": 2}}
    assert (columns["名称_カナ"]["share"], columns["緯度"]["share"], columns["経度"]["share"]) == (0.75, 0.75, 1.0)
    # 名称 is required: line 5 is empty (and has its finding); counted once, not twice
    assert (columns["名称"]["rows_conforming"], columns["名称"]["empty_required"], columns["名称"]["warnings"]) == \
        (3, 1, 1)
    assert columns["ID"]["share"] == 1.0
    with serve(create_app(PortalSettings(home=home))) as base:     # the portal's column dictionary shows it
        page = httpx.get(f"{base}/dataset/tourism", timeout=10).text
        package = httpx.get(f"{base}/api/3/action/package_show", params={"id": "tourism"}, timeout=10).json()
    row = next(line for line in page.splitlines() if '<th scope="row">連絡先電話番号</th>' in line)
    assert re.search(r'<td class="num"[^>]*>50\.0%</td></tr>$', row)
    assert {"key": "conformance", "value": "0.25"} in package["result"]["extras"]


def test_a_file_extends_the_generated_model(tmp_path: Path, home: Path) -> None:
    project = empty_project(tmp_path)
    (project / "conformed" / "tourism.sql").write_text("""\
-- extends: generated
-- description: 観光施設 (名称の長さつき) / tourism with the length of each name
WITH region AS (SELECT count(*) AS n FROM generated)
SELECT g.*, length(g."名称") AS name_length, r.n AS rows_in_region
FROM generated AS g, region AS r
ORDER BY g._source_line
""", encoding="utf-8")
    (project / "conformed" / "tourism.yml").write_text("columns:\n  name_length: [not_null]\n", encoding="utf-8")
    model = load_models(project, [TOURISM])["conformed.tourism"]
    assert model.is_file and model.generated_from == "tourism" and model.materialized == "table"
    assert model.model_deps == ("staging.tourism",)          # read through the generated query
    meta = run(project, home)
    assert meta["conformed/tourism"]["dagster/row_count"].value == 4
    checks = meta["checks"]
    assert len(checks) == 4 and sum(not passed for passed in checks.values()) == 1
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute('SELECT "名称", name_length, rows_in_region, "地方公共団体名", "緯度" '
                           "FROM conformed.tourism").fetchall()
    assert rows[0] == ("狛江古墳群", 5, 4, "東京都狛江市", 35.6348) and rows[3][1] is None


def test_a_file_replaces_the_generated_model(tmp_path: Path, home: Path) -> None:
    project = empty_project(tmp_path)
    (project / "staging" / "tourism.sql").write_text(
        '-- materialized: view\nSELECT * REPLACE (upper("名称_カナ") AS "名称_カナ") FROM lake.tourism\n',
        encoding="utf-8")
    models = load_models(project, [TOURISM])
    assert models["staging.tourism"].generated_from is None and models["conformed.tourism"].generated_from
    run(project, home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute('SELECT "名称_カナ", "緯度" FROM conformed.tourism WHERE "ID" = \'T3\'').fetchone()
    assert row == ("SENRYUJI", "35.6390")      # the file's query: no DOUBLE cast any more


def test_extends_is_refused_where_nothing_is_generated(tmp_path: Path) -> None:
    project = empty_project(tmp_path)
    (project / "marts" / "x.sql").write_text("-- extends: generated\nSELECT * FROM generated\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"x\.sql: extends the generated model, but marts\.x is not generated"):
        discover(project, datasets=[TOURISM])
    (project / "marts" / "x.sql").write_text("-- extends: something\nSELECT 1 AS one\n", encoding="utf-8")
    with pytest.raises(ModelError, match="'extends' can only be generated"):
        discover(project, datasets=[TOURISM])


def test_a_model_key_per_generated_model() -> None:
    keys = {a.key for a in build_model_assets()}
    assert {AssetKey(["staging", d]) for d in REGISTRY.datasets} <= keys
    assert {AssetKey(["conformed", d]) for d in REGISTRY.datasets} <= keys


def test_a_column_added_to_the_schema_after_the_lake_was_written_builds_empty(tmp_path: Path, home: Path) -> None:
    staged = lake.read_partition(home / "lake", "staged", "tourism", "132195")
    assert staged is not None
    lake.write_partition(staged.drop("説明", "緯度"), home / "lake", "staged", "tourism", "132195")
    run(empty_project(tmp_path), home)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute('SELECT "説明", "緯度", "名称" FROM conformed.tourism ORDER BY "ID"').fetchall()
    assert rows[0] == (None, None, "狛江古墳群") and len(rows) == 4
