"""The verdict on a staged release: anonymise.verify on the staged extract's bytes, anonymise.verify_counts on the
staged count tables. This is what the blocking checks of the pipeline run, in a step of their own.

It calls no anonymisation code: it reads the staged files and the very personal files they were made from
(by the sha256 recorded at staging) from disk, measures k, l, risk and looks for every deleted value, the planted
canaries included. A verdict names the sha256 of every file it passed, so publication can refuse files that
changed after verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from anonymise.byte_scan import hits_reason, scan_files, scan_folder
from anonymise.differencing import check_against_earlier_releases, office_decision_for_counts
from anonymise.documents import file_sha256
from anonymise.floors import Floors, FloorsError, check_policy, column_kinds, load_floors, unreadable_floors
from anonymise.personal import read_personal_text, stored_personal_file
from anonymise.policy import Policy
from anonymise.protection import protection_spec
from anonymise.reasons import Reason
from anonymise.staging import (
    COUNTS,
    EXTRACT,
    counts_dataset_ids,
    extract_dataset_id,
    read_stage_record,
    staging_folder,
    truth_file_name,
    write_verdict,
)
from anonymise.verify import VerificationResult, verify_policy_release
from anonymise.verify_counts import AuditSettings, verify_count_table

CITY_COLUMN = "市区町村コード"
# the count-table holds the office may decide away (with its reason): what only time and grouping reveal
OVER_TIME_HOLDS = frozenset({"small_change_between_releases", "categories_changed_between_releases"})


@dataclass(frozen=True)
class VerificationSource:
    """One city's personal records as text, and the canary values that must never be published."""

    city_code: str
    records: pl.DataFrame
    canaries: tuple[str, ...]


def staged_sources(private_root: Path, record: dict[str, Any]) -> list[VerificationSource]:
    """The personal files a staging was made from (by sha256), read as text."""
    sources = []
    for code, city in record["cities"].items():
        file = stored_personal_file(private_root, code, city["source_sha256"])
        sources.append(VerificationSource(code, read_personal_text(file), tuple(file.canary_values())))
    return sources


def verify_staged_extract(policy: Policy, private_root: Path, releases_root: Path | None = None) -> dict[str, Any]:
    """Verify the staged extract (and each city's part) and record the verdict; returns it. With `releases_root`
    the extract is also checked against every earlier release of the dataset (differencing)."""
    record = read_stage_record(private_root, policy.name)
    if record is not None and not record["cities"]:
        return _finish(private_root, policy, EXTRACT, [], {}, {"nothing_to_verify": True})
    blocked = _blocked(policy, record)
    if blocked or record is None:
        return _finish(private_root, policy, EXTRACT, blocked, {}, {"staged": False})
    folder = staging_folder(private_root, policy.name)
    sources = staged_sources(private_root, record)
    extract = folder / f"{extract_dataset_id(policy)}.csv"
    everyone = pl.concat([source.records for source in sources], how="diagonal")
    canaries = sorted({value for source in sources for value in source.canaries})
    whole = verify_policy_release(extract, everyone, policy, forbidden_values=canaries)
    checked = {extract: whole}
    if len(sources) > 1:  # a city's published part must hold the model on its own
        for source in sources:
            part = folder / "cities" / f"{source.city_code}.csv"
            checked[part] = verify_policy_release(part, source.records, policy, forbidden_values=source.canaries)
    reasons = [reason for result in checked.values() for reason in result.reasons]
    files = {str(path.relative_to(folder)): file_sha256(path) for path in checked}
    parquet = folder / f"{extract_dataset_id(policy)}.parquet"
    files[parquet.name] = file_sha256(parquet)
    published = [extract, parquet, *sorted((folder / "cities").glob("*.csv"))]  # every staged file of the extract
    floors_reasons, scan = _floors_and_scan(policy, folder, published, sources, canaries)
    reasons += floors_reasons
    figures = _extract_figures(whole, record, canaries) | {"scan": scan}
    if not reasons:  # differencing only means something for a release that is otherwise publishable
        history = check_against_earlier_releases(policy, folder, releases_root, private_root)
        reasons += history.reasons
        figures["differencing"] = history.as_dict()
    return _finish(private_root, policy, EXTRACT, reasons, files, figures)


