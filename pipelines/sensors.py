"""Sensors: new member cities become partitions; new files in a city's inbox, and uploads landed through the
upload service or ``kouiki upload``, start that city's run."""

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.partitions import MEMBER_CITIES, member_cities
from intake.inbox import inbox_folders
from intake.landing import sha256_of, upload_id_for
from kouiki import catalog
from pipelines.jobs import ingest_city
from pipelines.resources import KouikiHome


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED)
def member_partitions_sensor(context: SensorEvaluationContext, kouiki: KouikiHome) -> SensorResult | SkipReason:
    """Add a partition for every member city in the registry that has none yet."""
    codes = [m.code for m in kouiki.members()]
    existing = set(context.instance.get_dynamic_partitions(MEMBER_CITIES))
    new = [c for c in codes if c not in existing]
    if not new:
        return SkipReason("every member city already has a partition")
    return SensorResult(dynamic_partitions_requests=[member_cities.build_add_request(new)])


@sensor(job=ingest_city, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED)
def upload_sensor(context: SensorEvaluationContext, kouiki: KouikiHome) -> SensorResult | SkipReason:
    """Run a city's ingest when a new file appears in its inbox (run key: the upload id its bytes will have,
    ``<city>-<sha256[:16]>``), or when an upload landed through the API or the CLI waits in the catalog
    (status ``landed`` with a dataset; run key: the newest such upload id of the city, since one run
    processes all of them). A run key is used once, so the same file never runs twice."""
    paths = kouiki.paths()
    existing = set(context.instance.get_dynamic_partitions(MEMBER_CITIES))
    requests: dict[str, RunRequest] = {}
    for member in kouiki.members():
        if member.code not in existing:
            continue
        for folder in inbox_folders(paths, member):
            for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                key = upload_id_for(member.code, sha256_of(file))
                requests[key] = RunRequest(run_key=key, partition_key=member.code)
        waiting = [u for u in catalog.list_uploads(paths.catalog_url, city_code=member.code)
                   if u.status == "landed" and u.dataset_id is not None]
        if waiting and waiting[-1].upload_id not in requests:
            key = waiting[-1].upload_id
            requests[key] = RunRequest(run_key=key, partition_key=member.code)
    if not requests:
        return SkipReason("no files in any member inbox and no landed uploads waiting")
    return SensorResult(run_requests=list(requests.values()))
