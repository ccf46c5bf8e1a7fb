"""Two runs started together, N times, through the real Dagster UI server and daemon (``kouiki ui``): the run
queue must make them wait for each other, never fail.

Each round submits at the same moment two ``ingest_city`` runs of one city (its uploads put back to
``landed`` first, so both have real work: the same files validated by two runs at once was a collision on a
shared temporary file) and two ``publish_region`` runs (both writing the one DuckDB warehouse), then waits for
all four. Figures: failed runs, failed steps, runs of one city or two warehouse writers that overlapped in
time (must be 0: the queue runs them one after the other), and whether Dagster's storage still opens
afterwards. A temporary kouiki home with the three demo cities; results in bench/results/concurrent_runs.json.

Run: .venv/bin/python bench/bench_concurrent_runs.py [--rounds 20] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

from common import RESULTS_DIR, figure, figures_table, machine_facts, write_result  # noqa: E402

CITY = "222127"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
WAITING = {"QUEUED", "NOT_STARTED", "STARTING"}   # a run that has not started its steps yet
SUBMIT_ATTEMPTS = 5   # a submission that times out is retried (the round's runs must all be submitted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one round")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "concurrent_runs.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kouiki-concurrent-") as tmp:
        result = run_rounds(Path(tmp), args.rounds, args.timeout)
    write_result(result, args.out)
    print(figures_table("concurrent_runs", result["figures"]))


def run_rounds(root: Path, rounds: int, timeout: float) -> dict[str, Any]:

    from kouiki.settings import REPO_ROOT
    from pipelines.testing import write_automation
    from service.testing import free_port

    home = root / "home"
    automation = write_automation(root / "automation.yaml", interval_seconds=5)
    os.environ.update({"KOUIKI_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
                       "KOUIKI_MEMBERS": str(REPO_ROOT / "config" / "members.yaml"),
                       "KOUIKI_AUTOMATION": str(automation), "DAGSTER_DISABLE_TELEMETRY": "1"})
    port = free_port()
    started = time.monotonic()
    with ui_server(home, port) as log:
        wait_for_server(port, log)
        land_demo_files(home)
        rounds_done = []
        for n in range(rounds):
            rounds_done.append(one_round(port, home, timeout))
            print(f"round {n + 1}/{rounds}: {rounds_done[-1]}", flush=True)
    failed_runs = sum(r["failed_runs"] for r in rounds_done)
    failed_steps, overlaps, storage_ok = inspect_instance(home)
    return {
        "bench": "concurrent_runs", "machine": machine_facts(), "rounds": rounds_done,
        "seconds": round(time.monotonic() - started, 1),
        "figures": [
            figure("rounds", rounds, "rounds"),
            figure("failed runs", failed_runs, "runs", note="target 0"),
            figure("runs not finished within a round's timeout (still queued or running: slow, not failed)",
                   sum(r["unfinished_runs"] for r in rounds_done), "runs"),
            figure("failed steps", failed_steps, "steps", note="target 0"),
            figure("overlapping runs of one city or two warehouse writers", overlaps, "pairs", note="target 0"),
            figure("Dagster storage opens afterwards", 1 if storage_ok else 0, "bool", note="target 1"),
            figure("median round (until every region run it caused has finished)",
                   statistics.median(r["seconds"] for r in rounds_done), "s"),
            figure("region runs per round (median; 2 submitted by the bench)",
                   statistics.median(r["region_runs"] for r in rounds_done), "runs"),
            figure("region runs launched by the automation per round (median)",
                   statistics.median(r["region_runs_by_automation"] for r in rounds_done), "runs"),
            figure("most region runs waiting in the queue at once", max(
                r["region_runs_queued_at_once"] for r in rounds_done), "runs"),
        ],
    }


class ui_server:
    """``kouiki ui`` (dagster dev: web server and daemon) in its own process group, stopped afterwards."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port

    def __enter__(self) -> Path:
        import subprocess

        self.home.mkdir(parents=True, exist_ok=True)
        self.log = self.home / "ui.log"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen([sys.executable, "-m", "commands.cli", "ui", "--port", str(self.port)],
                                            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                            cwd=BENCH_DIR.parent)
        return self.log

    def __exit__(self, *exc: object) -> None:
        from pipelines.testing import stop_group

        stop_group(self.process)


def wait_for_server(port: int, log: Path, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"the Dagster UI did not start:\n{log.read_text(errors='replace')[-3000:]}")


def land_demo_files(home: Path) -> None:
    """The demo city's files landed in the catalog, as the upload service would have left them."""
    from expectations.registry import default_registry
    from intake.inbox import pick_up
    from kouiki.members import load_members
    from kouiki.settings import Paths

    member = next(m for m in load_members() if m.code == CITY)
    pick_up(Paths(home).ensure(), member, default_registry())


def graphql(port: int) -> Any:
    from dagster_graphql import DagsterGraphQLClient

    return DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=120)


