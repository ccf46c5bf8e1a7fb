"""The main job as the office runs it from a terminal (``make run``): every member city's partition, then the
region-wide models and the releases, all recorded in Dagster's instance so the UI shows the same runs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import AssetKey, DagsterInstance

from assets.partitions import MEMBER_CITIES
from kouiki import catalog, lake
from kouiki.catalog import UploadStatus
from kouiki.members import Member, load_members
from kouiki.runlock import storage_init_lock
from kouiki.settings import Paths, Settings, get_paths
from pipelines.dagster_storage import ensure_sqlite_storage
from publish.release import latest_release

if TYPE_CHECKING:
    from assets.anonymise import AnonymisationRun

DAGSTER_YAML_MARKER = "# Written by kouiki"
# Run tags that make one run cover a range of partitions (assets with a single-run backfill policy).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

DAGSTER_YAML = """\
# Written by kouiki: Dagster's own storage is SQLite under the kouiki home (embedded default).
telemetry:
  enabled: false
"""


@dataclass
class CityOutcome:
    member: Member
    run_ok: bool
    uploads: list[catalog.UploadRow] = field(default_factory=list)


@dataclass
class MainOutcome:
    cities: list[CityOutcome]
    region_ok: bool
    releases: dict[str, dict[str, object]]
    paths: Paths
    anonymisation: AnonymisationRun | None = None


def dagster_instance(paths: Paths) -> DagsterInstance:
    """The Dagster instance under the kouiki home (created on first use)."""
    # DAGSTER_HOME is Dagster's own variable, not a kouiki setting: DagsterInstance.get() reads it, so it is set
    # here (unless the office set it) for this process and the run workers it starts.
    os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    postgres_url = Settings.from_env().dagster_pg_url
    with storage_init_lock(home):   # storage created / migrated by one process at a time
        write_dagster_yaml(home / "dagster.yaml", postgres_url)
        if postgres_url is None:    # SQLite: created atomically, so a crash never leaves it half made
            ensure_sqlite_storage(home)
        return DagsterInstance.get()


def dagster_yaml(postgres_url: str | None = None) -> str:
    """dagster.yaml: SQLite under DAGSTER_HOME, or run/event/schedule storage on PostgreSQL at ``postgres_url``."""
    base = DAGSTER_YAML + run_queue_section()
    if not postgres_url:
        return base
    # psycopg2 named explicitly: dagster-postgres under SQLAlchemy 2.1 would look for psycopg 3 otherwise.
    url = json.dumps(catalog.sqlalchemy_url(postgres_url))  # a JSON string is a valid YAML scalar
    storage = f"storage:\n  postgres:\n    postgres_url: {url}\n"
    return base.replace("SQLite under the kouiki home (embedded default)", "PostgreSQL") + storage


def run_queue_section() -> str:
    """The run queue, retries and pools of config/automation.yaml (pipelines/run_queue.py)."""
    from pipelines.automation import load_settings
    from pipelines.run_queue import run_queue_yaml

    return run_queue_yaml(load_settings())


def write_dagster_yaml(config: Path, postgres_url: str | None = None) -> None:
    """Write kouiki's dagster.yaml when missing or when kouiki wrote it for another storage; a file someone
    wrote by hand (no kouiki marker) is left alone. Owner-only: the PostgreSQL URL may carry a password."""
    wanted = dagster_yaml(postgres_url)
    if config.exists():
        current = config.read_text(encoding="utf-8")
        if current == wanted or not current.startswith(DAGSTER_YAML_MARKER):
            return
    staged = config.with_name(f".{config.name}.{os.getpid()}")  # renamed into place: readers never see half a file
    staged.write_text(wanted, encoding="utf-8")
    staged.chmod(0o600)
    staged.replace(config)


def sync_partitions(instance: DagsterInstance, members: list[Member]) -> list[str]:
    """Make sure every member city has its partition; returns the codes added."""

    existing = set(instance.get_dynamic_partitions(MEMBER_CITIES))
    new = [m.code for m in members if m.code not in existing]
    if new:
        instance.add_dynamic_partitions(MEMBER_CITIES, new)
    return new


def ingest_members(instance: DagsterInstance, members: list[Member], run_config: dict[str, Any]) -> bool:
    """Land and load every member city's files in two Dagster runs over the cities' partition range (one run
    per step, not one per city: Dagster's bookkeeping per run would dominate with hundreds of members):
    first ``intake/uploads``, then only the lake assets of datasets that have uploads waiting."""
    from pipelines.definitions import defs

    if not members:
        return True
    keys = instance.get_dynamic_partitions(MEMBER_CITIES)
    wanted = {m.code for m in members}
    positions = [i for i, k in enumerate(keys) if k in wanted]
    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[positions[0]], ASSET_PARTITION_RANGE_END_TAG: keys[positions[-1]]}
    everything = defs.resolve_implicit_global_asset_job_def()
    landed = everything.get_subset(asset_selection={AssetKey(["intake", "uploads"])}).execute_in_process(
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False)
    waiting = datasets_waiting(get_paths(), sorted(wanted))
    if not waiting:
        return landed.success
    lake_keys = {AssetKey(["lake", d]) for d in waiting}
    loaded = everything.get_subset(asset_selection=lake_keys).execute_in_process(
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False)
    return landed.success and loaded.success


def datasets_waiting(paths: Paths, cities: list[str]) -> list[str]:
    """Datasets with uploads to load for these cities (or a lake partition to rebuild)."""
    waiting = set()
    for up in catalog.list_uploads(paths.catalog_url, city_codes=cities):
        if up.dataset_id and (up.status == UploadStatus.LANDED or (
                up.status in (UploadStatus.ACCEPTED, UploadStatus.QUARANTINED)
                and not lake.partition_exists(paths.lake, "staged", up.dataset_id, up.city_code))):
            waiting.add(up.dataset_id)
    return sorted(waiting)


# the phases of run_main, in order, as its ``progress`` callback names them
RUN_PHASES = ("recover", "ingest", "publish", "anonymise", "done")


def run_main(paths: Paths | None = None, members: list[Member] | None = None,
             instance: DagsterInstance | None = None, log_level: str = "INFO",
             progress: Callable[[str], None] | None = None) -> MainOutcome:
    """Run everything once; ``progress`` (e.g. the CLI's progress bar) is told each phase of RUN_PHASES."""
    from assets.anonymise import run_anonymisation
    from pipelines.definitions import defs

    phase = progress or (lambda _name: None)
    paths = paths or get_paths()
    members = members if members is not None else load_members()
    instance = instance or dagster_instance(paths)
    phase("recover")
    recover_after_crash(paths, instance)
    sync_partitions(instance, members)
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    phase("ingest")
    ingest_ok = ingest_members(instance, members, run_config)
    uploads_by_city: dict[str, list[catalog.UploadRow]] = {}
    for up in catalog.list_uploads(paths.catalog_url, city_codes=[m.code for m in members]):
        uploads_by_city.setdefault(up.city_code, []).append(up)
    cities = [CityOutcome(m, ingest_ok or not _refused(uploads_by_city.get(m.code, [])),
                          uploads_by_city.get(m.code, [])) for m in members]
    phase("publish")
    region = defs.resolve_job_def("publish_region").execute_in_process(instance=instance, raise_on_error=False,
                                                                      run_config=run_config)
    phase("anonymise")
    anonymisation = run_anonymisation(defs.resolve_job_def("anonymise_personal"), instance, run_config)
    phase("done")
    releases = {}
    for pointer in sorted(paths.releases.glob("*/latest.json")):
        latest = latest_release(paths.releases, pointer.parent.name)
        if latest:
            releases[pointer.parent.name] = latest
    return MainOutcome(cities=cities, region_ok=region.success, releases=releases, paths=paths,
                       anonymisation=anonymisation)


def recover_after_crash(paths: Paths, instance: DagsterInstance) -> None:
    """Repair what an interrupted run left (recovery.start: leftovers, catalog, releases, dead runs and their
    pool slots) before starting; one line each on stderr."""
    from recovery.start import recover_before_run

    for line in recover_before_run(paths, instance):
        print(f"kouiki: {line}", file=sys.stderr)


def _refused(uploads: list[catalog.UploadRow]) -> bool:
    """The city's newest upload of some dataset was refused (its run step failed for that city)."""
    newest: dict[str, catalog.UploadRow] = {}
    for up in uploads:
        newest[up.dataset_id or up.upload_id] = up
    return any(up.status in (UploadStatus.REJECTED, UploadStatus.UNREADABLE) for up in newest.values())
