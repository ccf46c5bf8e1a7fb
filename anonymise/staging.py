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
older files. Rows of the extract are sorted by their values: the order of the personal file (often by name or
number) must not survive into the release.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from anonymise.aggregate import released_tables
from anonymise.documents import file_sha256, write_processing_information
from anonymise.personal import PersonalFile
from anonymise.policy import Policy
from anonymise.process import PolicyOutcome, anonymise_records
from anonymise.reasons import Reason

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


def stage(policy: Policy, sources: list[CitySource], private_root: Path) -> StageResult:
    """Anonymise every city's records, write the 加工方法等情報, and stage the extract and count tables.

    When any city's records cannot meet the privacy model, nothing is staged and the reasons say why."""
    folder = staging_folder(private_root, policy.name)
    work = folder.with_name(f".{folder.name}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    (work / "cities").mkdir(parents=True)
    result = StageResult(policy, folder, [], {})
    releases: list[pl.DataFrame] = []
    counts: list[list[tuple[pl.DataFrame, pl.DataFrame]]] = []
    for source in sources:
        outcome = anonymise_records(source.records, policy)
        written = _processing_path(private_root, policy, source)
        if not written.exists():  # the same policy text on the same file always gives the same processing
            info = {**outcome.processing_information, "source": _source_note(source)}
            write_processing_information(info, written, work / f"{extract_dataset_id(policy)}.csv")
        result.cities[source.city_code] = _city_summary(source, outcome, written)
        if not outcome.outcome.ok or outcome.release is None:
            result.failures.append(_city_failure(source, outcome.outcome.failure))
            continue
        ordered = outcome.release.sort(outcome.release.columns)
        releases.append(ordered.with_columns(pl.lit(source.city_code).alias(CITY_CODE)))
        counts.append(_count_frames(source, outcome))
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


def _processing_path(private_root: Path, policy: Policy, source: CitySource) -> Path:
    """One document per (policy text, source file): policy-<sha256[:12]>_source-<sha256[:16]>.json."""
    name = f"policy-{policy.sha256[:12]}_source-{source.file.sha256[:16]}.json"
    return processing_folder(private_root, policy.name, source.city_code) / name


def _city_summary(source: CitySource, outcome: PolicyOutcome, written: Path) -> dict[str, Any]:
    metrics = outcome.outcome.metrics
    classes = metrics.get("equivalence_classes") or {}
    return {
        "city_name": source.city_name,
        "source_sha256": source.file.sha256,
        "synthetic_demo_data": source.file.synthetic,
        "records_in": source.records.height,
        "records_released": metrics.get("records_released", 0),
        "records_suppressed": metrics.get("records_suppressed"),
        "suppressed_share": metrics.get("suppressed_share"),
        "levels": outcome.outcome.level_names,
        "loss": metrics.get("loss"),
        "classes": classes.get("count"),
        "processing_information": str(written),
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
        con.execute(f"COPY (SELECT {select} FROM staged) TO {_literal(str(path))} (FORMAT csv, HEADER true)")
    finally:
        con.close()


def _csv_cell(name: str, typ: str) -> str:
    quoted = '"' + name.replace('"', '""') + '"'
    if typ != "VARCHAR":
        return quoted
    return f"CASE WHEN regexp_matches({quoted}, '{FORMULA_PREFIX}') THEN '''' || {quoted} ELSE {quoted} END AS {quoted}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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
