"""匿名加工 end to end in Dagster: a member's synthetic personal file → staged extract and count table → blocking
verification → public releases; a too-weak policy publishes nothing; nothing personal reaches releases/."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from dagster import AssetKey, instance_for_test
from scipy.optimize import linprog
from scipy.sparse import csr_matrix
from typer.testing import CliRunner

from anonymise.personal import DEMO_CANARIES, current_personal_file, read_personal_text
from anonymise.policy import load_policy
from anonymise.verify import verify_policy_release
from assets.anonymise import AnonymisationRun, policy_checks, run_anonymisation
from commands.cli import app
from kouiki.members import RegistryError, load_members
from pipelines.definitions import defs

REPO = Path(__file__).resolve().parents[1]
POLICY_DIR = REPO / "config" / "anonymisation"
KOMAE = "132195"
EXTRACT, COUNTS = "care_certification_anonymised", "care_certification_counts"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def members_file(folder: Path, rows: int) -> Path:
    """狛江市 alone, declaring the care-certification file with `rows` synthetic demo records."""
    entry = {"code": KOMAE, "name": "狛江市", "personal_datasets": ["care_certification"],
             "synthetic_personal_rows": rows}
    path = folder / "members.yaml"
    path.write_text(yaml.safe_dump({"members": [entry]}, allow_unicode=True), encoding="utf-8")
    return path


def weak_policy_dir(folder: Path, k: int) -> Path:
    """A copy of the shipped policy (hierarchies included) demanding k-anonymity with `k` records per class."""
    target = folder / "weak-policies"
    shutil.copytree(POLICY_DIR, target)
    path = target / "care_certification.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^  k: \d+", f"  k: {k}", text), encoding="utf-8")
    return target


def latest_number(home: Path, dataset_id: str) -> int:
    return int(json.loads((home / "releases" / dataset_id / "latest.json").read_text(encoding="utf-8"))["number"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One kouiki home: a good run, a run under a policy too weak for the data (k=6000 > 5,000 rows), a good
    run again. What the first run staged and published is captured before the next run replaces the staging."""
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KOUIKI_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.setenv("KOUIKI_MEMBERS", str(members_file(home.parent, 5_000)))
    mp.delenv("KOUIKI_CATALOG_URL", raising=False)
    mp.delenv("KOUIKI_ANONYMISATION_POLICIES", raising=False)
    job = defs.resolve_job_def("anonymise_personal")
    staging = home / "private" / "staging" / "care_certification"
    try:
        with instance_for_test() as instance:
            good = run_anonymisation(job, instance, QUIET)
            verified = json.loads((staging / "verified_extract.json").read_text(encoding="utf-8"))
            numbers = {dataset: latest_number(home, dataset) for dataset in (EXTRACT, COUNTS)}
            mp.setenv("KOUIKI_ANONYMISATION_POLICIES", str(weak_policy_dir(home.parent, 6_000)))
            weak = run_anonymisation(job, instance, QUIET)
            weak_numbers = {dataset: latest_number(home, dataset) for dataset in (EXTRACT, COUNTS)}
            weak_staged = sorted(path.name for path in staging.iterdir())
            mp.delenv("KOUIKI_ANONYMISATION_POLICIES")
            again = run_anonymisation(job, instance, QUIET)
            # a staged file changed after its verification: publication alone (no checks in the run) refuses it
            with (staging / f"{EXTRACT}.csv").open("a", encoding="utf-8") as handle:
                handle.write(f"84,狛江市,2024,女,要介護1,{DEMO_CANARIES[0]['氏名']}\n")
            publication = AssetKey(["anonymise", "care_certification", "releases"])
            tampered = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET,
                                              asset_selection=[publication])
        yield {"home": home, "good": good, "weak": weak, "again": again, "verified": verified,
               "numbers": numbers, "weak_numbers": weak_numbers, "weak_staged": weak_staged, "tampered": tampered}
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def source(runs: dict[str, Any]) -> pl.DataFrame:
    file = current_personal_file(runs["home"] / "private", KOMAE, "care_certification")
    assert file is not None and file.synthetic
    return read_personal_text(file)


def release_folder(home: Path, dataset_id: str, number: int = 1) -> Path:
    return home / "releases" / dataset_id / str(number)


