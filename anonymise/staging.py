"""Staging: an extract and its count tables written to a private folder, where they are verified before anything
is published.

    private/staging/<policy>/staged.json                 what was staged (sources, outcome per city, failures)
    private/staging/<policy>/<policy>_anonymised.parquet released columns + _city_code (what publication reads)
    private/staging/<policy>/<policy>_anonymised.csv     the public columns, written as publication writes them
    private/staging/<policy>/cities/<code>.csv           each city's part (published as well, so verified as well)
    private/staging/<policy>/<policy>_counts.parquet/.csv   the count table (primary + secondary suppression)
    private/staging/<policy>/<policy>_counts_truth.parquet   its true counts, for the audit only (never published)
    private/staging/<policy>/verified_<kind>.json        the verification's verdict and the sha256 of what it read
    private/processing/<policy>/<city>/policy-<sha>_source-<sha>.json   加工方法等情報 (kept, never published)

The folder is rebuilt whole on every staging (written aside, then swapped in), so a verdict can never refer to
older files. Rows of the extract are shuffled with a seed kept only in the 加工方法等情報: the order of the
personal file (often by name or number) must not survive into the release. The same policy text on the same
file reuses its seed, so unchanged data stages the same bytes (and publishes nothing new). Each city keeps the
generalisation of the latest published release when it still meets the model, so releases can be compared
class by class (anonymise.differencing). Policies below the platform floors stage nothing (anonymise.floors).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from anonymise.aggregate import released_tables
from anonymise.differencing import earlier_parts, published_levels, unsafe_class_keys
from anonymise.documents import file_sha256, write_processing_information
from anonymise.floors import FloorsError, check_policy, load_floors, unreadable_floors
from anonymise.personal import PersonalFile
from anonymise.policy import Policy
from anonymise.process import PolicyOutcome, anonymise_records, prepare_records
from anonymise.reasons import Reason
from kouiki.sql import literal, quote

CITY_CODE = "_city_code"
# The same guard as publish.release: a text cell starting with one of these gets a leading quote (CSV injection).
FORMULA_PREFIX = r"^[=+\-@\t\r]"
EXTRACT, COUNTS = "extract", "counts"


@dataclass(frozen=True)
class CitySource:
    """One city's personal records for a policy (typed for the anonymiser) and the file they came from."""

    city_code: str
    city_name: str
    file: PersonalFile
    records: pl.DataFrame


@dataclass
class StageResult:
    policy: Policy
    folder: Path
    failures: list[Reason]
    cities: dict[str, dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)  # staged file (relative) → sha256

    @property
    def staged(self) -> bool:
        return not self.failures and bool(self.files)


def extract_dataset_id(policy: Policy) -> str:
    return f"{policy.name}_anonymised"


def truth_file_name(dataset_id: str) -> str:
    """The private file of a count table's true counts (read by the audit; never published)."""
    return f"{dataset_id}_truth.parquet"


def counts_dataset_ids(policy: Policy) -> list[str]:
    """One public dataset per aggregate table of the policy."""
    tables = policy.aggregate_tables
    if len(tables) == 1:
        return [f"{policy.name}_counts"]
    return [f"{policy.name}_counts_{index}" for index in range(1, len(tables) + 1)]


def staging_folder(private_root: Path, policy_name: str) -> Path:
    return private_root / "staging" / policy_name


def processing_folder(private_root: Path, policy_name: str, city_code: str) -> Path:
    return private_root / "processing" / policy_name / city_code


