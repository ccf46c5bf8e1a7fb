"""Intake asset: a city's files land in the immutable landing zone and are recognised as a dataset."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.partitions import member_cities
from intake.inbox import pick_up
from kouiki import catalog
from kouiki.members import member_by_code
from pipelines.resources import KouikiHome


@asset(
    key=AssetKey(["intake", "uploads"]),
    partitions_def=member_cities,
    group_name="intake",
    description="受付: 市のファイルを改変不可の受付領域へ (sha256) / land raw uploads, content-addressed",
    kinds={"file"},
)
def uploads(context: AssetExecutionContext, kouiki: KouikiHome) -> MaterializeResult:
    paths = kouiki.paths()
    member = member_by_code(context.partition_key, kouiki.members())
    pickup = pick_up(paths, member, kouiki.registry())
    all_uploads = catalog.list_uploads(paths.catalog_url, city_code=member.code)
    by_dataset: dict[str, int] = {}
    for up in all_uploads:
        key = up.dataset_id or up.status
        by_dataset[key] = by_dataset.get(key, 0) + 1
    context.log.info(f"{member.name}: {pickup.new} new file(s), {len(all_uploads)} upload(s) in total")
    return MaterializeResult(metadata={
        "city": f"{member.code} {member.name}",
        "new_uploads": pickup.new,
        "uploads_total": len(all_uploads),
        "uploads_by_dataset": MetadataValue.json(by_dataset),
        "unreadable": sum(1 for up in all_uploads if up.status == "unreadable"),
    })
