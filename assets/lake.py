"""Lake assets: one per standard dataset, partitioned by member city.

Each partition takes the city's new uploads of that dataset through intake and Great Expectations and writes
the city's Parquet partition. The blocking asset check ``valid_rows`` blocks only what is truly wrong: a city
whose newest usable upload is missing from the lake. A refused upload (rejected, unreadable) is a warning: its
rows never reach the lake, the city's previous good data stays, the city is told in its report, and neither
its run nor any other city's releases fail for it.
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.partitions import member_cities
from assets.resources import KouikiHome
from expectations.registry import default_registry
from kouiki import catalog
from kouiki.catalog import UploadStatus
from kouiki.model import Dataset
from kouiki.settings import Paths

if TYPE_CHECKING:  # warehouse.load brings Great Expectations (seconds): imported by the asset body, not at load
    from warehouse.load import LoadOutcome

PENDING = (UploadStatus.LANDED,)
USABLE = ("accept", "quarantine")   # decisions whose rows are written to the lake

def build_lake_asset(dataset: Dataset) -> AssetsDefinition:
    key = AssetKey(["lake", dataset.id])

    @asset(
        key=key,
        partitions_def=member_cities,
        # many cities in one run: GE validates their uploads in batches instead of once per city
        backfill_policy=BackfillPolicy.single_run(),
        deps=[AssetKey(["intake", "uploads"])],
        group_name="lake",
        description=f"{dataset.name_ja} / {dataset.name_en}: 市ごとの検証済みデータ / validated rows per city",
        kinds={"parquet", "polars"},
        check_specs=[AssetCheckSpec("valid_rows", asset=key, blocking=True,
                                    description="受理したアップロードがレイクにある（受付不可は警告）/ accepted "
                                                "uploads are in the lake (refused ones are a warning)")],
    )
    def _lake(context: AssetExecutionContext, kouiki: KouikiHome) -> Iterator[object]:
        paths = kouiki.paths()
        cities = list(context.partition_keys)
        pending = pending_uploads(paths, dataset.id, cities)
        if pending:   # bytes changed since landing are never read (recovery.start)
            from recovery.start import refuse_changed_uploads

            for line in refuse_changed_uploads(paths, pending):
                context.log.error(line)
            pending = pending_uploads(paths, dataset.id, cities)
        outcomes: list[LoadOutcome] = []
        if pending:   # a city's run has a step per dataset: one with nothing waiting stays cheap (no GE import)
            from warehouse.load import load_uploads

            rights = {m.code: m.submits_for for m in kouiki.members() if m.submits_for}
            outcomes = load_uploads(paths, kouiki.registry(), pending, rights)
        # one summary line, not one per upload: every log line is an event in Dagster's storage
        decisions: dict[str, int] = {}
        for o in outcomes:
            decisions[o.decision] = decisions.get(o.decision, 0) + 1
        context.log.info(f"{len(outcomes)} upload(s) of {len(cities)} city(ies): {decisions}")
        yield MaterializeResult(metadata=_metadata(outcomes, len(cities)))
        yield _check(key, outcomes, missing_partitions(paths, dataset.id, outcomes))

    return _lake


def pending_uploads(paths: Paths, dataset_id: str, cities: list[str]) -> list[catalog.UploadRow]:
    """Uploads of these cities not yet loaded; plus, for a city whose lake partition is gone (e.g. cleaned),
    its newest accepted upload, so the partition is rebuilt."""
    from kouiki import lake  # polars: when a step runs, not when the definitions load

    ups = catalog.list_uploads(paths.catalog_url, dataset_id=dataset_id, city_codes=cities)
    pending = [u for u in ups if u.status in PENDING]
    waiting = {u.city_code for u in pending}
    newest_good: dict[str, catalog.UploadRow] = {}
    for u in ups:
        if u.status in (UploadStatus.ACCEPTED, UploadStatus.QUARANTINED):
            newest_good[u.city_code] = u
    for city, upload in newest_good.items():
        if city not in waiting and not lake.partition_exists(paths.lake, "staged", dataset_id, city):
            pending.append(upload)
    return pending


def _metadata(outcomes: list["LoadOutcome"], cities: int) -> dict[str, Any]:
    if not outcomes:
        return {"cities": cities, "new_uploads": 0}
    last = outcomes[-1]
    return {
        "cities": cities,
        "new_uploads": len(outcomes),
        "decisions": MetadataValue.json({o.upload_id: o.decision for o in outcomes[:200]}),
        "upload_id": last.upload_id,
        "decision": last.decision,
        "rows": last.rows,
        "rows_accepted": last.rows_accepted,
        "rows_quarantined": last.rows_quarantined,
        "report": str(last.report_html or ""),
    }

def missing_partitions(paths: Paths, dataset_id: str, outcomes: list["LoadOutcome"]) -> list[str]:
    """Cities whose newest upload was accepted (wholly or partly) but have no lake partition of the dataset."""
    from kouiki import lake

    usable = {o.upload_id.split("-", 1)[0] for o in outcomes if o.decision in USABLE}
    return sorted(c for c in usable if not lake.partition_exists(paths.lake, "staged", dataset_id, c))


def _check(key: AssetKey, outcomes: list["LoadOutcome"], missing: list[str]) -> AssetCheckResult:
    """ERROR (blocking) only when an accepted upload did not reach the lake; a refused upload (rejected or
    unreadable) is a WARN: that city's new rows did not reach the lake, its previous good data stays
    published, and every other city's rows were written."""
    if not outcomes:
        return AssetCheckResult(asset_key=key, check_name="valid_rows", passed=True,
                                metadata={"note": "no new upload"})
    newest: dict[str, LoadOutcome] = {}
    for o in outcomes:
        newest[o.upload_id.split("-", 1)[0]] = o
    refused = {city: o for city, o in newest.items() if o.decision not in USABLE}
    rows = sum(o.rows for o in newest.values())
    accepted = sum(o.rows_accepted for o in newest.values())
    codes: dict[str, int] = {}
    for o in newest.values():
        for code, n in o.failures_by_code.items():
            codes[code] = codes.get(code, 0) + n
    return AssetCheckResult(
        asset_key=key,
        check_name="valid_rows",
        passed=not refused and not missing,
        severity=AssetCheckSeverity.ERROR if missing else AssetCheckSeverity.WARN,
        metadata={
            "missing_from_lake": MetadataValue.json(missing),
            "refused_cities": MetadataValue.json({c: o.decision for c, o in refused.items()}),
            "pass_rate": round(accepted / rows, 4) if rows else 0.0,
            "failures_by_code": MetadataValue.json(codes),
            "sample_failures": MetadataValue.json([s for o in newest.values() for s in o.sample][:20]),
            "city_names": MetadataValue.json(_city_names([*newest, *missing])),
        },
    )


def _city_names(codes: list[str]) -> dict[str, str]:
    """``{"132195": "狛江市"}`` for the codes in a check's metadata (partitions are keyed by bare codes)."""
    from kouiki.localgov import lookup

    names = {}
    for code in sorted(set(codes)):
        known = lookup(code)
        names[code] = (known.city or known.prefecture) if known else ""
    return names


lake_assets = [build_lake_asset(ds) for ds in default_registry().datasets.values()]


def definitions() -> Definitions:
    """The lake stage: one city-partitioned asset per dataset of the schema registry, with its blocking check."""
    return Definitions(assets=lake_assets)
