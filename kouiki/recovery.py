"""What the start of every ``kouiki run`` repairs after a crash (and ``kouiki doctor --repair`` too):

1. leftovers: temporary lake files, landing files and ``.incomplete-*`` release folders of dead processes;
2. the catalog: landed uploads it lacks (lost or rebuilt catalog) from their manifests, releases it lacks from
   the release folders, ``latest.json`` pointing to the newest complete release (``publish.recover``);
3. Dagster: runs still marked started whose process is gone are marked failed, and the pool slots
   (``duckdb_warehouse``) they or any finished run hold are freed, so later runs never wait for a dead one.

Called under the run lock (``kouiki.runlock``), so no other ``kouiki run`` is writing meanwhile; the pieces
that could race with a live writer (a daemon's run, the upload service) only touch what a dead pid left.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from intake.landing import landing_leftovers, restore_uploads
from kouiki.runlock import pid_alive
from kouiki.settings import Paths
from publish.recover import recover_releases
from warehouse import lake

if TYPE_CHECKING:
    from dagster import DagsterInstance

ACTIVE = ("STARTING", "STARTED", "CANCELING")


def recover_files(paths: Paths) -> tuple[list[str], list[str]]:
    """Steps 1 and 2: (what was repaired, what could not be), one line each."""
    repaired = [f"{p}: 中断された書き込みの残りを削除 / removed a leftover of an interrupted write"
                for p in lake.remove_leftovers(paths.lake)]
    for tmp in landing_leftovers(paths):
        tmp.unlink(missing_ok=True)
        repaired.append(f"{tmp}: 中断された受付の残りを削除 / removed a leftover of an interrupted landing")
    repaired += restore_uploads(paths)
    releases = recover_releases(paths.releases, paths.catalog_url)
    return repaired + releases.repaired, releases.problems


def dead_runs(instance: DagsterInstance) -> list[tuple[str, int]]:
    """Runs marked started (or starting, canceling) whose process is gone: (run id, pid)."""
    from dagster import DagsterRunStatus, RunsFilter

    found = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus(s) for s in ACTIVE])):
        pid, started = run_process(instance, run.run_id)
        if pid is not None and not pid_alive(pid, started):
            found.append((run.run_id, pid))
    return found


def run_process(instance: DagsterInstance, run_id: str) -> tuple[int | None, datetime | None]:
    """The pid that started the run (every Dagster event records its process) and when."""
    from dagster import DagsterEventType

    for event_type in (DagsterEventType.RUN_START, DagsterEventType.RUN_STARTING):
        for entry in instance.all_logs(run_id, of_type=event_type):
            if entry.dagster_event is not None and entry.dagster_event.pid is not None:
                return entry.dagster_event.pid, datetime.fromtimestamp(entry.timestamp)
    return None, None


def held_slots(instance: DagsterInstance) -> list[str]:
    """Runs that hold or wait for a pool slot although they are finished (or gone)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    stale = []
    for run_id in sorted(storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            stale.append(run_id)
    return stale


def free_dead_runs(instance: DagsterInstance) -> list[str]:
    """Step 3: mark dead runs failed and free every slot a finished run holds; one line per repair."""
    lines = []
    for run_id, pid in dead_runs(instance):
        run = instance.get_run_by_id(run_id)
        if run is None:
            continue
        instance.report_run_failed(run, message=f"the process of this run (pid {pid}) is gone: marked failed by "
                                                "kouiki (crash recovery)")
        lines.append(f"Dagster run {run_id}: 実行プロセス (pid {pid}) がないため失敗扱い / process gone: marked "
                     "failed")
    for run_id in held_slots(instance):
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        lines.append(f"Dagster run {run_id}: 保持していた pool の枠を解放 / freed the pool slots it held")
    return lines


def recover_before_run(paths: Paths, instance: DagsterInstance) -> list[str]:
    """Everything above, before a run; returns every line (repairs, then problems left)."""
    repaired, problems = recover_files(paths)
    return free_dead_runs(instance) + repaired + problems
