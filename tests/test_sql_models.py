"""The SQL model runner: a small project of .sql/.yml files in tmp_path, built by Dagster over a fixture lake."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult, materialize

from assets.models import MODELS_ROOT, build_model_assets
from assets.resources import KouikiHome
from kouiki import lake
from warehouse.sql_models import ColumnTest, ModelError, discover, load_model
from warehouse.sql_models import materialize as build_model

AedRow = tuple[str, str | None, str, str]     # ID, 名称, 緯度, 設置位置
MEMBERS_YAML = """\
members:
  - {code: "132195", name: 狛江市, datasets: [aed]}
  - {code: "222127", name: 焼津市, datasets: [aed]}
"""

PROJECT = {
    "staging/aed.sql": """\
-- materialized: view
-- description: AED, typed
SELECT * REPLACE (TRY_CAST("緯度" AS DOUBLE) AS "緯度") FROM lake.aed
""",
    "conformed/aed.sql": """\
-- materialized: table
-- description: region-wide AED list
SELECT s.*, g.city AS city
FROM staging.aed AS s
LEFT JOIN reference.local_governments AS g ON g.code = s._city_code
""",
    "conformed/aed.yml": """\
columns:
  名称: [not_null]
  ID: [unique]
  設置位置: [{accepted_values: [屋内, 屋外]}]
  _city_code:
    description: member city
    tests: [{relationships: {to: reference.members, field: code}}]
""",
    "marts/cities.sql": "-- materialized: table\nSELECT code, name FROM reference.members\n",
    "marts/aed_by_city.sql": """\
