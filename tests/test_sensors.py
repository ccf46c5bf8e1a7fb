"""The upload sensor on a real Dagster instance and a real catalog: a cursor so unchanged inbox files are never
hashed again, one catalog query per tick, processed files never resubmitted, a run per city that is queued or
going is not doubled, and a city whose run ended with its uploads still waiting is started again (a bounded
number of times) with a new run key; plus the run queue kouiki writes into dagster.yaml."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
    instance_for_test,
)

from assets.partitions import MEMBER_CITIES
from expectations.registry import default_registry
from intake import landing
from intake.inbox import pick_up
from kouiki import catalog
from kouiki.members import load_members
from kouiki.settings import Paths
from pipelines import sensors
from pipelines.automation import AutomationConfigError, AutomationSettings, load_settings
from pipelines.definitions import defs
from pipelines.resources import KouikiHome
from service.testing import write_members

REPO = Path(__file__).resolve().parents[1]
YAIZU = "222127"
DEMO = REPO / "demo" / "uploads" / YAIZU

pytestmark = pytest.mark.skipif(not DEMO.is_dir(), reason="needs demo/uploads")


@pytest.fixture()
def city(kouiki_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A home with one member city whose inbox holds its two real demo files."""
    members = write_members(tmp_path / "members.yaml", [(YAIZU, "焼津市")])
    monkeypatch.setenv("KOUIKI_MEMBERS", str(members))
    paths = Paths(kouiki_home).ensure()
    inbox = paths.inbox / YAIZU
    inbox.mkdir(parents=True)
    for f in DEMO.iterdir():
        shutil.copy(f, inbox / f.name)
    return paths


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        inst.add_dynamic_partitions(MEMBER_CITIES, [YAIZU])
        yield inst


class Counters:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashed: list[Path] = []
        self.queries = 0
        real_hash, real_begin = landing.sha256_of, catalog.begin

        def hashing(path: Path) -> str:
            self.hashed.append(path)
            return real_hash(path)

        @contextmanager
        def begin(url: str) -> Iterator[Any]:
            self.queries += 1
            with real_begin(url) as conn:
                yield conn

        monkeypatch.setattr(landing, "sha256_of", hashing)   # the sensor imports it when it first ticks
        monkeypatch.setattr(sensors.catalog, "begin", begin)

    def reset(self) -> None:
        self.hashed.clear()
        self.queries = 0


def tick(instance: DagsterInstance, cursor: str | None) -> tuple[SensorResult | SkipReason, str | None]:
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"kouiki": KouikiHome()})
    result = sensors.upload_sensor(context)
    assert isinstance(result, SensorResult | SkipReason)
    return result, context.cursor


def requests(result: SensorResult | SkipReason) -> list[tuple[str, str]]:
    if isinstance(result, SkipReason):
        return []
    return [(r.partition_key or "", r.run_key or "") for r in result.run_requests or []]


