"""kouiki's steps on Celery workers (dagster-celery) through a real Redis broker: the demo, end to end.

These tests need a broker: ``make test-distributed`` starts a throwaway Redis server (scripts/redis.sh) and sets
``KOUIKI_TEST_REDIS_URL``; without it every test here is skipped, so ``make test`` stays green on any machine.
The module starts two Celery workers of its own (the command of ``pipelines.executors.celery_worker``), each
in its own process group with a fresh kouiki home, and stops them afterwards, even when a test fails.

The demo runs in the phases of ``kouiki run``: landing and detection (one run per city, the three side by side,
as the daemon's upload sensor starts them), the lake assets of the datasets with uploads waiting over the
cities' partition range, then ``publish_region``; each run is the operator's Dagster command in its own process,
once with ``KOUIKI_EXECUTOR=celery`` and once with the default in-process executor; the releases must be the
same.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    JobDefinition,
    MaterializeResult,
    asset,
    build_reconstructable_job,
    define_asset_job,
    execute_job,
)

from kouiki.settings import REPO_ROOT
from pipelines.executors import BROKER_ENV, EXECUTOR_ENV, celery_worker, configured_executor
from pipelines.testing import stop_group

REDIS_URL = os.environ.get("KOUIKI_TEST_REDIS_URL", "")
DEMO = REPO_ROOT / "demo" / "uploads"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
WORKERS = ("kouiki-w1", "kouiki-w2")
WAREHOUSE_POOL = "duckdb_warehouse"

pytestmark = [
    pytest.mark.skipif(not REDIS_URL, reason="KOUIKI_TEST_REDIS_URL is not set: `make test-distributed` starts a "
                                             "throwaway Redis server and sets it"),
    pytest.mark.slow,
    # dagster-celery registers its task again for every step it sends (its own code; harmless)
    pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered"),
]


@dataclass(frozen=True)
class Workers:
    """Two running Celery workers: their names (``kouiki-w1@host``), process ids and logs."""

    names: tuple[str, ...]
    pids: dict[str, int]
    logs: dict[str, Path]

    def log_tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}" for name, path in
                         self.logs.items())


def kouiki_env(home: Path, members: Path, executor: str) -> dict[str, str]:
    """The environment every process of one demo shares: the operator's commands and the workers alike."""
    env = {**os.environ, "KOUIKI_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "KOUIKI_MEMBERS": str(members), EXECUTOR_ENV: executor, BROKER_ENV: REDIS_URL,
           "DAGSTER_DISABLE_TELEMETRY": "1"}
    for local_only in ("KOUIKI_CATALOG_URL", "KOUIKI_DAGSTER_PG_URL", "KOUIKI_CELERY_BACKEND"):
        env.pop(local_only, None)
    return env


