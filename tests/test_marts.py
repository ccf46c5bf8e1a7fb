"""The office's marts: the conformance scoreboard and the evidence (EBPM) examples.

First on a fixture lake written here (three uploads of one city, a rejected one among them, a city that sent
nothing, full-width digits in addresses), built with the real ``dbt_like_sql`` project; then on the demo run.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from dagster import AssetKey

from assets.models import MODELS_ROOT, known_sources
from assets.scoreboard import load_scoreboard, render_html, scoreboard_markdown
from expectations.registry import default_registry
from kouiki import lake
from kouiki.members import Member, load_members
from pipelines.definitions import defs
from warehouse import duck
from warehouse.sql_models import build_order, discover, materialize, refresh_registry_sources, run_test

DEMO = Path(__file__).resolve().parent.parent / "demo" / "uploads"
MEMBERS = [
    Member(code="132195", name="狛江市", datasets=("aed", "evacuation_space")),
    Member(code="222127", name="焼津市", datasets=("aed",)),
    Member(code="122033", name="市川市", datasets=("population", "evacuation_space")),
]
HOSTILE_FILE = "<script>alert(1)</script>|aed.csv"
# 稲越3丁目 twice in the evacuation file with full-width digits, as 市川市 writes it; 大町 has no site
AREAS = {"稲越3丁目": 30, "国府台1丁目": 20, "大町": 10}     # area → persons in each age band and sex
SITES = [("稲越小学校", "稲越３丁目"), ("稲越公園", "稲越３丁目"), ("千葉商科大学", "国府台1丁目")]
AGE_BANDS = ["0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54",
             "55-59", "60-64", "65-69", "70-74", "75-79", "80-84", "85歳以上"]


def canonical(dataset_id: str, city: str, upload_id: str, rows: Sequence[Mapping[str, str | None]]
              ) -> pl.DataFrame:
    """Rows as intake writes them to the lake: every canonical column as text, plus provenance."""
    columns = [c.name for c in default_registry().get(dataset_id).canonical.columns]
    data: dict[str, list[Any]] = {c: [r.get(c) for r in rows] for c in columns}
    data |= {"_row": list(range(len(rows))), "_source_line": [i + 2 for i in range(len(rows))],
             "_city_code": [city] * len(rows), "_upload_id": [upload_id] * len(rows),
             "_source_file": [f"{city}_{dataset_id}.csv"] * len(rows)}
    return pl.DataFrame(data, schema={c: pl.Int64 if c in ("_row", "_source_line") else pl.String for c in data})


def population_row(area: str, band: int, date: str = "2023-03-31") -> dict[str, str | None]:
    row: dict[str, str | None] = {"調査年月日": date, "地域名": area, "総人口": str(34 * band), "男性": str(17 * band),
                                  "女性": str(17 * band), "世帯数": str(15 * band)}
    for age in AGE_BANDS:
        label = age if age.endswith("以上") else f"{age}歳"
        row[f"{label}の男性"] = row[f"{label}の女性"] = str(band)
    return row


def history(city: str, dataset_id: str, uploads: list[tuple[str, str, int, int, float, str, dict[str, int]]]
            ) -> list[pl.DataFrame]:
    frames = []
    for upload_id, file, rows, accepted, pass_rate, decision, errors in uploads:
        day = int(upload_id[-1])
        frames.append(pl.DataFrame({
            "_city_code": [city], "upload_id": [upload_id], "dataset_id": [dataset_id], "file": [file],
            "received_at": [datetime(2026, 4, day, 9, 0)], "validated_at": [datetime(2026, 4, day, 9, 1, tzinfo=UTC)],
            "rows": [rows], "rows_accepted": [accepted], "rows_quarantined": [rows - accepted],
            "pass_rate": [pass_rate], "decision": [decision], "errors_by_code": [json.dumps(errors)]}))
    return frames


def finding(city: str, upload_id: str, line: int, column: str, raw: str, code: str,
            severity: str = "error") -> dict[str, Any]:
    return {"upload_id": upload_id, "source_line": line, "row": line - 2, "column": column, "raw_value": raw,
            "value": None, "error_code": code, "message_ja": "", "message_en": "", "hint_ja": f"{column}を直す",
            "hint_en": f"fix {column}", "severity": severity, "_city_code": city}


def write_fixture_lake(root: Path) -> None:
    def put(df: pl.DataFrame, area: str, dataset_id: str, city: str, name: str = "data.parquet") -> None:
        lake.write_partition(df, root, area, dataset_id, city, file_name=name)

    # 狛江市 AED: accepted, then some rows quarantined (U2, now in the lake), then rejected (U3: lake keeps U2)
    aed = [{"名称": n, "電話番号": "03-3430-1111"} for n in ("狛江市役所", "狛江市民総合体育館", "多摩川緑地")]
    put(canonical("aed", "132195", "132195-u2", aed), "staged", "aed", "132195")
    put(canonical("aed", "132195", "132195-u2", [{"名称": "和泉多摩川地区センター", "電話番号": "なし"}])
        .with_columns(pl.lit("電話番号:format-error").alias("_errors")), "quarantine", "aed", "132195")
    put(pl.DataFrame([finding("132195", "132195-u2", 5, "電話番号", "なし", "format-error")]),
        "findings", "aed", "132195")
    for frame in history("132195", "aed", [
        ("132195-u1", "komae_aed.csv", 2, 2, 1.0, "accept", {}),
        ("132195-u2", "komae_aed.csv", 4, 3, 0.75, "quarantine", {"format-error": 1}),
        ("132195-u3", HOSTILE_FILE, 4, 0, 0.25, "reject", {"format-error": 2, "missing-cell": 1}),
    ]):
        put(frame, "history", "aed", "132195", f"{frame['upload_id'][0]}.parquet")
    # 市川市: evacuation sites and population by area (an older survey too, and one area held back)
    sites = [{"名称": n, "所在地_町字": a} for n, a in SITES]
    put(canonical("evacuation_space", "122033", "122033-e1", sites), "staged", "evacuation_space", "122033")
    # two readings that are not katakana: warnings, the rows are published
    put(pl.DataFrame([finding("122033", "122033-e1", line, "名称_カナ", "いなこし", "format-warning", "warning")
                      for line in (2, 3)]), "findings", "evacuation_space", "122033")
    rows = [population_row(a, b) for a, b in AREAS.items()] + [population_row("稲越3丁目", 99, "2022-03-31")]
    put(canonical("population", "122033", "122033-p1", rows), "staged", "population", "122033")
    held_back = {**population_row("塩浜3丁目", 0), "総人口": "3"}
    put(canonical("population", "122033", "122033-p1", [held_back]), "quarantine", "population", "122033")
    put(pl.DataFrame([finding("122033", "122033-p1", 7, "総人口", "3", "cross-column-error")]),
        "findings", "population", "122033")
    for dataset_id, upload_id, n, ok in (("evacuation_space", "122033-e1", 3, 3), ("population", "122033-p1", 5, 4)):
        decision = "accept" if n == ok else "quarantine"
        for frame in history("122033", dataset_id, [(upload_id, f"{dataset_id}.csv", n, ok, ok / n, decision, {})]):
            put(frame, "history", dataset_id, "122033", f"{upload_id}.parquet")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """Every real model built over the fixture lake; yields the database and each failing column test."""
    home = tmp_path_factory.mktemp("marts")
    write_fixture_lake(home / "lake")
    registry = default_registry()
    models = discover(MODELS_ROOT, sources=known_sources(registry.datasets))
    failing = {}
    with duck.connect(home / "warehouse.duckdb") as con:
        duck.refresh_sources(con, home / "lake", registry.datasets.values())
        refresh_registry_sources(con, MEMBERS, registry.datasets.values())
        for name in build_order(models):
            materialize(con, models[name])
            for test in models[name].tests:
                outcome = run_test(con, models[name], test)
                if outcome.failing:
                    failing[f"{name}:{test.description}"] = outcome.failing
    yield home / "warehouse.duckdb", failing


def query(db: Path, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(db), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_column_tests_of_every_model_pass_on_good_data(warehouse: tuple[Path, dict[str, int]]) -> None:
    assert warehouse[1] == {}


def test_scoreboard_has_every_member_and_dataset(warehouse: tuple[Path, dict[str, int]]) -> None:
    rows = {r["city_dataset"]: r for r in query(warehouse[0], "SELECT * FROM marts.conformance_scoreboard")}
    datasets = {d for m in MEMBERS for d in m.datasets}
    assert set(rows) == {f"{m.code}/{d}" for m in MEMBERS for d in datasets}
    missing = rows["222127/aed"]                       # declared, nothing sent
    assert (missing["has_file"], missing["declared"], missing["status"], missing["uploads"]) == \
        (False, True, "missing", 0)
    assert missing["rows_in_lake"] == 0 and missing["share_valid"] is None
    assert rows["222127/population"]["status"] == "not_declared"
    assert rows["122033/population"]["status"] == "quarantine"


def test_scoreboard_follows_the_trend_and_a_rejected_upload(warehouse: tuple[Path, dict[str, int]]) -> None:
    komae = query(warehouse[0], "SELECT * FROM marts.conformance_scoreboard WHERE city_dataset = '132195/aed'")[0]
    assert komae["uploads"] == 3
    assert komae["share_valid_trend"] == [1.0, 0.75, 0.25]
    assert komae["share_valid_change"] == pytest.approx(0.25 - 0.75)
    assert (komae["status"], komae["last_file"], komae["rows"], komae["rows_accepted"]) == \
        ("reject", HOSTILE_FILE, 4, 0)
    assert json.loads(komae["errors_by_code"]) == {"format-error": 2, "missing-cell": 1}
    assert komae["findings"] == 3
    lake_rows = query(warehouse[0], "SELECT count(*) AS n FROM conformed.aed WHERE _city_code = '132195'")[0]["n"]
    assert komae["rows_in_lake"] == lake_rows == 3                     # the quarantined upload's rows stay
    assert komae["top_issue"] is None                                  # the rejected file's cells are not in the lake
    trend = query(warehouse[0], "SELECT upload_no, decision, is_latest FROM marts.conformance_trend "
                                "WHERE city_code = '132195' ORDER BY upload_no")
    assert [(t["upload_no"], t["decision"], t["is_latest"]) for t in trend] == \
        [(1, "accept", False), (2, "quarantine", False), (3, "reject", True)]


def test_quality_issues_point_at_the_cells_to_fix(warehouse: tuple[Path, dict[str, int]]) -> None:
    issues = query(warehouse[0], "SELECT * FROM marts.quality_issues")
    assert [(i["city_code"], i["dataset_id"], i["column_name"], i["error_code"], i["severity"], i["cells"],
             i["first_line"], i["example_values"], i["hint_ja"]) for i in issues] == [
        ("122033", "evacuation_space", "名称_カナ", "format-warning", "warning", 2, 2, ["いなこし"], "名称_カナを直す"),
        ("122033", "population", "総人口", "cross-column-error", "error", 1, 7, ["3"], "総人口を直す"),
        ("132195", "aed", "電話番号", "format-error", "error", 1, 5, ["なし"], "電話番号を直す")]


def test_scoreboard_counts_errors_and_warnings_apart(warehouse: tuple[Path, dict[str, int]]) -> None:
    rows = {r["city_dataset"]: r for r in query(warehouse[0], "SELECT * FROM marts.conformance_scoreboard")}
    sites, population = rows["122033/evacuation_space"], rows["122033/population"]
    assert (sites["errors"], sites["warnings"], sites["top_issue"], sites["top_warning"]) == \
        (0, 2, None, "名称_カナ: format-warning × 2")
    assert (population["errors"], population["warnings"], population["top_issue"], population["top_warning"]) == \
        (1, 0, "総人口: cross-column-error × 1", None)
    # a rejected newest upload has no cells in the lake: unknown, not zero; nothing sent: unknown too
    assert (rows["132195/aed"]["errors"], rows["132195/aed"]["warnings"]) == (None, None)
    assert rows["222127/aed"]["errors"] is None
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        board = load_scoreboard(con)
    html = render_html(board)
    assert "エラー / errors 0</span> ·\n<span class=\"warn\">警告 / warnings 2" in html
    assert "エラー 1 セル（行は非公開）、警告 2 セル（行は公開）" in html
    line = next(x for x in scoreboard_markdown(board).splitlines() if "市川市" in x and "地域・年齢別人口" in x)
    assert "| 1 | 0 | 総人口: cross-column-error × 1 |  |" in line


def test_population_is_summed_at_the_latest_survey_date(warehouse: tuple[Path, dict[str, int]]) -> None:
    cities = {r["city_code"]: r for r in query(warehouse[0], "SELECT * FROM marts.population_by_city")}
    assert set(cities) == {m.code for m in MEMBERS}
    ichikawa = cities["122033"]
    assert ichikawa["population"] == sum(34 * b for b in AREAS.values())     # not the 2022 survey
    assert ichikawa["aged_65_plus"] == sum(10 * b for b in AREAS.values())
    assert ichikawa["areas"] == len(AREAS) and str(ichikawa["survey_date"]) == "2023-03-31"
    assert (ichikawa["areas_quarantined"], ichikawa["population_in_quarantined_areas"]) == (1, 3)
    assert cities["132195"]["population"] is None and cities["132195"]["has_population"] is False


def test_facilities_per_10k_residents_only_where_a_population_file_exists(
        warehouse: tuple[Path, dict[str, int]]) -> None:
    rows = {r["city_code"]: r for r in query(warehouse[0], "SELECT * FROM marts.facilities_per_10k_residents")}
    population = sum(34 * b for b in AREAS.values())
    ichikawa = rows["122033"]
    assert ichikawa["evacuation_spaces"] == len(SITES)
    assert ichikawa["evacuation_spaces_per_10k_residents"] == round(10000 * len(SITES) / population, 2)
    assert ichikawa["aeds"] is None and ichikawa["aeds_per_10k_residents"] is None   # no AED file is not zero
    komae = rows["132195"]
    assert (komae["aeds"], komae["aeds_quarantined"], komae["population"]) == (3, 1, None)
    assert komae["aeds_per_10k_residents"] is None and "no population file" in komae["note"]
    assert rows["222127"]["aeds"] is None


def test_elderly_and_evacuation_sites_are_matched_by_area(warehouse: tuple[Path, dict[str, int]]) -> None:
    rows = query(warehouse[0], "SELECT * FROM marts.elderly_and_evacuation_by_area")
    by_area = {r["area_name"]: r for r in rows}
    assert [r["area_name"] for r in rows] == sorted(AREAS, key=lambda a: -AREAS[a])   # most elderly first
    assert by_area["稲越3丁目"]["evacuation_spaces_in_area"] == 2                     # full-width ３ folded
    assert by_area["稲越3丁目"]["evacuation_space_names"] == ["稲越公園", "稲越小学校"]
    assert by_area["大町"]["evacuation_spaces_in_area"] == 0
    assert by_area["大町"]["share_65_plus"] == round(10 / 34, 4)


def test_report_and_markdown_escape_city_data_and_chart_the_trend(warehouse: tuple[Path, dict[str, int]]) -> None:
    with duckdb.connect(str(warehouse[0]), read_only=True) as con:
        rows = load_scoreboard(con)
    html = render_html(rows)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<polyline") == 3            # one trend line per city × dataset with uploads
    assert "未提出 / no file yet" in html
    markdown = scoreboard_markdown(rows)
    komae = next(line for line in markdown.splitlines() if "狛江市" in line and "AED" in line)
    assert "█▆▃ ▼50.0%" in komae and "\\|aed.csv" in komae     # sparkline of 100%, 75%, 25%; '|' escaped


# --- the demo run (real files of three cities, shared with test_pipeline.py) --------------------------------------


def _data_rows(path: Path, encoding: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(encoding))))


def test_demo_scoreboard_shows_the_real_figures(demo_run: dict) -> None:
    db = demo_run["paths"].warehouse_db
    rows = {r["city_dataset"]: r for r in query(db, "SELECT * FROM marts.conformance_scoreboard")}
    members = load_members()
    assert {r["city_code"] for r in rows.values()} == {m.code for m in members}
    for m in members:
        for dataset_id in m.datasets:
            assert rows[f"{m.code}/{dataset_id}"]["declared"]
    komae = rows["132195/aed"]
    in_file = len(_data_rows(DEMO / "132195" / "komae_132195_aed.csv", "utf-8"))
    in_lake = query(db, "SELECT count(*) AS n FROM conformed.aed WHERE _city_code = '132195'")[0]["n"]
    assert (komae["rows"], komae["rows_accepted"], komae["rows_quarantined"]) == (in_file, in_lake, in_file - in_lake)
    # SOURCES.md; 電話番号 'なし' on line 57 is a warning: the row is published, the warning counted apart
    assert (in_file, in_lake) == (57, 57)
    assert komae["share_valid"] == pytest.approx(1.0)
    assert (komae["errors"], komae["warnings"]) == (0, 1)
    assert komae["top_issue"] is None and komae["top_warning"] == "電話番号: format-error × 1"
    assert komae["last_file"] == "komae_132195_aed.csv" and komae["uploads"] == 1   # the second run added nothing
    assert (rows["132195/evacuation_space"]["has_file"], rows["132195/evacuation_space"]["status"]) == \
        (False, "missing")


def test_demo_evidence_uses_ichikawas_own_population(demo_run: dict) -> None:
    db = demo_run["paths"].warehouse_db
    raw = _data_rows(DEMO / "122033" / "ichikawa_122033_104_population.csv", "cp932")
    city = query(db, "SELECT * FROM marts.population_by_city WHERE city_code = '122033'")[0]
    # nothing is withheld in this file (its empty age cells are warnings): the mart's sums over none are NULL
    withheld_population = city["population_in_quarantined_areas"] or 0
    assert city["population"] + withheld_population == sum(int(r["総人口"]) for r in raw)
    assert city["areas"] + (city["areas_quarantined"] or 0) == len(raw)
    rates = {r["city_code"]: r for r in query(db, "SELECT * FROM marts.facilities_per_10k_residents")}
    sites = query(db, "SELECT count(*) AS n FROM conformed.evacuation_space WHERE _city_code = '122033'")[0]["n"]
    assert rates["122033"]["evacuation_spaces_per_10k_residents"] == round(10000 * sites / city["population"], 2)
    for code in ("132195", "222127"):                  # no population file: listed, no rate
        assert rates[code]["population"] is None and rates[code]["aeds_per_10k_residents"] is None
        assert rates[code]["aeds"] is not None


def test_demo_scoreboard_is_in_the_dagster_ui_and_the_office_report(demo_run: dict) -> None:
    meta = demo_run["model_metadata"]["marts/conformance_scoreboard"]
    markdown = meta["scoreboard"].value
    report = Path(meta["office_report"].value)
    html = report.read_text(encoding="utf-8")
    assert report == demo_run["paths"].reports / "office" / "scoreboard.html"
    for m in load_members():
        assert m.name in markdown and m.name in html
    assert "<svg" in html and "██" in markdown
    assert meta["member_cities"].value == len(load_members())
    assert meta["share_valid 132195 狛江市"].value == pytest.approx(1.0)   # one AED file, one warning (published)
    assert meta["cells_with_warnings"].value >= 1
    assert "対象外 / not expected" not in markdown and "未提出 / no file yet" in markdown
    assert meta["dagster/row_count"].value == len(query(demo_run["paths"].warehouse_db,
                                                        "SELECT * FROM marts.conformance_scoreboard"))


def test_demo_model_checks_all_pass(demo_run: dict) -> None:
    checks = demo_run["model_checks"]
    assert any(k.startswith("marts/conformance_scoreboard:") for k in checks)
    assert {k: c["metadata"].get("failing_rows") for k, c in checks.items() if not c["passed"]} == {}


def test_lineage_runs_from_each_upload_to_the_marts() -> None:
    graph = defs.resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(AssetKey(key.split("/"))).parent_keys}

    chain = ["intake/uploads", "lake/aed", "staging/aed", "conformed/aed", "marts/facilities_per_10k_residents"]
    for upstream, downstream in itertools.pairwise(chain):
        assert upstream in parents(downstream), (upstream, downstream)
    assert "lake/population" in parents("marts/conformance_trend")           # via history.uploads
    assert "lake/population" in parents("marts/quality_issues")              # via findings.all_datasets
    assert {"marts/conformance_trend", "marts/quality_issues"} <= parents("marts/conformance_scoreboard")
    assert "conformed/population" in parents("publish/releases")
