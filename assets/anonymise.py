"""行政機関等匿名加工情報: a member's personal file → a verified anonymised extract and count table → public releases.

For every policy in ``config/anonymisation/*.yaml`` (group ``anonymise``, job ``anonymise_personal``):

    anonymise/personal_files        the members' personal files land in $KOUIKI_HOME/private/personal/<city>/
                                    (a synthetic demo file is written to the private inbox first where configured)
    anonymise/<policy>/staged       the extract and count tables, staged privately (+ 加工方法等情報)
        check extract_verified      blocking: anonymise.verify on the staged bytes (k, l, identifiers, canaries, risk)
        check counts_verified       not blocking (a held table is skipped at publication, the extract is not):
                                    the interval attack under three attackers (anonymise.verify_counts),
                                    with every earlier release of the table; totals equal the extract's records
    anonymise/<policy>/releases     only after both checks passed: the releases <policy>_anonymised and
                                    <policy>_counts (publish.release layout), and a line in the extract log

Unpartitioned, over the members that declare ``personal_datasets``: a release is region-wide (one numbered
release with each city's part), like publish/releases, and a city's part is published only inside it.
Dagster metadata never holds a personal value: counts, levels, hashes and reasons only.
"""


import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Definitions,
    ExecuteInProcessResult,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.resources import KouikiHome
from kouiki.members import Member, anonymisation_policies
from kouiki.model import Dataset
from kouiki.settings import Paths

if TYPE_CHECKING:
    from anonymise.policy import Policy
    from anonymise.staging import CitySource
    from publish.release import ReleaseResult

# The anonymise package (numpy, scipy, the lattice search, pyarrow.compute) is imported inside the functions
# that run it: every run, the daemon and the UI load these definitions, and only the anonymisation job needs it.

GROUP = "anonymise"
PERSONAL_FILES = AssetKey([GROUP, "personal_files"])
EXTRACT_LOG = "extract_log.jsonl"
SYNTHETIC_TITLE = ("【合成デモデータ・実在の人物ではありません】", " [synthetic demo data: no real person]")


def policy_names(config_dir: Path | None = None) -> list[str]:
    """Every policy file; the policies themselves are read when the assets run (a broken one fails its run only)."""
    folder = config_dir or anonymisation_policies()
    return sorted(path.stem for path in folder.glob("*.yaml") if not path.name.startswith("_"))  # _platform.yaml


def members_with(members: list[Member], policy_name: str) -> list[Member]:
    return [member for member in members if policy_name in member.personal_datasets]


@asset(
    key=PERSONAL_FILES,
    group_name=GROUP,
    description="個人情報ファイルの受付（非公開領域, sha256） / personal files land in the private store",
    kinds={"file"},
)
def personal_files(context: AssetExecutionContext, kouiki: KouikiHome) -> MaterializeResult:
    from anonymise.personal import (
        SYNTHETIC_NOTICE,
        current_personal_file,
        land_personal_files,
        write_synthetic_demo_file,
    )

    private = kouiki.paths().private
    landed: dict[str, dict[str, Any]] = {}
    for member in kouiki.members():
        for name in member.personal_datasets:
            if member.synthetic_personal_rows:
                demo = write_synthetic_demo_file(private, member.code, name, member.synthetic_personal_rows)
                if demo is not None:
                    rows = member.synthetic_personal_rows
                    context.log.info(f"{member.code} {name}: {SYNTHETIC_NOTICE} ({rows} rows)")
            files = land_personal_files(private, member.code, name)
            current = current_personal_file(private, member.code, name)
            landed[f"{member.code}/{name}"] = {
                "files": len(files),
                "current_sha256_prefix": current.sha256[:12] if current else None,
                "synthetic_demo_data": current.synthetic if current else None,
            }
    return MaterializeResult(metadata={"personal_files": MetadataValue.json(landed)})