def _floors_and_scan(
    policy: Policy, folder: Path, files: list[Path], sources: list[VerificationSource], canaries: list[str]
) -> tuple[list[Reason], dict[str, Any]]:
    """The platform floors on the policy and on the published columns as staged, then the byte scan of every
    staged file for 個人番号, 被保険者番号-like and phone-like values, source identifiers and canaries."""
    try:
        floors = load_floors()
    except FloorsError as error:
        return [unreadable_floors(error)], {}
    published = pl.read_csv(folder / f"{extract_dataset_id(policy)}.csv", infer_schema=False)
    reasons = check_policy(policy, published, floors)
    values = {
        column: source.records[column].to_list()
        for source in sources
        for column in identifier_columns(source.records, policy, floors)
    }
    hits = scan_files(files, folder, values, canaries)
    if hits:
        reasons.append(hits_reason(hits))
    scanned = {"files": len(files), "identifier_columns": sorted(values), "hits": [hit.as_dict() for hit in hits]}
    return reasons, scanned


def scan_release_folder(policy: Policy, private_root: Path, folder: Path) -> list[Any]:
    """The byte scan over every file of a release folder about to be published (all formats, changes.json and
    metadata.json included), with the identifier values and canaries of the staged sources."""
    record = read_stage_record(private_root, policy.name)
    if record is None:
        return []
    floors = load_floors()
    sources = staged_sources(private_root, record)
    values = {
        column: source.records[column].to_list()
        for source in sources
        for column in identifier_columns(source.records, policy, floors)
    }
    canaries = sorted({value for source in sources for value in source.canaries})
    return scan_folder(folder, values, canaries)


def identifier_columns(source: pl.DataFrame, policy: Policy, floors: Floors) -> list[str]:
    """The source columns whose values must never be released: the policy's direct identifiers, and any column
    that is not released and identifies by its name or values (names, contacts, codes), whatever the policy says."""
    released = set(policy.released_columns)
    helpers = {str(c) for rule in policy.quasi_identifiers for c in rule.hierarchy.get("columns", [])}
    helpers |= {rule.source_column for rule in policy.quasi_identifiers}
    identifying = {"individual_code", "linking_code", "name_or_contact"}
    columns = [column for column in policy.direct_identifiers if column in source.columns]
    for column in source.columns:
        if column in released or column in helpers or column in columns:
            continue
        if identifying & set(column_kinds(column, source[column], source.height, floors)):
            columns.append(column)
    return columns


def verify_staged_counts(policy: Policy, private_root: Path, releases_root: Path | None = None) -> dict[str, Any]:
    """Audit the staged count tables (the interval attack under three attackers, with every earlier release of
    the same table from `releases_root`, and their totals against the staged extract); record the verdict."""
    record = read_stage_record(private_root, policy.name)
    if record is not None and not record["cities"]:
        return _finish(private_root, policy, COUNTS, [], {}, {"nothing_to_verify": True})
    blocked = _blocked(policy, record)
    if blocked or record is None:
        return _finish(private_root, policy, COUNTS, blocked, {}, {"staged": False})
    folder = staging_folder(private_root, policy.name)
    spec = protection_spec(policy)
    settings = AuditSettings(spec.min_cell, spec.upper, spec.lower)
    released = _extract_rows_per_city(folder / f"{extract_dataset_id(policy)}.parquet")
    reasons: list[Reason] = []
    files: dict[str, str] = {}
    tables: dict[str, Any] = {}
    for dataset_id, table in zip(counts_dataset_ids(policy), policy.aggregate_tables, strict=True):
        csv, truth = folder / f"{dataset_id}.csv", folder / truth_file_name(dataset_id)
        earlier = _earlier_releases(releases_root, dataset_id)
        result = verify_count_table(csv, list(table.dims), settings, truth, earlier, layer=CITY_COLUMN)
        decision = _office_decides_small_changes(private_root, policy, csv, result.reasons)
        table_reasons = [r for r in result.reasons if decision is None or r.code not in OVER_TIME_HOLDS]
        reasons += table_reasons + _totals_against_extract(csv, list(table.dims), released)
        tables[dataset_id] = {"table": table.name, **result.as_dict(), "office_decision": decision}
        for path in (csv, csv.with_suffix(".parquet"), truth):
            files[path.name] = file_sha256(path)
    return _finish(private_root, policy, COUNTS, reasons, files, {"min_cell": policy.min_cell, "tables": tables})


