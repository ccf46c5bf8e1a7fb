"""One ``kouiki run`` at a time (the run lock), and runs that died: marked failed, their pool slots freed, so
the next run never hangs waiting for a dead one. Real processes, real Dagster storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kouiki.settings import REPO_ROOT

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kouiki.runlock import run_lock
    with run_lock(Path(sys.argv[1]), say=lambda m: print(m, flush=True)):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
""")

POOL_JOB = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dagster import DagsterInstance, job, op
    from pipelines.main_run import write_dagster_yaml

    home, marker, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    write_dagster_yaml(home / "dagster.yaml")

    @op(pool="duckdb_warehouse")
    def warehouse_step() -> None:
        marker.write_text("holding")
        time.sleep(seconds)

    @job
    def uses_the_warehouse() -> None:
        warehouse_step()

    result = uses_the_warehouse.execute_in_process(instance=DagsterInstance.get())
    print("success" if result.success else "failure", flush=True)
""")


def _start(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_a_second_run_waits_for_the_lock_and_says_whose(tmp_path: Path) -> None:
    first = _start(HOLD_LOCK, str(tmp_path), "4")
    assert first.stdout is not None and first.stdout.readline().strip() == "held"
    second = _start(HOLD_LOCK, str(tmp_path), "0")
    out, _ = second.communicate(timeout=60)
    first.communicate(timeout=60)
    lines = out.splitlines()
    assert lines[0] == (f"別の実行が進行中です（pid {first.pid}）。終わるまで待ちます / another run is in progress "
                        f"(pid {first.pid}), waiting")
    assert lines[1:] == ["held", "released"]


def test_a_killed_run_is_marked_failed_and_its_pool_slot_freed(tmp_path: Path) -> None:
    from dagster import DagsterInstance, DagsterRunStatus

    from recovery.start import dead_runs, free_dead_runs, held_slots

    home = tmp_path / "dagster"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    killed = _start(POOL_JOB, str(home), str(tmp_path / "holding"), "120", env=env)
    _wait_for(tmp_path / "holding", 120)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()

    instance = DagsterInstance.from_config(str(home))
    [run] = instance.get_runs()
    assert run.status == DagsterRunStatus.STARTED
    assert instance.event_log_storage.get_concurrency_info("duckdb_warehouse").claimed_slots
    assert dead_runs(instance) == [(run.run_id, killed.pid)]
    lines = free_dead_runs(instance)
    assert len(lines) == 2 and all(run.run_id in line for line in lines)
    again = instance.get_run_by_id(run.run_id)
    assert again is not None and again.status == DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("duckdb_warehouse").claimed_slots
    assert dead_runs(instance) == [] and held_slots(instance) == []
    # the next run gets the slot at once instead of waiting for ever
    started = time.monotonic()
    after = _start(POOL_JOB, str(home), str(tmp_path / "second"), "0", env=env)
    out, _ = after.communicate(timeout=120)
    assert out.strip().endswith("success"), out
    assert time.monotonic() - started < 120
