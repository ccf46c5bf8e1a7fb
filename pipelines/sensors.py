"""Sensors: new member cities become partitions; new files in a city's inbox start that city's run."""

import hashlib

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
    """Run a city's ingest when a new file appears in its inbox; the run key is the file's content hash,
    so the same file never runs twice."""
    paths = kouiki.paths()
    existing = set(context.instance.get_dynamic_partitions(MEMBER_CITIES))
    requests = []
    for member in kouiki.members():
        if member.code not in existing:
            continue
        for folder in inbox_folders(paths, member):
            for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                digest = hashlib.sha256(file.read_bytes()).hexdigest()
                requests.append(RunRequest(run_key=f"{member.code}-{digest[:16]}", partition_key=member.code))
    if not requests:
        return SkipReason("no files in any member inbox")
    return SensorResult(run_requests=requests)