def write_members(path: Path) -> Path:
    """The demo's three cities (config/members.yaml without the personal files), inboxes as absolute paths."""
    members = yaml.safe_load((REPO_ROOT / "config" / "members.yaml").read_text(encoding="utf-8"))["members"]
    path.write_text(yaml.safe_dump({"members": [
        {"code": m["code"], "name": m["name"], "inbox": str(DEMO / m["code"]), "datasets": m["datasets"]}
        for m in members]}, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("celery-demo")
    return folder / "home", write_members(folder / "members.yaml")


@pytest.fixture(scope="module")
def workers(demo_home: tuple[Path, Path]) -> Iterator[Workers]:
    """Two workers with the demo's environment (``--pool solo``: a step runs in the worker's own process)."""
    home, members = demo_home
    home.mkdir(parents=True)
    host = socket.gethostname()
    with ExitStack() as stack:
        processes, logs = {}, {}
        for name in WORKERS:
            command, env = celery_worker(name, kouiki_env(home, members, "celery"), python=sys.executable)
            logs[f"{name}@{host}"] = log = home.parent / f"{name}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            stack.callback(stop_group, process)
            record_worker(process.pid)
            processes[f"{name}@{host}"] = process
        running = Workers(tuple(processes), {n: p.pid for n, p in processes.items()}, logs)
        wait_until_ready(running, processes)
        yield running


def record_worker(pid: int) -> None:
    """Append the worker's process group to $KOUIKI_TEST_WORKER_PIDS: `make test-distributed` stops those groups
    even when pytest itself is killed before its fixtures can."""
    listing = os.environ.get("KOUIKI_TEST_WORKER_PIDS")
    if listing:
        with open(listing, "a", encoding="utf-8") as out:
            out.write(f"{pid}\n")


def wait_until_ready(workers: Workers, processes: Mapping[str, subprocess.Popen[bytes]],
                     timeout: float = 180.0) -> None:
    """Each worker logs "<name> ready." once it consumes the queue."""
    deadline = time.monotonic() + timeout
    waiting = set(workers.names)
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            if processes[name].poll() is not None:
                pytest.fail(f"worker {name} exited with {processes[name].returncode}:\n{workers.log_tails()}")
            if f"{name} ready." in workers.logs[name].read_text(errors="replace"):
                waiting.discard(name)
        time.sleep(0.5)
    if waiting:
        pytest.fail(f"workers not ready after {timeout:.0f} s: {sorted(waiting)}\n{workers.log_tails()}")


# --- the demo through the workers ------------------------------------------------------------------------------


def run_demo(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The phases of ``kouiki run`` (without the anonymisation) with the executor of ``env``; seconds per phase.

    Partitions and the datasets waiting are read in this process (as ``kouiki run`` does); each Dagster run is
    the operator's command in its own process, which loads the definitions with ``env``'s executor. Landing
    runs per city, as the daemon's upload sensor does; the lake and the region run as in ``kouiki run``."""
    from kouiki.members import load_members
    from kouiki.settings import get_paths
    from pipelines.main_run import dagster_instance, datasets_waiting, sync_partitions

    for key in ("KOUIKI_HOME", "DAGSTER_HOME", "KOUIKI_MEMBERS"):
        monkeypatch.setenv(key, env[key])
    paths = get_paths()
    members = load_members()
    instance = dagster_instance(paths)
    sync_partitions(instance, members)
    instance.dispose()
    codes = [m.code for m in members]
    partition_range = f"{codes[0]}...{codes[-1]}"   # the members' order is the partitions' order
    seconds = {}
    started = time.monotonic()
    # landing as the upload sensor starts it: one run per city partition, the three side by side
    dagster(env, *[("asset", "materialize", "--select", "intake/uploads", "--partition", code) for code in codes])
    seconds["land"] = time.monotonic() - started
    waiting = datasets_waiting(paths, codes)
    assert waiting, "no upload of the demo was detected"
    started = time.monotonic()
    dagster(env, ("asset", "materialize", "--select", ",".join(f"lake/{d}" for d in waiting),
                  "--partition-range", partition_range))
    seconds["lake"] = time.monotonic() - started
    started = time.monotonic()
    dagster(env, ("job", "execute", "-j", "publish_region"))
    seconds["publish"] = time.monotonic() - started
    return seconds


def dagster(env: dict[str, str], *commands: tuple[str, ...]) -> None:
    """The operator's Dagster commands on kouiki's code location, each in its own process, all at once."""
    running = [(args, subprocess.Popen([DAGSTER, *args, "-m", "pipelines.definitions"], cwd=REPO_ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
               for args in commands]
    for args, process in running:
        output, _ = process.communicate(timeout=1800)
        assert process.returncode == 0, f"dagster {' '.join(args)} failed:\n{output[-6000:]}"


def releases(home: Path) -> dict[str, dict[str, object]]:
    """Per dataset, the latest release's row counts and content hash (metadata.json)."""
    found = {}
    for pointer in sorted((home / "releases").glob("*/latest.json")):
        latest = json.loads(pointer.read_text(encoding="utf-8"))
        meta = json.loads((pointer.parent / str(latest["number"]) / "metadata.json").read_text(encoding="utf-8"))
        found[pointer.parent.name] = {key: meta[key] for key in ("rows", "rows_by_city", "content_hash")}
    return found


def accepted_rows(home: Path) -> dict[str, dict[str, int]]:
    """Rows accepted per dataset and city, from the catalog's record of each demo file."""
    from kouiki import catalog
    from kouiki.settings import Paths

    paths = Paths(home)
    rows: dict[str, dict[str, int]] = {}
    for up in catalog.list_uploads(paths.catalog_url):
        if up.dataset_id and up.status in ("accepted", "quarantined") and up.detail:
            per_city = rows.setdefault(up.dataset_id, {})
            per_city[up.city_code] = per_city.get(up.city_code, 0) + int(up.detail["rows_accepted"])
    return rows


def step_workers(instance: DagsterInstance) -> dict[tuple[str, str], tuple[str, int]]:
    """(run, step) -> (the Celery worker that said it executed the step, pid of the step's STEP_START event)."""
    said: dict[tuple[str, str], str] = {}
    pids: dict[tuple[str, str], int] = {}
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id, of_type={DagsterEventType.ENGINE_EVENT,
                                                             DagsterEventType.STEP_START}):
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            key = (run.run_id, entry.step_key)
            if event.event_type == DagsterEventType.STEP_START:
                pids[key] = event.pid or 0
            elif "in celery worker" in (event.message or ""):
                said[key] = str(event.engine_event_data.metadata["Celery worker"].value)
    assert pids and set(said) == set(pids), f"steps without a worker's word: {set(pids) - set(said)}"
    return {key: (said[key], pids[key]) for key in pids}


def test_the_demo_runs_on_two_celery_workers_and_publishes_what_in_process_does(
    workers: Workers, demo_home: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, members = demo_home
    distributed = run_demo(kouiki_env(home, members, "celery"), monkeypatch)
    reference_home = tmp_path / "in-process"
    in_process = run_demo(kouiki_env(reference_home, members, "in_process"), monkeypatch)
    print(f"\nwall time per phase (s), load average {os.getloadavg()[0]:.1f}: celery with two workers "
          f"{distributed} = {sum(distributed.values()):.1f}; in process {in_process} = "
          f"{sum(in_process.values()):.1f}")

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs()
        assert len(runs) == 5 and {r.status for r in runs} == {DagsterRunStatus.SUCCESS}, runs
        executed = step_workers(instance)
        landing = {r.run_id: r.tags["dagster/partition"] for r in runs if "dagster/partition" in r.tags}
    # every step ran in one of the two workers' own processes, and both workers had steps
    assert {worker for worker, _ in executed.values()} == set(workers.names), executed
    for (_run, step), (worker, pid) in executed.items():
        assert pid == workers.pids[worker], (step, worker, pid, workers.pids)
    assert os.getpid() not in {pid for _, pid in executed.values()}
    # the three cities' landing runs went side by side, and their steps to both workers
    assert sorted(landing.values()) == sorted(p.name for p in DEMO.iterdir())
    assert {worker for (run, _), (worker, _) in executed.items() if run in landing} == set(workers.names)

    published = releases(home)
    assert set(published) == {"aed", "evacuation_space", "population"}, published
    accepted = accepted_rows(home)
    for dataset, release in published.items():
        assert release["rows_by_city"] == accepted[dataset], dataset   # every accepted demo row, per city
        assert release["rows"] == sum(accepted[dataset].values())
    assert published == releases(reference_home)   # same rows, same bytes as without Celery


# --- the warehouse pool on Celery ------------------------------------------------------------------------------

STEP_SECONDS = 4.0


@asset(pool=WAREHOUSE_POOL)
def warehouse_a() -> MaterializeResult:
    time.sleep(STEP_SECONDS)
    return MaterializeResult(metadata={"pid": os.getpid()})


@asset(pool=WAREHOUSE_POOL)
def warehouse_b() -> MaterializeResult:
    time.sleep(STEP_SECONDS)
    return MaterializeResult(metadata={"pid": os.getpid()})


def pool_job() -> JobDefinition:
    """Two independent assets in kouiki's DuckDB pool on kouiki's celery executor (rebuilt in each worker)."""
    executor = configured_executor({EXECUTOR_ENV: "celery", BROKER_ENV: REDIS_URL})
    job = define_asset_job("pool_job", selection=[warehouse_a, warehouse_b], executor_def=executor)
    return Definitions(assets=[warehouse_a, warehouse_b], jobs=[job]).resolve_job_def("pool_job")


def step_windows(instance: DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    windows: dict[str, dict[DagsterEventType, float]] = {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        assert entry.dagster_event is not None and entry.step_key is not None
        windows.setdefault(entry.step_key, {})[entry.dagster_event.event_type] = entry.timestamp
    assert sorted(windows) == ["warehouse_a", "warehouse_b"]
    return [(w[DagsterEventType.STEP_START], w[DagsterEventType.STEP_SUCCESS]) for _, w in sorted(windows.items())]


def test_the_warehouse_pool_keeps_one_writer_across_celery_workers(
    workers: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kouiki's dagster.yaml gives the pool one slot: two warehouse steps sent to two idle workers never overlap;
    given two slots, the same two steps do overlap (the workers can run side by side)."""
    from pipelines.main_run import write_dagster_yaml

    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv(BROKER_ENV, REDIS_URL)   # read by the executor when the run starts
    write_dagster_yaml(dagster_home / "dagster.yaml")
    job = build_reconstructable_job(__name__, pool_job.__name__,
                                    reconstructor_working_directory=str(Path(__file__).parent))
    with DagsterInstance.get() as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits
        windows = []
        for slots in (1, 2):
            if slots == 2:
                instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 2)
            with execute_job(job, instance=instance) as result:
                assert result.success, workers.log_tails()
                windows.append(step_windows(instance, result.run_id))
    (a_start, a_end), (b_start, b_end) = windows[0]
    assert a_end <= b_start or b_end <= a_start, windows[0]       # one slot: one step at a time
    (a_start, a_end), (b_start, b_end) = windows[1]
    assert a_start < b_end and b_start < a_end, windows[1]        # two slots: side by side
