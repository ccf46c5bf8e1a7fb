"""Sensors: new member cities become partitions; new files in a city's inbox, and uploads landed through the
upload service or ``kouiki upload``, start that city's run. Both are on by default (the daemon of ``make ui``).

The upload sensor keeps a cursor: the inbox files it has seen (path → size, mtime, sha256, so an unchanged
file is never hashed again) and, per city, the uploads it last started a run for and how often. Each tick it
asks the catalog once and the run storage once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from sqlalchemy import or_, select

from assets.partitions import MEMBER_CITIES, member_cities
from assets.resources import KouikiHome
from kouiki import catalog
from kouiki.catalog import UploadStatus
from kouiki.members import Member
from kouiki.settings import Paths
from pipelines.automation import CITY_TAG, TRIGGER_TAG, load_settings
from pipelines.jobs import ingest_city

SETTINGS = load_settings()
WAITING = UploadStatus.LANDED   # an upload the pipeline has not processed yet
NOT_FINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


@sensor(minimum_interval_seconds=SETTINGS.members_interval_seconds, default_status=DefaultSensorStatus.RUNNING)
def member_partitions_sensor(context: SensorEvaluationContext, kouiki: KouikiHome) -> SensorResult | SkipReason:
    """Add a partition for every member city in the registry that has none yet."""
    codes = [m.code for m in kouiki.members()]
    existing = set(context.instance.get_dynamic_partitions(MEMBER_CITIES))
    new = [c for c in codes if c not in existing]
    if not new:
        return SkipReason("every member city already has a partition")
    return SensorResult(dynamic_partitions_requests=[member_cities.build_add_request(new)])


@dataclass
class UploadCursor:
    """What the upload sensor remembers between ticks (stored as JSON in the sensor's cursor)."""

    files: dict[str, tuple[int, int, str]] = field(default_factory=dict)   # path → (size, mtime_ns, sha256)
    started: dict[str, tuple[str, int]] = field(default_factory=dict)     # city → (uploads digest, attempts)
    # city → digest of what its refusals depend on (registry entry, schemas, mappings: service.revisit)
    inputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> UploadCursor:
        try:
            doc = json.loads(text) if text else {}
        except ValueError:
            doc = {}   # an unreadable cursor costs one re-hash, never a missed upload
        return cls(files={p: (int(v[0]), int(v[1]), str(v[2])) for p, v in doc.get("files", {}).items()},
                   started={c: (str(v[0]), int(v[1])) for c, v in doc.get("started", {}).items()},
                   inputs={c: str(v) for c, v in doc.get("inputs", {}).items()})

    def dump(self) -> str:
        return json.dumps({"files": self.files, "started": self.started, "inputs": self.inputs}, sort_keys=True)


@dataclass(frozen=True)
class CityWork:
    member: Member
    uploads: list[str]   # upload ids to process: inbox files not landed yet, and uploads still landed


@sensor(job=ingest_city, minimum_interval_seconds=SETTINGS.upload_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING)
def upload_sensor(context: SensorEvaluationContext, kouiki: KouikiHome) -> SensorResult | SkipReason:
    """Start ingest_city for each city with new inbox files or uploads waiting (``landed``) in the catalog,
    unless a run of that city is already queued or going (it will take them). A city whose run ended with
    its uploads still waiting (a run that failed, or failed to start) is started again with a new run key,
    up to ``upload_attempts`` times; the uploads stay ``landed`` in the catalog, never lost."""
    paths = kouiki.paths()
    cursor = UploadCursor.parse(context.cursor)
    members = kouiki.members()
    inbox = scan_inboxes(paths, members, cursor)
    revisit_refusals(context, kouiki, members, cursor)
    work = waiting_work(paths.catalog_url, members, inbox)
    busy = cities_in_progress(context.instance)
    existing = set(context.instance.get_dynamic_partitions(MEMBER_CITIES))
    requests, new_partitions, gave_up = [], [], []
    for city, todo in work.items():
        if city in busy:
            continue
        digest = hashlib.sha256(",".join(sorted(todo.uploads)).encode()).hexdigest()[:12]
        last_digest, attempts = cursor.started.get(city, ("", 0))
        attempt = attempts + 1 if digest == last_digest else 1
        if attempt > SETTINGS.upload_attempts:
            gave_up.append(city)
            continue
        if city not in existing:
            new_partitions.append(city)
        cursor.started[city] = (digest, attempt)
        requests.append(RunRequest(run_key=f"{city}-{digest}-{attempt}", partition_key=city,
                                   tags={TRIGGER_TAG: "upload", "kouiki/uploads": str(len(todo.uploads))}))
    for city in [c for c in cursor.started if c not in work]:
        del cursor.started[city]   # done: a later upload of the city starts from attempt 1
    context.update_cursor(cursor.dump())   # kept on a skipped tick too: unchanged files are never hashed again
    if gave_up:
        context.log.warning(f"uploads still waiting after {SETTINGS.upload_attempts} runs, not started again "
                            f"(see the runs of these cities; `kouiki rerun CODE`): {', '.join(gave_up)}")
    if not requests:
        return SkipReason(f"nothing new: {len(inbox)} inbox file(s) known, {len(work)} city(ies) waiting "
                          f"({len(busy & set(work))} with a run queued or going)")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[member_cities.build_add_request(new_partitions)] if new_partitions else [])