def _office_decides_small_changes(
    private_root: Path, policy: Policy, csv: Path, reasons: list[Reason]
) -> dict[str, Any] | None:
    """The office's decision for this exact table, when only changes over time hold it (small changes, regrouped
    categories)."""
    if not reasons or any(reason.code not in OVER_TIME_HOLDS for reason in reasons):
        return None
    return office_decision_for_counts(private_root, policy, csv)


def _earlier_releases(releases_root: Path | None, dataset_id: str) -> list[tuple[str, Path]]:
    """Every published release of a dataset (releases/<dataset>/<n>/<dataset>.csv), oldest first."""
    if releases_root is None or not (releases_root / dataset_id).is_dir():
        return []
    numbered = [path for path in (releases_root / dataset_id).iterdir() if path.is_dir() and path.name.isdigit()]
    return [
        (f"release {path.name}", path / f"{dataset_id}.csv")
        for path in sorted(numbered, key=lambda path: int(path.name))
        if (path / f"{dataset_id}.csv").is_file()
    ]


def _extract_rows_per_city(parquet: Path) -> dict[str, int]:
    if not parquet.is_file():
        return {}
    frame = pl.read_parquet(parquet, columns=["_city_code"])
    return {str(code): int(count) for code, count in frame.group_by("_city_code").len().iter_rows()}


def _totals_against_extract(csv: Path, dims: list[str], released: dict[str, int]) -> list[Reason]:
    """Each city's grand total must equal the records its extract releases: a table counted on more records
    (the whole source) minus the extract's counts would give the suppressed records."""
    frame = pl.read_csv(csv, infer_schema=False)
    grand = frame.filter(pl.all_horizontal(pl.col(dim) == "計" for dim in dims))
    differing = [
        code for code, total in grand.select(CITY_COLUMN, "件数").iter_rows()
        if total is None or int(total) != released.get(str(code), -1)
    ]
    if not differing:
        return []
    return [
        Reason(
            "counts_not_from_released_records",
            f"集計表の総数が匿名加工データの件数と一致しません（{', '.join(differing)}）。差し引くと削除した"
            "レコードが分かります。",
            f"The count table's grand total differs from the extract's records for {', '.join(differing)}: "
            "subtracting one from the other would reveal the suppressed records.",
        )
    ]


def _blocked(policy: Policy, record: dict[str, Any] | None) -> list[Reason]:
    """Why the staging cannot pass: none made, another policy text, the anonymiser's own failure, no files."""
    if record is None:
        return [Reason("not_staged", "検証する加工済みデータがありません。", "Nothing has been staged to verify.")]
    if record["policy_sha256"] != policy.sha256:
        return [
            Reason(
                "policy_changed",
                "加工後にポリシーが変更されました。加工からやり直してください。",
                "The policy changed after staging; stage again.",
            )
        ]
    failures = [Reason(**failure) for failure in record["failures"]]
    if not failures and not record["files"]:
        failures = [Reason("nothing_staged", "加工済みデータが空です。", "The staging holds no files.")]
    return failures


def _extract_figures(result: VerificationResult, record: dict[str, Any], canaries: list[str]) -> dict[str, Any]:
    cities = record["cities"]
    return {
        "records": result.records,
        "classes": result.classes,
        "k": result.k,
        "l_distinct": result.l_distinct,
        "l_entropy": {key: round(value, 3) for key, value in result.l_entropy.items()},
        "risk": result.risk,
        "leaks": result.leaks,
        "canaries_searched": len(canaries),
        "records_in": sum(int(city["records_in"]) for city in cities.values()),
        "records_suppressed": sum(int(city["records_suppressed"] or 0) for city in cities.values()),
        "levels": {code: city["levels"] for code, city in cities.items()},
        "loss": {code: city["loss"] for code, city in cities.items()},
    }


def _finish(
    private_root: Path,
    policy: Policy,
    kind: str,
    reasons: list[Reason],
    files: dict[str, str],
    figures: dict[str, Any],
) -> dict[str, Any]:
    verdict = {
        "kind": kind,
        "policy": policy.name,
        "policy_sha256": policy.sha256,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "passed": not reasons,
        "reasons": [reason.as_dict() for reason in reasons],
        "files": files,
        **figures,
    }
    if staging_folder(private_root, policy.name).is_dir():
        write_verdict(private_root, policy.name, kind, verdict)
    return verdict
