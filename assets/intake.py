"""Intake asset: a city's files land in the immutable landing zone and are recognised as a dataset."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.partitions import member_cities
from assets.resources import KouikiHome
from kouiki import catalog


@asset(
    key=AssetKey(["intake", "uploads"]),
    partitions_def=member_cities,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="intake",
    description="受付: 市のファイルを改変不可の受付領域へ (sha256) / land raw uploads, content-addressed",
    kinds={"file"},
)
def uploads(context: AssetExecutionContext, kouiki: KouikiHome) -> MaterializeResult:
    from intake.inbox import pick_up  # polars, pyarrow, numpy: when the step runs, not at definitions load

    paths = kouiki.paths()
    registry = kouiki.registry()
    members = {m.code: m for m in kouiki.members()}
    new = 0
    for code in context.partition_keys:
        member = members.get(code)
        if member is None:
            context.log.warning(f"{code} has a partition but is not in the member registry: skipped")
            continue
        new += pick_up(paths, member, registry).new
    all_uploads = catalog.list_uploads(paths.catalog_url, city_codes=list(context.partition_keys))
    by_dataset: dict[str, int] = {}
    for up in all_uploads:
        key = up.dataset_id or up.status
        by_dataset[key] = by_dataset.get(key, 0) + 1
    context.log.info(f"{len(context.partition_keys)} city(ies): {new} new file(s), {len(all_uploads)} in total")
    return MaterializeResult(metadata={
        "cities": len(context.partition_keys),
        "new_uploads": new,
        "uploads_total": len(all_uploads),
        "uploads_by_dataset": MetadataValue.json(by_dataset),
        "unreadable": sum(1 for up in all_uploads if up.status == "unreadable"),
        # partitions are keyed by bare codes: the names beside them, for the office reading the UI
        "city_names": MetadataValue.json({c: members[c].name for c in context.partition_keys if c in members}),
    })


def definitions() -> Definitions:
    """The intake stage: one partitioned asset that lands every city's new files."""
    return Definitions(assets=[uploads])