def check(run: AnonymisationRun, name: str) -> dict[str, Any]:
    return next(c for c in run.checks if c["check"] == name)


def test_the_job_has_blocking_checks_between_staging_and_publication() -> None:
    staged, releases = AssetKey(["anonymise", "care_certification", "staged"]), AssetKey(
        ["anonymise", "care_certification", "releases"])
    specs = {spec.name: spec.blocking for check in policy_checks for spec in check.check_specs
             if spec.asset_key == staged}
    assert specs == {"extract_verified": True, "counts_verified": False}   # a held count table holds only itself
    graph = defs.resolve_asset_graph()
    assert staged in graph.get(releases).parent_keys
    job = defs.resolve_job_def("anonymise_personal")
    assert {staged, releases} <= set(job.asset_layer.executable_asset_keys)


def test_a_verified_extract_and_count_table_are_published(runs: dict[str, Any], source: pl.DataFrame) -> None:
    good = runs["good"]
    assert good.ok, good.errors
    assert {c["check"]: c["passed"] for c in good.checks} == {"extract_verified": True, "counts_verified": True}
    assert good.releases[EXTRACT]["new"] and good.releases[COUNTS]["new"]
    published = pl.read_csv(release_folder(runs["home"], EXTRACT) / f"{EXTRACT}.csv", infer_schema=False)
    assert published.columns == ["年齢", "町字", "認定日", "性別", "要介護度", "月額サービス利用額"]
    suppressed = source.height - published.height
    assert 0 <= suppressed <= 0.05 * source.height
    assert runs["verified"]["records_suppressed"] == suppressed


def test_the_published_bytes_are_the_verified_bytes(runs: dict[str, Any]) -> None:
    meta = json.loads((release_folder(runs["home"], EXTRACT) / "metadata.json").read_text(encoding="utf-8"))
    published = {entry["path"]: entry["sha256"] for entry in meta["files"]}
    verified = runs["verified"]["files"]
    assert published[f"{EXTRACT}.csv"] == verified[f"{EXTRACT}.csv"] == meta["content_hash"]


def published_text(releases: Path) -> str:
    """Everything the public can download, as text: the distinct cells and headers of every table file (CSV,
    Excel CSV, JSON records, Parquet), and the other files (metadata, changes) whole."""
    pieces: set[str] = set()
    for path in (p for p in releases.rglob("*") if p.is_file()):
        if path.suffix == ".csv":
            table = pl.read_csv(path.read_bytes().decode("utf-8-sig").encode(), infer_schema=False)
        elif path.suffix == ".parquet":
            table = pl.read_parquet(path)
        elif path.name.startswith("care_certification_") and path.suffix == ".json":
            table = pl.DataFrame(json.loads(path.read_text(encoding="utf-8")))
        else:
            pieces.add(path.read_text(encoding="utf-8"))
            continue
        pieces |= set(table.columns)
        pieces |= {str(value) for column in table.columns for value in table[column].unique().to_list()}
    return "\n".join(sorted(pieces))


def test_no_identifier_or_canary_value_is_in_any_published_byte(runs: dict[str, Any], source: pl.DataFrame) -> None:
    text = published_text(runs["home"] / "releases")
    assert "要介護" in text and "狛江市" in text  # the release is really read
    canaries = {value for canary in DEMO_CANARIES for value in canary.values()}
    assert canaries <= set(source["氏名"]) | set(source["氏名カナ"]) | set(source["個人番号"])  # they were planted
    assert not [value for value in canaries if value in text]
    digit_runs = set(re.findall(r"\d{10,12}", text))
    assert not digit_runs & (set(source["個人番号"]) | set(source["被保険者番号"]))
    names = set(source["氏名"]) | set(source["氏名カナ"]) | set(source["住所"])
    assert not [name for name in names if name in text]
    phones = set(source["電話番号"].drop_nulls())
    assert not [phone for phone in phones if phone in text]


