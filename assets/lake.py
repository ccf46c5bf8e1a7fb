"""Lake assets: one per standard dataset, partitioned by member city.

Each partition takes the city's new uploads of that dataset through intake and Great Expectations and writes
the city's Parquet partition. The blocking asset check ``valid_rows`` fails when the city's newest upload was
rejected by its dataset's policy: that city's new rows never reach the lake (its previous good data stays),
while the other cities are unaffected.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.partitions import member_cities
from expectations.model import Dataset
from expectations.registry import default_registry
from kouiki import catalog
from pipelines.resources import KouikiHome
from warehouse import lake
from warehouse.load import LoadOutcome, load_upload

PENDING = ("landed",)

def build_lake_asset(dataset: Dataset) -> AssetsDefinition:
    key = AssetKey(["lake", dataset.id])

    @asset(
        key=key,
        partitions_def=member_cities,
        deps=[AssetKey(["intake", "uploads"])],
        group_name="lake",
        description=f"{dataset.name_ja} / {dataset.name_en}: 市ごとの検証済みデータ / validated rows per city",
        kinds={"parquet", "polars"},
        check_specs=[AssetCheckSpec("valid_rows", asset=key, blocking=True,
                                    description="最新のアップロードが受理された / newest upload accepted by policy")],
    )
    def _lake(context: AssetExecutionContext, kouiki: KouikiHome) -> Iterator[object]:
        paths = kouiki.paths()
        registry = kouiki.registry()
        city = context.partition_key
        ups = catalog.list_uploads(paths.catalog_url, city_code=city, dataset_id=dataset.id)
        pending = [u for u in ups if u.status in PENDING]
        if not pending and not lake.partition_file(paths.lake, "staged", dataset.id, city).exists():
            # the lake lost its partition (e.g. cleaned): rebuild it from the newest accepted upload
            pending = [u for u in ups if u.status in ("accepted", "quarantined")][-1:]
        outcomes = [load_upload(paths, registry, u) for u in pending]
        for o in outcomes:
            context.log.info(f"{o.upload_id}: {o.decision}, {o.rows_accepted}/{o.rows} rows accepted")
        yield MaterializeResult(metadata=_metadata(outcomes))
        yield _check(key, outcomes)

    return _lake

def _metadata(outcomes: list[LoadOutcome]) -> dict[str, Any]:
    if not outcomes:
        return {"new_uploads": 0}
    last = outcomes[-1]
    return {
        "new_uploads": len(outcomes),
        "upload_id": last.upload_id,
        "decision": last.decision,
        "rows": last.rows,
        "rows_accepted": last.rows_accepted,
        "rows_quarantined": last.rows_quarantined,
        "report": str(last.report_html or ""),
    }

def _check(key: AssetKey, outcomes: list[LoadOutcome]) -> AssetCheckResult:
    if not outcomes:
        return AssetCheckResult(asset_key=key, check_name="valid_rows", passed=True,
                                metadata={"note": "no new upload"})
    last = outcomes[-1]
    pass_rate = last.rows_accepted / last.rows if last.rows else 0.0
    return AssetCheckResult(
        asset_key=key,
        check_name="valid_rows",
        passed=last.decision in ("accept", "quarantine"),
        metadata={
            "decision": last.decision,
            "pass_rate": round(pass_rate, 4),
            "failures_by_code": MetadataValue.json(last.failures_by_code),
            "sample_failures": MetadataValue.json(last.sample),
        },
    )

lake_assets = [build_lake_asset(ds) for ds in default_registry().datasets.values()]