def build_anonymise_assets(policy_name: str) -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    """The staged, checked and published assets of one policy."""
    staged_key = AssetKey([GROUP, policy_name, "staged"])

    @asset(
        key=staged_key,
        deps=[PERSONAL_FILES],
        group_name=GROUP,
        description=f"{policy_name}: 匿名加工と集計（非公開の仮置き） / extract and counts, staged privately",
        kinds={"polars", "parquet"},
    )
    def _staged(context: AssetExecutionContext, kouiki: KouikiHome) -> MaterializeResult:
        paths = kouiki.paths()
        from anonymise.policy import load_policy
        from anonymise.staging import stage

        policy = load_policy(policy_name, anonymisation_policies())
        earlier_releases_here(paths)
        sources = _city_sources(context, paths, kouiki.members(), policy)
        result = stage(policy, sources, paths.private, paths.releases)
        for reason in result.failures:
            context.log.error(f"{reason.ja} / {reason.en}")
        return MaterializeResult(metadata=_stage_metadata(result.staged, result.cities, result.failures))

    @asset_check(
        asset=staged_key,
        name="extract_verified",
        blocking=True,
        description="独立検証: k・l・直接識別子・削除値（カナリア）・再識別リスク / independent check of staged bytes",
    )
    def _extract_verified(context: AssetCheckExecutionContext, kouiki: KouikiHome) -> AssetCheckResult:
        from anonymise.release_check import verify_staged_extract
        from anonymise.staging import extract_dataset_id

        paths = kouiki.paths()
        from anonymise.policy import load_policy

        policy = load_policy(policy_name, anonymisation_policies())
        earlier_releases_here(paths)
        verdict = verify_staged_extract(policy, paths.private, paths.releases)
        return _check_result(context, paths, policy, extract_dataset_id(policy), verdict, _extract_metadata(verdict))

    @asset_check(
        asset=staged_key,
        name="counts_verified",
        # not blocking: a held count table must not hold the verified extract; publish_verified publishes the
        # counts only when this verdict passed (they are counted on released records, so the extract alone
        # tells nothing the earlier extracts and their differencing check did not)
        blocking=False,
        description="集計表の秘匿: 3種の攻撃者による区間攻撃・過去の公表との差分 / interval attack (3 attackers), "
        "differences with earlier releases",
    )
    def _counts_verified(context: AssetCheckExecutionContext, kouiki: KouikiHome) -> AssetCheckResult:
        from anonymise.release_check import verify_staged_counts
        from anonymise.staging import counts_dataset_ids

        paths = kouiki.paths()
        from anonymise.policy import load_policy

        policy = load_policy(policy_name, anonymisation_policies())
        earlier_releases_here(paths)
        verdict = verify_staged_counts(policy, paths.private, paths.releases)
        metadata = {"tables": MetadataValue.json(verdict.get("tables", {})), **_counts_metadata(verdict)}
        return _check_result(context, paths, policy, ",".join(counts_dataset_ids(policy)), verdict, metadata)

    @asset(
        key=AssetKey([GROUP, policy_name, "releases"]),
        deps=[staged_key],
        group_name=GROUP,
        description=f"{policy_name}: 検証済みの匿名加工情報と集計表を公開 / publish the verified extract and counts",
        kinds={"csv", "parquet"},
    )
    def _releases(context: AssetExecutionContext, kouiki: KouikiHome) -> MaterializeResult:
        paths = kouiki.paths()
        from anonymise.policy import load_policy

        policy = load_policy(policy_name, anonymisation_policies())
        published = publish_verified(context, paths, policy)
        return MaterializeResult(metadata={"releases": MetadataValue.json(published)})

    return [_staged, _releases], [_extract_verified, _counts_verified]


def earlier_releases_here(paths: Paths) -> None:
    """With ``KOUIKI_LAKE_URL``, bring the releases this home lacks from the URL before staging or checking: the
    differencing and k/l checks compare with *every* earlier release, and a worker on another machine (a daemon
    or Celery step, docs/scale-out.md) has none of them in its home. A release at the URL that cannot be taken
    (changed, unreadable) stops the step, so no extract is judged against a partial history."""
    if not paths.remote_releases:
        return
    from publish.remote import pull_releases

    pulled = pull_releases(paths.remote_releases, paths.releases)
    if pulled.problems:
        raise RuntimeError("前回までの公表を取得できません / cannot fetch the earlier releases: "
                           + "; ".join(pulled.problems))


def _city_sources(
    context: AssetExecutionContext, paths: Paths, members: list[Member], policy: "Policy"
) -> list["CitySource"]:
    from anonymise.personal import current_personal_file, read_personal_records
    from anonymise.staging import CitySource

    sources = []
    for member in members_with(members, policy.name):
        file = current_personal_file(paths.private, member.code, policy.name)
        if file is None:
            context.log.warning(f"{member.code} {member.name}: 個人情報ファイルが未着です / no personal file yet")
            continue
        sources.append(CitySource(member.code, member.name, file, read_personal_records(file, policy)))
    return sources