-- materialized: table
SELECT _city_code AS city_code, count(*) AS aeds, round(avg("緯度"), 3) AS mean_latitude
FROM conformed.aed
GROUP BY ALL
ORDER BY city_code
""",
    # the relationships target is read by no query of the model: it must still become a dependency
    "marts/aed_by_city.yml": "columns:\n  city_code: [not_null, {relationships: {to: marts.cities, field: code}}]\n",
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def aed_rows(city: str, rows: list[AedRow]) -> pl.DataFrame:
    """Lake rows as intake writes them: canonical columns as text, plus provenance."""
    return pl.DataFrame({
        "_row": list(range(len(rows))),
        "_source_line": [i + 2 for i in range(len(rows))],
        "ID": [r[0] for r in rows],
        "名称": [r[1] for r in rows],
        "緯度": [r[2] for r in rows],
        "設置位置": [r[3] for r in rows],
        "_city_code": [city] * len(rows),
        "_upload_id": [f"{city}-0000000000000001"] * len(rows),
        "_source_file": [f"{city}_aed.csv"] * len(rows),
    }, schema_overrides={"名称": pl.String})


GOOD: dict[str, list[AedRow]] = {
    "132195": [("1", "狛江市役所", "35.6348", "屋内"), ("2", "狛江市民総合体育館", "35.6424", "屋内"),
               ("3", "多摩川緑地", "35.6380", "屋外")],
    "222127": [("11", "焼津市役所", "34.8670", "屋内"), ("12", "大井川体育館", "34.7967", "屋内")],
}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "models", PROJECT)


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "lake").mkdir(parents=True)
    (tmp_path / "members.yaml").write_text(MEMBERS_YAML, encoding="utf-8")
    return home


def write_lake(home: Path, cities: dict[str, list[AedRow]]) -> None:
    for city, rows in cities.items():
        lake.write_partition(aed_rows(city, rows), home / "lake", "staged", "aed", city)


def run_dagster(project: Path, home: Path) -> ExecuteInProcessResult:
    resource = KouikiHome(home=str(home), members_file=str(home.parent / "members.yaml"))
    return materialize(build_model_assets(root=project, datasets=()), resources={"kouiki": resource},
                       instance=DagsterInstance.ephemeral())


def test_dependencies_come_from_the_sql_and_the_tests(project: Path) -> None:
    deps = {}
    for assets_def in build_model_assets(root=project, datasets=()):   # the project's files only
        deps[assets_def.key.to_user_string()] = {k.to_user_string() for k in assets_def.asset_deps[assets_def.key]}
    assert deps == {
        "staging/aed": {"lake/aed"},                       # the city-partitioned lake asset
        "conformed/aed": {"staging/aed"},                  # reference.* has no asset
        "marts/cities": set(),
        "marts/aed_by_city": {"conformed/aed", "marts/cities"},
    }
    conformed = next(a for a in build_model_assets(root=project, datasets=())
                     if a.key == AssetKey(["conformed", "aed"]))
    assert len(conformed.check_keys) == 4
    assert conformed.specs_by_key[conformed.key].description == "region-wide AED list"


def test_models_materialise_with_row_counts_and_values(project: Path, home: Path) -> None:
    write_lake(home, GOOD)
    result = run_dagster(project, home)
    assert result.success
    meta = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert meta["conformed/aed"]["dagster/row_count"].value == 5
    assert meta["marts/aed_by_city"]["dagster/row_count"].value == 2
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 6 and all(e.passed for e in evaluations)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'staging'"
                           ).fetchall() == [("VIEW",)]
        rows = con.execute("SELECT * FROM marts.aed_by_city").fetchall()
        cities = dict(con.execute("SELECT _city_code, any_value(city) FROM conformed.aed GROUP BY 1").fetchall())
        members = con.execute("SELECT code, name, datasets FROM reference.members ORDER BY code").fetchall()
    assert rows == [("132195", 3, round((35.6348 + 35.6424 + 35.6380) / 3, 3)),
                    ("222127", 2, round((34.8670 + 34.7967) / 2, 3))]
    assert cities == {"132195": "狛江市", "222127": "焼津市"}
    assert members == [("132195", "狛江市", ["aed"]), ("222127", "焼津市", ["aed"])]


def test_column_tests_fail_when_the_data_breaks_them(project: Path, home: Path) -> None:
    bad: dict[str, list[AedRow]] = {
        "132195": [("1", "狛江市役所", "35.6348", "屋内"), ("1", None, "35.6424", "屋内"),   # duplicate ID, no name
                   ("3", "多摩川緑地", "35.6380", "玄関")],                                 # not an accepted value
        "222127": GOOD["222127"],
        "011002": [("21", "札幌市役所", "43.0621", "屋内"), ("22", "大通公園", "43.0600", "屋外")],  # not a member
    }
    write_lake(home, bad)
    result = run_dagster(project, home)
    assert result.success   # failing checks are reported, the run itself goes on
    by_name = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    failing = {k: e.metadata["failing_rows"].value for k, e in by_name.items() if not e.passed}
    not_null, accepted = ColumnTest("名称", "not_null").name, ColumnTest("設置位置", "accepted_values").name
    assert failing == {
        ("conformed/aed", not_null): 1,
        ("conformed/aed", "unique__ID"): 2,
        ("conformed/aed", accepted): 1,
        ("conformed/aed", "relationships___city_code"): 2,
        ("marts/aed_by_city", "relationships__city_code"): 1,
    }
    assert by_name[("conformed/aed", "relationships___city_code")].metadata["examples"].value == ["011002"]
    assert by_name[("conformed/aed", accepted)].metadata["examples"].value == ["玄関"]
    assert by_name[("conformed/aed", not_null)].metadata["examples"].value == ["132195 line 3"]  # where it came from
    assert by_name[("marts/aed_by_city", "not_null__city_code")].passed


def test_a_cycle_is_an_error_at_load(tmp_path: Path) -> None:
    root = write_project(tmp_path / "m", {**PROJECT, "marts/a.sql": "SELECT * FROM marts.b",
                                          "marts/b.sql": "SELECT * FROM marts.a"})
    with pytest.raises(ModelError, match=r"cycle: marts\.(a|b) → marts\.(a|b) → marts\.(a|b)"):
        discover(root)


@pytest.mark.parametrize(("files", "message"), [
    ({"marts/x.sql": "SELECT * FROM conformed.nope"}, r"x\.sql: references unknown model 'conformed\.nope'"),
    ({"marts/x.sql": "SELECT * FROM lake.nope"}, r"x\.sql: references unknown source 'lake\.nope'"),
    ({"marts/x.sql": "WITH t AS (SELECT 1 AS a) SELECT * FROM t JOIN marts.x USING (a)"}, r"marts\.x reads itself"),
    ({"marts/x.sql": "SELECT * FROM aed"}, r"table 'aed' needs a schema"),
    ({"marts/x.sql": "SELECT * FROM public.aed"}, r"neither a model .* nor a source"),
    ({"marts/x.sql": "SELECT 1 AS a; SELECT 2 AS a"}, r"one SELECT query"),
    ({"marts/x.sql": "-- materialised: table\nSELECT 1 AS a"}, r"unknown header key 'materialised'"),
    ({"marts/x.sql": "-- materialized: tabel\nSELECT 1 AS a"}, r"materialized must be 'view' or 'table'"),
    ({"marts/x.sql": "-- materialized: table\nSELECT 1 AS a", "marts/x.yml": "materialized: view\n"},
     r"set both in the header and in x\.yml"),
    ({"marts/x.yml": "columns:\n  a: [not_null]\n"}, r"x\.yml: test file without a model"),
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "colums:\n  a: [not_null]\n"}, r"unknown key\(s\) colums"),
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "columns:\n  a: [not_nul]\n"}, r"unknown test 'not_nul'"),
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "columns:\n  a: [{unique: {to: marts.y}}]\n"},
     r"unique has no parameter\(s\) to"),
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "columns:\n  a: [{accepted_values: []}]\n"},
     r"accepted_values needs a non-empty list"),
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "columns:\n  a: [{relationships: {field: code}}]\n"},
     r"relationships needs 'to: schema\.table'"),
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "columns:\n  a: [{relationships: {to: marts.nope}}]\n"},
     r"references unknown model 'marts\.nope'"),
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "columns:\n  a: [{not_null: {severity: fatal}}]\n"},
     r"severity must be 'error' or 'warn'"),
    # the SELECT names its columns, so a test on another column is caught at load
    ({"marts/x.sql": "SELECT 1 AS a", "marts/x.yml": "columns:\n  b: [not_null]\n"},
     r"x\.yml: column\(s\) b are not columns of marts\.x \(it has: a\)"),
    ({"marts/sub/x.sql": "SELECT 1 AS a"}, r"a model must be <staging\|conformed\|marts>/<name>\.sql"),
])
def test_mistakes_in_a_project_are_clear_errors_at_load(tmp_path: Path, files: dict[str, str],
                                                        message: str) -> None:
    root = write_project(tmp_path / "m", {**PROJECT, **files})
    with pytest.raises(ModelError, match=message):
        discover(root, sources={"lake.aed", "reference.local_governments", "reference.members"})


def test_a_test_on_a_missing_column_fails_the_build_and_keeps_the_previous_table(project: Path,
                                                                                  home: Path) -> None:
    """With ``SELECT *`` only DuckDB knows the columns: the build raises, in a transaction."""
    write_lake(home, GOOD)
    assert run_dagster(project, home).success
    (project / "conformed" / "aed.yml").write_text("columns:\n  名前: [not_null]\n", encoding="utf-8")
    model = load_model(project / "conformed" / "aed.sql", {"staging.aed", "conformed.aed"})
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS lake")
        with pytest.raises(ModelError, match=r"aed\.yml: column\(s\) 名前 are not columns of conformed\.aed"):
            build_model(con, model)
        assert con.execute("SELECT count(*) FROM conformed.aed").fetchone() == (5,)


def test_a_new_sql_file_becomes_an_asset_without_python_changes(tmp_path: Path) -> None:
    root = shutil.copytree(MODELS_ROOT, tmp_path / "models", ignore=shutil.ignore_patterns("__pycache__"))
    before = {a.key for a in build_model_assets(root=root)}
    (root / "marts" / "aed_per_member.sql").write_text(
        "-- materialized: table\n-- description: AEDs per member city\n"
        "SELECT m.code, count(a._city_code) AS aeds FROM reference.members AS m\n"
        "LEFT JOIN conformed.aed AS a ON a._city_code = m.code GROUP BY ALL\n", encoding="utf-8")
    after = {a.key: a for a in build_model_assets(root=root)}
    new = AssetKey(["marts", "aed_per_member"])
    assert set(after) - before == {new}
    assert after[new].asset_deps[new] == {AssetKey(["conformed", "aed"])}
    assert after[new].group_names_by_key[new] == "marts"