def stage(
    policy: Policy, sources: list[CitySource], private_root: Path, releases_root: Path | None = None
) -> StageResult:
    """Anonymise every city's records, write the 加工方法等情報, and stage the extract and count tables.

    When any city's records cannot meet the privacy model, nothing is staged and the reasons say why. With
    `releases_root`, classes whose difference with an earlier release would isolate someone are withheld whole
    (within the suppression limit); the verification checks the difference again on its own."""
    folder = staging_folder(private_root, policy.name)
    work = folder.with_name(f".{folder.name}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    (work / "cities").mkdir(parents=True)
    result = StageResult(policy, folder, [], {})
    releases: list[pl.DataFrame] = []
    counts: list[list[tuple[pl.DataFrame, pl.DataFrame]]] = []
    previous = _latest_levels(private_root, policy)
    for source in sources:
        floors_failure = _below_floors(policy, source)
        if floors_failure is not None:  # nothing is anonymised: the verdicts see this failure, never "nothing staged"
            result.cities[source.city_code] = _blocked_city_summary(source)
            result.failures.append(_city_failure(source, floors_failure))
            continue
        seed = _seed(private_root, policy, source)
        outcome = anonymise_records(source.records, policy, prefer_levels=previous.get(source.city_code), seed=seed)
        withheld = _withhold_isolating_classes(policy, source, outcome, releases_root)
        written = _processing_path(private_root, policy, source, outcome.outcome.level_names, withheld)
        if not written.exists():  # the same policy, file, levels and history always give the same processing
            info = {**outcome.processing_information, "source": _source_note(source), "releases_over_time": withheld}
            info["processing_standards"][4]["done"]["withheld_for_differencing"] = withheld
            write_processing_information(info, written, work / f"{extract_dataset_id(policy)}.csv")
        result.cities[source.city_code] = _city_summary(source, outcome, written)
        if not outcome.outcome.ok or outcome.release is None:
            result.failures.append(_city_failure(source, outcome.outcome.failure))
            continue
        releases.append(outcome.release.with_columns(pl.lit(source.city_code).alias(CITY_CODE)))
        counts.append(_count_frames(source, outcome))  # after withholding: counted on what is released
    if not result.failures and releases:
        result.files = _write_staged(work, policy, releases, counts)
    _write_json(work / "staged.json", _stage_record(result))
    _swap_in(work, folder)
    return result


def read_stage_record(private_root: Path, policy_name: str) -> dict[str, Any] | None:
    path = staging_folder(private_root, policy_name) / "staged.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def verdict_path(private_root: Path, policy_name: str, kind: str) -> Path:
    return staging_folder(private_root, policy_name) / f"verified_{kind}.json"


def write_verdict(private_root: Path, policy_name: str, kind: str, verdict: dict[str, Any]) -> None:
    """Record what a verification concluded, with the sha256 of every staged file it passed judgement on."""
    _write_json(verdict_path(private_root, policy_name, kind), verdict)


def staged_files_unchanged(folder: Path, hashes: dict[str, str]) -> list[str]:
    """The staged files whose bytes differ from `hashes` (empty when all are as verified)."""
    return [name for name, sha in hashes.items() if not (folder / name).is_file() or file_sha256(folder / name) != sha]


def _source_note(source: CitySource) -> dict[str, Any]:
    return {
        "city_code": source.city_code,
        "sha256": source.file.sha256,
        "received_at": source.file.received_at,
        "synthetic_demo_data": source.file.synthetic,
    }


def _processing_path(
    private_root: Path, policy: Policy, source: CitySource, levels: dict[str, str], withheld: dict[str, Any]
) -> Path:
    """One document per (policy text, source file, levels and withheld classes):
    policy-<sha[:12]>_source-<sha[:16]>_levels-<…>.json."""
    what = {"levels": levels, "withheld": withheld}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    name = f"{_processing_prefix(policy, source)}_levels-{digest[:8]}.json"
    return processing_folder(private_root, policy.name, source.city_code) / name


def _processing_prefix(policy: Policy, source: CitySource) -> str:
    return f"policy-{policy.sha256[:12]}_source-{source.file.sha256[:16]}"


def _seed(private_root: Path, policy: Policy, source: CitySource) -> int:
    """The shuffle seed of an earlier staging of this policy text and file (same bytes again), else a new secret
    one; it is only ever written to the 加工方法等情報."""
    folder = processing_folder(private_root, policy.name, source.city_code)
    for path in sorted(folder.glob(f"{_processing_prefix(policy, source)}*.json")) if folder.is_dir() else []:
        seed = (json.loads(path.read_text(encoding="utf-8")).get("row_order") or {}).get("seed")
        if isinstance(seed, int):
            return seed
    return secrets.randbits(62)


def _withhold_isolating_classes(
    policy: Policy, source: CitySource, outcome: PolicyOutcome, releases_root: Path | None
) -> dict[str, Any]:
    """Remove from the release every class whose added, removed or kept rows, compared with any earlier release
    of this city, would form a group below k (or l): the attacker then sees the whole earlier class leave (k or
    more people, l-diverse) and nothing else. Done only while the records removed in all (local suppression and
    withheld classes) stay within the platform's suppression cap (floors.max_suppression, set by the office);
    otherwise the release is left as it is and the verification holds it with its reason."""
    release = outcome.release
    parts = earlier_parts(releases_root, extract_dataset_id(policy), source.city_code)
    if release is None or not parts:
        return {"compared_with": sorted(parts), "classes": 0, "records": 0, "within_suppression_limit": True,
                "withheld": False, "rows": []}
    text = _as_published_text(release)
    qis = list(policy.qi_columns)
    model = policy.model
    found = [
        unsafe_class_keys(old, text, qis, list(policy.sensitive), model.k, model.l).select(qis)
        for old in parts.values()
        if set(old.columns) == set(text.columns)
    ]
    keys = pl.concat(found).unique() if found else pl.DataFrame(schema=dict.fromkeys(qis, pl.String))
    marked = text.select(qis).join(keys.with_columns(_withheld=pl.lit(True)), on=qis, how="left",
                                   maintain_order="left", nulls_equal=True)["_withheld"].fill_null(False)
    records = int(marked.sum())
    suppressed = int(outcome.outcome.metrics.get("records_suppressed") or 0)
    within = suppressed + records <= int(load_floors().max_suppression * source.records.height)
    rows: list[int] = []
    if records and within:
        outcome.outcome.release = release.filter(~marked)
        positions = outcome.outcome.release_rows or []
        rows = sorted(positions[i] for i in marked.arg_true().to_list()) if positions else []
        outcome.outcome.release_rows = [p for p, hit in zip(positions, marked.to_list(), strict=False) if not hit]
    return {"compared_with": sorted(parts), "classes": keys.height, "records": records,
            "within_suppression_limit": within, "withheld": bool(records and within),
            "rows": rows, "rows_reference": "0-based row positions in the stored source file (private)"}


def _as_published_text(frame: pl.DataFrame) -> pl.DataFrame:
    """The table as its published CSV reads back as text (numbers as written, formula cells quoted)."""
    columns = []
    for name, dtype in frame.schema.items():
        text = pl.col(name).cast(pl.String)
        if dtype == pl.String:
            text = pl.when(text.str.contains(FORMULA_PREFIX)).then("'" + text).otherwise(text)
        columns.append(text.alias(name))
    return frame.select(columns)


def _latest_levels(private_root: Path, policy: Policy) -> dict[str, dict[str, str]]:
    """Each city's generalisation levels in the latest published extract (from the private extract log)."""
    history = published_levels(private_root, extract_dataset_id(policy))
    return history[max(history)] if history else {}


def _below_floors(policy: Policy, source: CitySource) -> Reason | None:
    """The platform floors on the policy and on the columns it would release from this city's records."""
    try:
        reasons = check_policy(policy, prepare_records(source.records, policy).table, load_floors())
    except FloorsError as error:
        return unreadable_floors(error)
    if not reasons:
        return None
    return Reason(reasons[0].code, " ".join(r.ja for r in reasons), " ".join(r.en for r in reasons))


def _city_summary(source: CitySource, outcome: PolicyOutcome, written: Path) -> dict[str, Any]:
    metrics = outcome.outcome.metrics
    classes = metrics.get("equivalence_classes") or {}
    return {
        "city_name": source.city_name,
        "source_sha256": source.file.sha256,
        "synthetic_demo_data": source.file.synthetic,
        "records_in": source.records.height,
        "records_released": outcome.release.height if outcome.release is not None else 0,
        "records_suppressed": metrics.get("records_suppressed"),
        "suppressed_share": metrics.get("suppressed_share"),
        "levels": outcome.outcome.level_names,
        "loss": metrics.get("loss"),
        "classes": classes.get("count"),
        "processing_information": str(written),
    }


def _blocked_city_summary(source: CitySource) -> dict[str, Any]:
    return {
        "city_name": source.city_name,
        "source_sha256": source.file.sha256,
        "synthetic_demo_data": source.file.synthetic,
        "records_in": source.records.height,
        "records_released": 0,
        "records_suppressed": None,
        "suppressed_share": None,
        "levels": {},
        "loss": None,
        "classes": None,
        "processing_information": None,
    }


def _city_failure(source: CitySource, failure: Reason | None) -> Reason:
    reason = failure or Reason("not_released", "匿名加工できませんでした。", "The records could not be anonymised.")
    label = f"{source.city_code} {source.city_name}"
    return Reason(reason.code, f"{label}: {reason.ja}", f"{label}: {reason.en}")


def _count_frames(source: CitySource, outcome: PolicyOutcome) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """The policy's count tables for one city, counted on the records its extract releases and suppressed:
    (the table to publish, its true counts for the audit)."""
    frames = []
    for table in released_tables(outcome).values():
        city = [pl.lit(source.city_code).alias("市区町村コード"), pl.lit(source.city_name).alias("市区町村名")]
        published = table.to_frame().select(*city, pl.all(), pl.lit(source.city_code).alias(CITY_CODE))
        frames.append((published, table.truth_frame().select(*city, pl.all())))
    return frames


def _write_staged(
    work: Path, policy: Policy, releases: list[pl.DataFrame], counts: list[list[tuple[pl.DataFrame, pl.DataFrame]]]
) -> dict[str, str]:
    written: list[Path] = []
    extract = pl.concat(releases)
    written += _write_table(work, extract_dataset_id(policy), extract)
    for code, part in extract.group_by(CITY_CODE, maintain_order=True):
        city_csv = work / "cities" / f"{code[0]}.csv"
        _write_csv(part, city_csv)
        written.append(city_csv)
    for index, dataset_id in enumerate(counts_dataset_ids(policy)):
        written += _write_table(work, dataset_id, pl.concat([frames[index][0] for frames in counts]))
        truth = work / truth_file_name(dataset_id)
        pl.concat([frames[index][1] for frames in counts]).write_parquet(truth)
        written.append(truth)
    return {str(path.relative_to(work)): file_sha256(path) for path in written}


def _write_table(work: Path, dataset_id: str, frame: pl.DataFrame) -> list[Path]:
    parquet, csv = work / f"{dataset_id}.parquet", work / f"{dataset_id}.csv"
    frame.write_parquet(parquet)
    _write_csv(frame, csv)
    return [parquet, csv]


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    """The public columns as CSV, by the same DuckDB COPY as publish.release, so the verified bytes are the
    published bytes (the publication step compares the two hashes)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.register("staged_input", frame.to_arrow())
        con.execute("CREATE TABLE staged AS SELECT * FROM staged_input")
        columns = [(r[0], r[1]) for r in con.execute("DESCRIBE staged").fetchall() if not r[0].startswith("_")]
        select = ", ".join(_csv_cell(name, typ) for name, typ in columns)
        con.execute(f"COPY (SELECT {select} FROM staged) TO {literal(str(path))} (FORMAT csv, HEADER true)")
    finally:
        con.close()


def _csv_cell(name: str, typ: str) -> str:
    quoted = quote(name)
    if typ != "VARCHAR":
        return quoted
    return f"CASE WHEN regexp_matches({quoted}, '{FORMULA_PREFIX}') THEN '''' || {quoted} ELSE {quoted} END AS {quoted}"




def _stage_record(result: StageResult) -> dict[str, Any]:
    policy = result.policy
    return {
        "policy": policy.name,
        "policy_sha256": policy.sha256,
        "staged_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "staged": result.staged,
        "failures": [reason.as_dict() for reason in result.failures],
        "cities": result.cities,
        "files": result.files,
        "datasets": {EXTRACT: extract_dataset_id(policy), COUNTS: counts_dataset_ids(policy)},
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


def _swap_in(work: Path, folder: Path) -> None:
    """Replace the staging folder by the freshly written one (the old one, verdicts included, is dropped)."""
    old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
    if folder.exists():
        os.rename(folder, old)
    os.rename(work, folder)
    shutil.rmtree(old, ignore_errors=True)