def _stage_metadata(staged: bool, cities: dict[str, dict[str, Any]], failures: list[Any]) -> dict[str, Any]:
    figures = {
        code: {key: city[key] for key in ("records_in", "records_released", "records_suppressed", "levels", "loss")}
        for code, city in cities.items()
    }
    return {
        "staged": staged,
        "cities": MetadataValue.json(figures),
        "failures": MetadataValue.json([reason.as_dict() for reason in failures]),
    }


def _extract_metadata(verdict: dict[str, Any]) -> dict[str, Any]:
    risk = verdict.get("risk") or {}
    l_values = list((verdict.get("l_distinct") or {}).values())
    return {
        "k": verdict.get("k"),
        "l": min(l_values) if l_values else None,
        "risk_max": risk.get("max"),
        "risk_average": risk.get("average"),
        "records_released": verdict.get("records"),
        "records_suppressed": verdict.get("records_suppressed"),
        "levels": MetadataValue.json(verdict.get("levels") or {}),
        "loss": MetadataValue.json(verdict.get("loss") or {}),
        "leaks": MetadataValue.json(verdict.get("leaks") or []),
        "byte_scan": MetadataValue.json(verdict.get("scan") or {}),
        "differencing": MetadataValue.json(verdict.get("differencing") or {}),
    }


def _counts_metadata(verdict: dict[str, Any]) -> dict[str, Any]:
    """The audit's headline figures over all count tables (the per-table detail is under `tables`)."""
    tables = list((verdict.get("tables") or {}).values())
    if not tables:
        return {}
    pinned = {model: sum(t.get("pinned", {}).get(model, 0) for t in tables) for model in ("a", "b", "c")}
    below = {model: sum(t.get("below_protection", {}).get(model, 0) for t in tables) for model in ("a", "b", "c")}
    widths = [t["min_primary_interval_width"] for t in tables if t.get("min_primary_interval_width") is not None]
    return {
        "cells": sum(t.get("cells", 0) for t in tables),
        "hidden_cells": sum(t.get("hidden_cells", 0) for t in tables),
        "pinned": MetadataValue.json(pinned),
        "below_protection": MetadataValue.json(below),
        "min_primary_interval_width": min(widths) if widths else None,
        "audit_seconds": sum(t.get("seconds", 0.0) for t in tables),
    }


def _check_result(
    context: AssetCheckExecutionContext,
    paths: Paths,
    policy: "Policy",
    dataset_id: str,
    verdict: dict[str, Any],
    metadata: dict[str, Any],
) -> AssetCheckResult:
    from anonymise.documents import append_extract_log, blocked_log_record

    reasons = verdict["reasons"]
    if not verdict["passed"]:
        for reason in reasons:
            context.log.error(f"{dataset_id}: {reason['ja']} / {reason['en']}")
        record = blocked_log_record(_requester(context.run.run_id), policy, dataset_id, reasons)
        append_extract_log(paths.private / EXTRACT_LOG, record)
    return AssetCheckResult(
        passed=bool(verdict["passed"]),
        severity=AssetCheckSeverity.ERROR,
        metadata={
            **metadata,
            "reasons": MetadataValue.json(reasons),
            "reason_ja": " / ".join(reason["ja"] for reason in reasons),
            "reason_en": " / ".join(reason["en"] for reason in reasons),
            "files_verified": MetadataValue.json(verdict.get("files", {})),
        },
    )


def publish_verified(context: AssetExecutionContext, paths: Paths, policy: "Policy") -> dict[str, Any]:
    """Publish the staged extract and count tables, refusing anything not passed by both verdicts as it is now."""
    from anonymise.staging import (
        COUNTS,
        EXTRACT,
        counts_dataset_ids,
        extract_dataset_id,
        read_stage_record,
        staging_folder,
    )

    record = read_stage_record(paths.private, policy.name)
    if record is None or not record["files"]:
        context.log.info(f"{policy.name}: nothing staged, nothing published")
        return {}
    folder = staging_folder(paths.private, policy.name)
    verdicts = {EXTRACT: _verdict(paths.private, policy, EXTRACT)}
    synthetic = any(city["synthetic_demo_data"] for city in record["cities"].values())
    targets = [(extract_dataset_id(policy), EXTRACT, -1)]
    try:
        verdicts[COUNTS] = _verdict(paths.private, policy, COUNTS)
        targets += [(dataset_id, COUNTS, index) for index, dataset_id in enumerate(counts_dataset_ids(policy))]
    except Failure as held:   # the count tables wait (their reasons are in the check and the log); latest stays
        context.log.warning(f"{policy.name}: 集計表は公開しません / count tables held: {held.description}")
    published = {}
    for dataset_id, kind, table_index in targets:
        dataset = _dataset(policy, dataset_id, kind, table_index, synthetic)
        scan = _release_scan(context, paths, policy, dataset_id) if kind == EXTRACT else None
        result = _publish_table(paths, folder / f"{dataset_id}.parquet", dataset, _licence(policy), scan)
        _same_bytes(folder, dataset_id, result, verdicts[kind])
        published[dataset_id] = {"release": result.number, "rows": result.rows, "new": result.published}
        context.log.info(f"{dataset_id}: release {result.number} ({'new' if result.published else 'unchanged'})")
        if result.published:
            audit = (verdicts[kind].get("tables") or {}).get(dataset_id)
            _log_extract(context, paths, policy, record, result, dataset_id, audit)
    return published