def test_cursor_means_unchanged_files_are_never_hashed_again(city: Paths, instance: DagsterInstance,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    count = Counters(monkeypatch)
    result, cursor = tick(instance, None)
    assert [p for p, _ in requests(result)] == [YAIZU]
    assert sorted(p.name for p in count.hashed) == sorted(f.name for f in DEMO.iterdir())
    assert count.queries == 1

    # the city's run lands and loads the files: the next tick hashes nothing and asks the catalog once
    pick_up(city, load_members()[0], default_registry())
    for up in catalog.list_uploads(city.catalog_url):
        catalog.set_upload_status(city.catalog_url, up.upload_id, "accepted")
    count.reset()
    result, cursor = tick(instance, cursor)
    assert isinstance(result, SkipReason) and count.hashed == [] and count.queries == 1

    # a changed file (new bytes, new size) is hashed again, and only that one; it is new work for the city
    changed = sorted((city.inbox / YAIZU).iterdir())[0]
    changed.write_bytes(changed.read_bytes() + b"\n")
    count.reset()
    result, cursor = tick(instance, cursor)
    assert count.hashed == [changed] and [p for p, _ in requests(result)] == [YAIZU]


def test_a_city_with_a_run_queued_is_not_started_twice(city: Paths, instance: DagsterInstance) -> None:
    result, cursor = tick(instance, None)
    assert len(requests(result)) == 1
    job = defs.resolve_job_def("ingest_city")
    run = instance.create_run_for_job(job, tags={"dagster/partition": YAIZU})   # NOT_STARTED: queued
    result, cursor = tick(instance, cursor)
    assert requests(result) == [] and isinstance(result, SkipReason) and "queued or going" in str(result.skip_message)
    instance.report_run_failed(run)
    # the run ended with the files still not landed: started again with a new run key, up to upload_attempts
    keys = set()
    for _ in range(load_settings().upload_attempts - 1):
        result, cursor = tick(instance, cursor)
        [(_, key)] = requests(result)
        keys.add(key)
    assert len(keys) == load_settings().upload_attempts - 1
    result, cursor = tick(instance, cursor)
    assert requests(result) == []   # gave up: the files stay in the inbox, the office is told in the log


def test_an_upload_left_landed_by_a_failed_run_is_requested_again(city: Paths, instance: DagsterInstance) -> None:
    pick_up(city, load_members()[0], default_registry())        # landed by a run that then failed
    result, cursor = tick(instance, None)
    [(partition, first)] = requests(result)
    assert partition == YAIZU and first.endswith("-1")
    result, cursor = tick(instance, cursor)                      # that run failed too: attempt 2, new key
    [(_, second)] = requests(result)
    assert second.endswith("-2") and second != first
    assert all(u.status == "landed" for u in catalog.list_uploads(city.catalog_url))   # never lost


def test_the_instance_queues_runs_one_per_city_and_one_warehouse_writer(tmp_path: Path) -> None:
    from dagster import QueuedRunCoordinator

    from pipelines.main_run import write_dagster_yaml

    write_dagster_yaml(tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as inst:
        assert isinstance(inst.run_coordinator, QueuedRunCoordinator)
        queue = inst.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == AutomationSettings().max_concurrent
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in \
            queue.tag_concurrency_limits
        assert {"key": "kouiki/warehouse", "limit": 1} in queue.tag_concurrency_limits
        assert inst.run_retries_enabled and inst.run_retries_max_retries == AutomationSettings().max_retries
        assert inst.get_concurrency_config().pool_config.default_pool_limit == 1
        assert inst.run_coordinator.get_run_queue_config().max_user_code_failure_retries == \
            AutomationSettings().start_retries


def test_a_bad_automation_file_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "automation.yaml"
    bad.write_text("runs:\n  max_concurrent: many\n", encoding="utf-8")
    with pytest.raises(AutomationConfigError, match=r"automation.yaml: max_concurrent .*not 'many'"):
        load_settings(bad)
    bad.write_text("runs:\n  max_paralel: 2\n", encoding="utf-8")
    with pytest.raises(AutomationConfigError, match="unknown setting max_paralel"):
        load_settings(bad)


def test_a_publish_run_launched_from_the_ui_carries_the_warehouse_tag(tmp_path: Path) -> None:
    """The UI and its GraphQL API create a run with the job's tags: without the writer tag two publish runs
    started from the UI ran at once (seen by bench/bench_concurrent_runs.py). Launched on a queued instance,
    the run waits in the queue, so its tags are read without running it."""
    from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    from pipelines.automation import WAREHOUSE_TAG
    from pipelines.main_run import write_dagster_yaml

    write_dagster_yaml(tmp_path / "dagster.yaml")
    definitions = REPO / "pipelines" / "definitions.py"
    with DagsterInstance.from_config(str(tmp_path)) as inst, \
            define_out_of_process_context(str(definitions), None, inst) as context:
        location = next(iter(context.code_location_names))
        selector = {"repositoryLocationName": location, "repositoryName": "__repository__",
                    "pipelineName": "publish_region"}
        result = execute_dagster_graphql(context, LAUNCH_PIPELINE_EXECUTION_MUTATION,
                                         {"executionParams": {"selector": selector, "runConfigData": {}}})
        launched = result.data["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run = inst.get_run_by_id(launched["run"]["runId"])
        assert run is not None and run.tags.get(WAREHOUSE_TAG) == "writer"
