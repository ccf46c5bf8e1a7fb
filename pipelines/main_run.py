"""The main job as the office runs it from a terminal (``make run``): every member city's partition, then the
region-wide models and the releases, all recorded in Dagster's instance so the UI shows the same runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import DagsterInstance

from kouiki import catalog
from kouiki.members import Member, load_members
from kouiki.settings import Paths, get_paths
from publish.release import latest_release

if TYPE_CHECKING:
    from assets.anonymise import AnonymisationRun

DAGSTER_YAML = """\
# Written by kouiki: Dagster's own storage is SQLite under the kouiki home (embedded default).
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
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
    os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    return DagsterInstance.get()


def sync_partitions(instance: DagsterInstance, members: list[Member]) -> list[str]:
    """Make sure every member city has its partition; returns the codes added."""
    from assets.partitions import MEMBER_CITIES

    existing = set(instance.get_dynamic_partitions(MEMBER_CITIES))
    new = [m.code for m in members if m.code not in existing]
    if new:
        instance.add_dynamic_partitions(MEMBER_CITIES, new)
    return new


def run_main(paths: Paths | None = None, members: list[Member] | None = None,
             instance: DagsterInstance | None = None, log_level: str = "INFO") -> MainOutcome:
    from assets.anonymise import run_anonymisation
    from pipelines.definitions import defs

    paths = paths or get_paths()
    members = members if members is not None else load_members()
    instance = instance or dagster_instance(paths)
    sync_partitions(instance, members)
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    ingest = defs.resolve_job_def("ingest_city")
    cities = []
    for member in members:
        result = ingest.execute_in_process(partition_key=member.code, instance=instance, raise_on_error=False,
                                        run_config=run_config)
        cities.append(CityOutcome(member, result.success,
                                  catalog.list_uploads(paths.catalog_url, city_code=member.code)))
    region = defs.resolve_job_def("publish_region").execute_in_process(instance=instance, raise_on_error=False,
                                                                      run_config=run_config)
    anonymisation = run_anonymisation(defs.resolve_job_def("anonymise_personal"), instance, run_config)
    releases = {}
    for pointer in sorted(paths.releases.glob("*/latest.json")):
        latest = latest_release(paths.releases, pointer.parent.name)
        if latest:
            releases[pointer.parent.name] = latest
    return MainOutcome(cities=cities, region_ok=region.success, releases=releases, paths=paths,
                       anonymisation=anonymisation)