def _verdict(private_root: Path, policy: "Policy", kind: str) -> dict[str, Any]:
    """The verdict of `kind`, or Failure unless it passed this policy text and the staged files are as verified."""
    from anonymise.staging import staged_files_unchanged, staging_folder, verdict_path

    path = verdict_path(private_root, policy.name, kind)
    verdict = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if verdict is None or not verdict["passed"] or verdict["policy_sha256"] != policy.sha256:
        raise Failure(
            description=f"{policy.name}: 検証に合格していないため公開しません / not verified ({kind}), not published",
        )
    changed = staged_files_unchanged(staging_folder(private_root, policy.name), verdict["files"])
    if changed:
        raise Failure(
            description=f"{policy.name}: 検証後に変更されたファイルがあります / staged files changed after "
            f"verification: {', '.join(changed)}"
        )
    return dict(verdict)


def _release_scan(
    context: AssetExecutionContext, paths: Paths, policy: "Policy", dataset_id: str
) -> Callable[[Path], None]:
    """The byte scan of every file of the extract's release, run on the complete release folder before it becomes
    a release: a hit stops the publication (the previous release stays latest) and is logged."""

    from anonymise.byte_scan import hits_reason
    from anonymise.documents import append_extract_log, blocked_log_record
    from anonymise.release_check import scan_release_folder

    def inspect(folder: Path) -> None:
        hits = scan_release_folder(policy, paths.private, folder)
        if hits:
            reason = hits_reason(hits).as_dict()
            record = blocked_log_record(_requester(context.run.run_id), policy, dataset_id, [reason])
            append_extract_log(paths.private / EXTRACT_LOG, record)
            raise Failure(description=f"{dataset_id}: {reason['ja']} / {reason['en']}")

    return inspect


def _publish_table(
    paths: Paths, parquet: Path, dataset: Dataset, licence: str, inspect: Callable[[Path], None] | None = None
) -> "ReleaseResult":
    """publish_dataset over the staged Parquet in a private in-memory DuckDB; `_city_code` (kept in the staging)
    gives each city's part, and `_upload_id` is empty: nothing published can point back at a personal file.
    The releases are personal datasets: changes.json lists totals only."""
    import duckdb

    from kouiki.sql import literal
    from publish.release import publish_dataset

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        source = literal(str(parquet))
        con.execute(
            f"CREATE TABLE release AS SELECT *, CAST(NULL AS VARCHAR) AS _upload_id FROM read_parquet({source})"
        )
        return publish_dataset(con, dataset, "release", paths.releases, paths.catalog_url, licence=licence,
                               personal=True, inspect=inspect, remote_root=paths.remote_releases)
    finally:
        con.close()


def _same_bytes(folder: Path, dataset_id: str, result: "ReleaseResult", verdict: dict[str, Any]) -> None:
    """The published CSV must be the verified CSV, byte for byte (both come from the same staged Parquet)."""
    meta = json.loads((result.path / "metadata.json").read_text(encoding="utf-8"))
    published = {entry["path"]: entry["sha256"] for entry in meta["files"]}
    verified = verdict["files"]
    pairs = [(f"{dataset_id}.csv", f"{dataset_id}.csv")]
    pairs += [
        (f"cities/{Path(name).stem}_{dataset_id}.csv", name) for name in verified if name.startswith("cities/")
    ]
    differing = [public for public, staged in pairs if public in published and published[public] != verified[staged]]
    if result.published and differing:
        raise Failure(description=f"{dataset_id}: 公開ファイルが検証済みファイルと異なります / published bytes differ "
                      f"from the verified ones: {differing}")