def test_k_and_l_hold_on_the_published_file(runs: dict[str, Any], source: pl.DataFrame) -> None:
    policy = load_policy("care_certification")
    csv = release_folder(runs["home"], EXTRACT) / f"{EXTRACT}.csv"
    published = pl.read_csv(csv, infer_schema=False)
    classes = published.group_by(list(policy.qi_columns)).agg(pl.len(), pl.col("要介護度").n_unique().alias("l"))
    k, l_value = int(classes["len"].min()), int(classes["l"].min())  # type: ignore[arg-type]
    assert k >= policy.model.k and l_value >= 2
    extract_check = check(runs["good"], "extract_verified")
    assert (extract_check["k"], extract_check["l"]) == (k, l_value)
    again = verify_policy_release(csv, source, policy, forbidden_values=[c["氏名"] for c in DEMO_CANARIES])
    assert again.passed, again.reasons
    city_part = release_folder(runs["home"], EXTRACT) / "cities" / f"{KOMAE}_{EXTRACT}.csv"
    assert city_part.read_bytes() == csv.read_bytes()  # one member: its part is the whole release


def hidden_cell_bounds(frame: pl.DataFrame, dims: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """An attacker's view of the published count table: every line (one dimension varying) sums to its total.
    Returns (lower, upper) bounds of every hidden cell over all non-negative solutions."""
    frame = frame.with_row_index("cell").with_columns(pl.col("件数").cast(pl.Int64))
    hidden = frame.filter(pl.col("秘匿") != "")
    unknown = {row: index for index, row in enumerate(hidden["cell"].to_list())}
    rows: list[int] = []
    columns: list[int] = []
    values: list[int] = []
    rhs: list[int] = []
    for dim in dims:
        others = [d for d in dims if d != dim]
        for _, line in frame.group_by(others):
            constant, touched = 0, False
            for cell, label, count in line.select("cell", dim, "件数").iter_rows():
                sign = -1 if label == "計" else 1
                if cell in unknown:
                    rows.append(len(rhs))
                    columns.append(unknown[cell])
                    values.append(sign)
                    touched = True
                else:
                    constant += sign * count
            if touched:
                rhs.append(-constant)
    matrix = csr_matrix((values, (rows, columns)), shape=(len(rhs), len(unknown)))
    lower, upper = np.zeros(len(unknown)), np.zeros(len(unknown))
    for variable in range(len(unknown)):
        objective = np.zeros(len(unknown))
        objective[variable] = 1
        low = linprog(objective, A_eq=matrix, b_eq=rhs, bounds=(0, None), method="highs")
        high = linprog(-objective, A_eq=matrix, b_eq=rhs, bounds=(0, None), method="highs")
        assert low.success and high.success
        lower[variable], upper[variable] = low.fun, -high.fun
    return lower, upper


def test_suppressed_counts_cannot_be_recovered_from_the_margins(runs: dict[str, Any]) -> None:
    counts = pl.read_csv(release_folder(runs["home"], COUNTS) / f"{COUNTS}.csv", infer_schema=False)
    assert counts.columns == ["市区町村コード", "市区町村名", "町字", "年齢", "性別", "件数", "秘匿"]
    extract = pl.read_csv(release_folder(runs["home"], EXTRACT) / f"{EXTRACT}.csv", infer_schema=False)
    grand = counts.filter((pl.col("町字") == "計") & (pl.col("年齢") == "計") & (pl.col("性別") == "計"))
    assert int(grand["件数"].item()) == extract.height  # counted on the released records only
    assert set(counts["秘匿"].fill_null("").unique().to_list()) == {"", "秘匿"}  # one mark, no labels
    hidden = counts.filter(pl.col("秘匿") != "")
    assert hidden.height > 0 and hidden["件数"].null_count() == hidden.height
    shown_cells = counts.filter(pl.col("秘匿").fill_null("") == "")["件数"].cast(pl.Int64)
    assert not shown_cells.is_between(1, 2).any()  # min_cell 3: no small count is shown
    lower, upper = hidden_cell_bounds(counts.drop("市区町村コード", "市区町村名"), ["町字", "年齢", "性別"])
    # no hidden cell is pinned, and none can be proven smaller than min_cell (3)
    assert (upper - lower >= 1).all() and (upper >= 3 - 1e-6).all()
    audit = check(runs["good"], "counts_verified")
    assert audit["passed"] is True


def test_a_too_weak_policy_blocks_publication_with_its_reason(runs: dict[str, Any]) -> None:
    weak = runs["weak"]
    assert not weak.ok
    extract_check = check(weak, "extract_verified")
    assert extract_check["passed"] is False
    [reason] = extract_check["reasons"]
    assert reason["code"] == "model_not_achievable"
    assert "k=6000" in reason["ja"] and "公開は行いません" in reason["ja"]
    assert "k=6000" in reason["en"] and "Nothing is released" in reason["en"]
    assert weak.releases == {}  # the publication step never ran
    assert weak.errors == []  # no other step failed: the checks stopped it
    assert runs["weak_numbers"] == runs["numbers"] == {EXTRACT: 1, COUNTS: 1}
    assert not release_folder(runs["home"], EXTRACT, 2).exists()
    # nothing left staged (or verified) that a later publication could pick up
    assert runs["weak_staged"] == ["cities", "staged.json", "verified_counts.json", "verified_extract.json"]


def test_files_changed_after_verification_are_not_published(runs: dict[str, Any]) -> None:
    tampered = runs["tampered"]
    assert not tampered.success
    [failure] = [event for event in tampered.all_events if event.is_step_failure]
    assert "staged files changed after verification" in str(failure.step_failure_data.error)
    assert f"{EXTRACT}.csv" in str(failure.step_failure_data.error)
    assert latest_number(runs["home"], EXTRACT) == 1


def test_the_same_data_again_publishes_nothing_new(runs: dict[str, Any]) -> None:
    again = runs["again"]
    assert again.ok
    assert again.releases[EXTRACT] == {"release": 1, "rows": runs["good"].releases[EXTRACT]["rows"], "new": False}
    assert sorted(p.name for p in (runs["home"] / "releases" / EXTRACT).iterdir()) == ["1", "latest.json"]


def test_nothing_personal_is_under_releases(runs: dict[str, Any]) -> None:
    home = runs["home"]
    private = home / "private"
    personal = sorted((private / "personal" / KOMAE).glob("*.csv"))
    processing = sorted((private / "processing").rglob("*.json"))
    assert personal and processing  # kept, privately
    secrets = [p.stem for p in personal] + [p.read_bytes()[:200].decode("utf-8", "ignore") for p in personal]
    secrets += ["加工方法等情報", "extract_log", "policy_sha256"]
    for path in (home / "releases").rglob("*"):
        assert "private" not in path.parts and path.name not in {p.name for p in processing}
        if path.is_file():
            data = path.read_bytes().decode("utf-8-sig", "ignore")
            assert not [secret for secret in secrets if secret in data], path
    for dataset in (EXTRACT, COUNTS):
        meta = json.loads((release_folder(home, dataset) / "metadata.json").read_text(encoding="utf-8"))
        assert meta["source_uploads"] == []
        assert "合成デモデータ" in meta["title"]["ja"] and "synthetic" in meta["title"]["en"]
        listed = {entry["path"] for entry in meta["files"]} | {"metadata.json"}
        present = {str(p.relative_to(release_folder(home, dataset))) for p in release_folder(home, dataset).rglob("*")
                   if p.is_file()}
        assert present == listed
    assert not list((home / "landing").rglob("*.*")) and not list((home / "lake").rglob("*.*"))


def test_the_extract_log_says_who_when_which_policy_and_release(runs: dict[str, Any]) -> None:
    lines = (runs["home"] / "private" / "extract_log.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    published = [e for e in entries if e["verification_passed"]]
    blocked = [e for e in entries if not e["verification_passed"]]
    assert {(e["dataset_id"], e["release_number"]) for e in published} == {(EXTRACT, 1), (COUNTS, 1)}
    for entry in published:
        assert entry["requested_by"] and entry["requested_at"] and entry["policy"] == "care_certification"
        assert entry["sources"][0]["synthetic_demo_data"] is True
        assert (runs["home"] / entry["processing_information"][KOMAE]).is_file()
    assert blocked and all(e["release"] is None for e in blocked)
    assert "model_not_achievable" in {reason["code"] for e in blocked for reason in e["blocked_reasons"]}


def test_two_members_each_get_a_verified_part(kouiki_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With two cities, each city's published part holds the model on its own (it is downloadable alone)."""
    entries = [{"code": code, "personal_datasets": ["care_certification"], "synthetic_personal_rows": 2_500}
               for code in ("122033", KOMAE)]
    path = kouiki_home.parent / "two.yaml"
    path.write_text(yaml.safe_dump({"members": entries}, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("KOUIKI_MEMBERS", str(path))
    with instance_for_test() as instance:
        run = run_anonymisation(defs.resolve_job_def("anonymise_personal"), instance, QUIET)
    assert run.ok, (run.errors, run.checks)
    folder = release_folder(kouiki_home, EXTRACT)
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    assert set(meta["rows_by_city"]) == {"122033", KOMAE}
    verdict = json.loads((kouiki_home / "private" / "staging" / "care_certification" / "verified_extract.json")
                         .read_text(encoding="utf-8"))
    assert {"cities/122033.csv", f"cities/{KOMAE}.csv"} <= set(verdict["files"])
    for code in ("122033", KOMAE):
        part = pl.read_csv(folder / "cities" / f"{code}_{EXTRACT}.csv", infer_schema=False)
        assert part.height == meta["rows_by_city"][code]
        assert part.group_by(["年齢", "町字", "認定日", "性別"]).len()["len"].min() >= 5  # type: ignore[operator]
        assert (kouiki_home / "private" / "processing" / "care_certification" / code).is_dir()


def test_a_member_naming_an_unknown_policy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "members.yaml"
    path.write_text(yaml.safe_dump({"members": [{"code": KOMAE, "personal_datasets": ["care_certificaton"]}]},
                                   allow_unicode=True), encoding="utf-8")
    with pytest.raises(RegistryError, match="care_certificaton"):
        load_members(path)
    members = load_members(members_file(tmp_path, 10))
    assert members[0].personal_datasets == ("care_certification",) and members[0].synthetic_personal_rows == 10


@pytest.fixture()
def cli_inputs(tmp_path: Path) -> tuple[Path, list[str]]:
    """A small CSV with exact ages and ARX hierarchies for 年齢 and 性別."""
    from anonymise.synthetic import generate_care_records

    records = generate_care_records("222127", 1_500, seed=5)
    ages = (2025 - records["生年月日"].dt.year()).clip(60, 99)
    table = records.select("氏名", "個人番号", "性別", "要介護度").with_columns(年齢=ages.cast(pl.String))
    data = tmp_path / "input.csv"
    table.write_csv(data)
    age = tmp_path / "age.csv"
    age.write_text("".join(f"{a};{a // 10 * 10}代;*\n" for a in range(60, 100)), encoding="utf-8")
    return data, ["--qi", f"年齢={age}", "--qi", f"性別={POLICY_DIR / 'hierarchies' / 'sex.csv'}"]


def test_cli_anonymise_writes_a_verified_file(tmp_path: Path, cli_inputs: tuple[Path, list[str]]) -> None:
    data, qis = cli_inputs
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    result = CliRunner().invoke(app, ["anonymise", str(data), *qis, "--sensitive", "要介護度", "--k", "5",
                                      "--l", "2", "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "k=" in result.output and "released" in result.output
    written = pl.read_csv(out, infer_schema=False)
    assert set(written.columns) == {"年齢", "性別", "要介護度"}
    assert written.group_by(["年齢", "性別"]).len()["len"].min() >= 5  # type: ignore[operator]
    assert json.loads(report.read_text(encoding="utf-8"))["released"] is True


def test_cli_anonymise_exits_2_when_the_model_cannot_be_met(tmp_path: Path, cli_inputs: tuple[Path, list[str]]) -> None:
    data, qis = cli_inputs
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    result = CliRunner().invoke(app, ["anonymise", str(data), *qis, "--k", "5000", "--max-suppression", "1",
                                      "--out", str(out), "--report", str(report)])
    assert result.exit_code == 2
    assert "k=5000" in result.output and "not released" in result.output
    assert not out.exists()
    assert json.loads(report.read_text(encoding="utf-8"))["failure"]["code"] == "model_not_achievable"
    bad = CliRunner().invoke(app, ["anonymise", str(data), "--qi", "年齢", "--k", "5", "--out", str(out),
                                   "--report", str(report)])
    assert bad.exit_code == 2 and "COL=HIERARCHY.csv" in bad.output