def revisit_refusals(context: SensorEvaluationContext, kouiki: KouikiHome, members: list[Member],
                     cursor: UploadCursor) -> None:
    """Decisions can be revisited: when a member's registry entry, the schemas or its accepted mappings change,
    its refused and unreadable uploads are evaluated again from the landed bytes (service.revisit); those no
    longer refused are ``landed`` again, so this tick starts the city's run for them."""
    from service.revisit import revisit_changed

    cursor.inputs, changed = revisit_changed(kouiki.paths(), kouiki.registry(), members, cursor.inputs)
    if changed:
        context.log.info("re-evaluated after a configuration change: "
                         + ", ".join(f"{r.upload_id} {r.before}→{r.after}" for r in changed))


@dataclass(frozen=True)
class InboxFile:
    city_code: str
    upload_id: str


def scan_inboxes(paths: Paths, members: list[Member], cursor: UploadCursor) -> list[InboxFile]:
    """Every file in the members' inbox folders with the upload id its bytes have; hashes only files that
    are new or changed (size or mtime) since the cursor saw them. Updates ``cursor.files``."""
    # intake brings polars, pyarrow and numpy: imported at the first tick, not when the definitions load
    from intake.inbox import inbox_folders
    from intake.landing import sha256_of, upload_id_for

    seen: dict[str, tuple[int, int, str]] = {}
    found = []
    for member in members:
        for folder in inbox_folders(paths, member):
            for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                stat = file.stat()
                known = cursor.files.get(str(file))
                sha = known[2] if known and known[:2] == (stat.st_size, stat.st_mtime_ns) else sha256_of(file)
                seen[str(file)] = (stat.st_size, stat.st_mtime_ns, sha)
                found.append(InboxFile(member.code, upload_id_for(member.code, sha)))
    cursor.files = seen
    return found


def waiting_work(catalog_url: str, members: list[Member], inbox: list[InboxFile]) -> dict[str, CityWork]:
    """Per member city, the uploads to process: inbox files the catalog does not know yet, and uploads still
    ``landed``. One catalog query."""
    ids = {f.upload_id for f in inbox}
    table = catalog.uploads
    query = select(table.c.upload_id, table.c.city_code, table.c.status).where(
        or_(table.c.status == WAITING, table.c.upload_id.in_(sorted(ids))))
    with catalog.begin(catalog_url) as conn:
        rows = conn.execute(query).all()
    known = {r.upload_id for r in rows}
    todo: dict[str, set[str]] = {}
    for f in inbox:
        if f.upload_id not in known:
            todo.setdefault(f.city_code, set()).add(f.upload_id)
    for r in rows:
        if r.status == WAITING:
            todo.setdefault(r.city_code, set()).add(r.upload_id)
    by_code = {m.code: m for m in members}
    return {code: CityWork(by_code[code], sorted(uploads)) for code, uploads in sorted(todo.items())
            if code in by_code}


def cities_in_progress(instance: DagsterInstance) -> set[str]:
    """Cities with a run queued, starting or going (any job: ingest_city or the lake automation)."""
    runs = instance.get_runs(RunsFilter(statuses=NOT_FINISHED))
    return {r.tags[CITY_TAG] for r in runs if CITY_TAG in r.tags}