def _dataset(policy: "Policy", dataset_id: str, kind: str, table_index: int, synthetic: bool) -> Dataset:
    from anonymise.staging import EXTRACT

    publication = dict(policy.raw.get("publication") or {})
    model = policy.model
    if kind == EXTRACT:
        ja = policy.title
        en = str(publication.get("title_en", f"{policy.name} (anonymised)"))
        en += f" (k={model.k}" + (f", l={model.l}" if model.l else "") + ")"
    else:
        table = policy.aggregate_tables[table_index]
        ja = str(publication.get("counts_title", table.name))
        en = str(publication.get("counts_title_en", f"{policy.name} counts"))
        if len(policy.aggregate_tables) > 1:
            ja, en = f"{ja} {table.name}", f"{en} ({table.name})"
    if synthetic:
        ja, en = ja + SYNTHETIC_TITLE[0], en + SYNTHETIC_TITLE[1]
    return Dataset(id=dataset_id, name_ja=ja, name_en=en, version=f"policy {policy.name} {policy.sha256[:12]}",
                   variants=())


def _licence(policy: "Policy") -> str:
    return str((policy.raw.get("publication") or {}).get("licence", "CC-BY-4.0"))


def _log_extract(
    context: AssetExecutionContext,
    paths: Paths,
    policy: "Policy",
    record: dict[str, Any],
    result: "ReleaseResult",
    dataset_id: str,
    audit: dict[str, Any] | None = None,
) -> None:
    from anonymise.documents import append_extract_log, extract_log_record

    entry = extract_log_record(
        _requester(context.run.run_id), policy, result.path / f"{dataset_id}.csv", result.rows, True,
        purpose=policy.title,
    )
    entry |= {
        "dataset_id": dataset_id,
        "release_number": result.number,
        "levels": {code: city["levels"] for code, city in record["cities"].items()},
        "release_path": str(result.path.relative_to(paths.home)),
        "sources": [
            {"city_code": code, "sha256": city["source_sha256"], "synthetic_demo_data": city["synthetic_demo_data"]}
            for code, city in record["cities"].items()
        ],
        "processing_information": {
            code: str(Path(city["processing_information"]).relative_to(paths.home))
            for code, city in record["cities"].items()
        },
    }
    if audit is not None:  # a count table: the audit's figures (no cell values)
        entry["counts_audit"] = {key: value for key, value in audit.items() if key != "examples"}
    append_extract_log(paths.private / EXTRACT_LOG, entry)


def _requester(run_id: str) -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        user = "unknown"
    return f"{user} (dagster run {run_id})"


@dataclass
class AnonymisationRun:
    """What `kouiki run` prints about the anonymisation job."""

    ok: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def summarise_run(result: ExecuteInProcessResult) -> AnonymisationRun:
    """Checks (with their reasons), releases and step errors of one run of the anonymisation job."""
    checks = []
    for evaluation in result.get_asset_check_evaluations():
        metadata = evaluation.metadata
        checks.append({
            "asset": evaluation.asset_key.to_user_string(),
            "check": evaluation.check_name,
            "passed": evaluation.passed,
            "k": getattr(metadata.get("k"), "value", None),
            "l": getattr(metadata.get("l"), "value", None),
            "reasons": getattr(metadata.get("reasons"), "value", None) or [],
        })
    releases: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.path[-1] == "releases":
            value = getattr(materialization.metadata.get("releases"), "value", None)
            releases.update(value if isinstance(value, dict) else {})
    errors = [
        f"{event.step_key}: {event.message}"
        for event in result.all_events
        if event.is_step_failure and not _is_check_failure(event)  # a failed check is reported with its reasons
    ]
    return AnonymisationRun(result.success, checks, releases, errors)


def _is_check_failure(event: Any) -> bool:
    error = event.step_failure_data.error
    return error is not None and error.cls_name == "DagsterAssetCheckFailedError"


def run_anonymisation(job: Any, instance: Any, run_config: dict[str, Any]) -> AnonymisationRun:
    """Run the anonymisation job (after the region's public releases) and summarise it."""
    return summarise_run(job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config))


def _build_all() -> tuple[list[AssetsDefinition], list[AssetChecksDefinition]]:
    built = [build_anonymise_assets(name) for name in policy_names()]
    return [a for assets, _ in built for a in assets], [c for _, checks in built for c in checks]


# Module-level lists: load_assets_from_modules / load_asset_checks_from_modules find them (personal_files too).
policy_assets, policy_checks = _build_all()


def definitions() -> Definitions:
    """The anonymise stage: the personal files (office only) and, per policy, the staged extract with its
    independent checks and the release made only when they pass."""
    return Definitions(assets=[personal_files, *policy_assets], asset_checks=policy_checks)