def one_round(port: int, home: Path, timeout: float) -> dict[str, Any]:
    from commands.office_cli import mark_for_rerun
    from kouiki.settings import Paths

    since = time.time()
    mark_for_rerun(Paths(home), CITY)
    started = time.monotonic()
    submissions = [("ingest_city", {"dagster/partition": CITY})] * 2 + [("publish_region", {})] * 2
    def submit(job_and_tags: tuple[str, dict[str, str]]) -> str:
        from dagster_graphql import DagsterGraphQLClientError

        job, tags = job_and_tags   # a client per thread: a client's transport is not thread-safe
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                return str(graphql(port).submit_job_execution(job, tags=tags))
            except DagsterGraphQLClientError as exc:   # the UI server did not answer in time (a busy machine)
                if "TransportConnectionFailed" not in repr(exc.__cause__) or attempt == SUBMIT_ATTEMPTS - 1:
                    raise
                time.sleep(10)
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(len(submissions)) as pool:   # together: four submissions at the same moment
        run_ids = list(pool.map(submit, submissions))
    statuses: dict[str, str] = {}
    queued_at_once = 0
    own_done: float | None = None
    while time.monotonic() - started < timeout:
        client = graphql(port)
        statuses = {r: client.get_run_status(r).value for r in run_ids}
        region = region_runs(home, since)
        queued_at_once = max(queued_at_once, sum(1 for r in region if r.status.value in WAITING))
        if own_done is None and all(s in FINISHED for s in statuses.values()):
            own_done = time.monotonic() - started
        if own_done is not None and all(r.status.value in FINISHED for r in region):
            break   # the round ends when its runs and every region run they caused have finished
        time.sleep(3)
    region = region_runs(home, since)
    return {"seconds": round(time.monotonic() - started, 1), "run_ids": run_ids,
            "submitted_runs_seconds": round(own_done, 1) if own_done is not None else None,
            "region_runs": len(region),
            "region_runs_by_automation": sum(1 for r in region if r.run_id not in run_ids),
            "region_runs_queued_at_once": queued_at_once,
            "failed_runs": sum(1 for s in statuses.values() if s in FINISHED and s != "SUCCESS"),
            "unfinished_runs": sum(1 for s in statuses.values() if s not in FINISHED)}


def region_runs(home: Path, since: float) -> list[Any]:
    """Runs that write the warehouse (publish_region, the region automation's) created since ``since``."""
    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        return [rec.dagster_run for rec in instance.get_run_records(
            RunsFilter(tags={"kouiki/warehouse": "writer"}, created_after=datetime.fromtimestamp(since, UTC)))]


def lanes_of(job_name: str, tags: Mapping[str, str]) -> list[str]:
    """The queues a run must wait in: its city (any run of a city partition, the bench's or the automation's)
    and the warehouse (any run carrying the writer tag: publish_region and the region automation's runs)."""
    lanes = [f"city {tags['dagster/partition']}"] if "dagster/partition" in tags else []
    if "kouiki/warehouse" in tags or job_name == "publish_region":
        lanes.append("warehouse")
    return lanes


def inspect_instance(home: Path) -> tuple[int, int, bool]:
    """Failed steps over every run, overlapping pairs that the queue should have kept apart, storage opens."""
    from dagster import DagsterEventType, DagsterInstance

    try:
        with DagsterInstance.from_config(str(home / "dagster")) as instance:
            records = instance.get_run_records()
            failures = [(rec.dagster_run, event) for rec in records for event in instance.get_records_for_run(
                rec.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE).records]
            for run, event in failures:   # which step and why: the temporary home is gone afterwards
                entry = event.event_log_entry
                error = getattr(entry.dagster_event.event_specific_data, "error", None) if entry.dagster_event else None
                print(f"failed step: {run.run_id[:8]} {run.job_name} {entry.step_key}: "
                      f"{error.message if error else entry.user_message}"[:600], file=sys.stderr)
            failed_steps = len(failures)
            spans: dict[str, list[tuple[float, float, str]]] = {}
            for rec in records:
                if rec.start_time is None or rec.end_time is None:
                    continue
                run = rec.dagster_run
                who = f"{run.run_id[:8]} {run.job_name} {sorted(run.tags.items())}"
                for lane in lanes_of(run.job_name, run.tags):
                    spans.setdefault(lane, []).append((rec.start_time, rec.end_time, who))
            pairs = [(a, b) for lane in spans.values() for i, a in enumerate(sorted(lane))
                     for b in sorted(lane)[i + 1:] if b[0] < a[1]]
            for a, b in pairs:   # which runs: the queue's tags decide, so they are printed with their tags
                print(f"overlap: {a[2]}\n     and {b[2]}", file=sys.stderr)
            return failed_steps, len(pairs), True
    except Exception as exc:  # storage that does not open is the finding, not a crash of the bench
        print(f"Dagster storage does not open: {exc}", file=sys.stderr)
        return -1, -1, False


if __name__ == "__main__":
    main()
