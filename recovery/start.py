"""What the start of every ``kouiki run`` repairs after a crash (and ``kouiki doctor --repair`` too):

1. leftovers: temporary lake files, landing files and ``.incomplete-*`` release folders of dead processes;
2. landed files changed after landing: an upload still to be processed whose bytes no longer match the
   sha256 in their name is refused (never read), one line naming the file (``refuse_changed_uploads``; the lake
   asset checks the uploads it is about to read the same way, so a daemon's run does too);
3. the catalog: landed uploads it lacks (lost or rebuilt catalog) from their manifests, releases it lacks from
   the release folders, ``latest.json`` pointing to the newest complete release (``publish.recover``); with
   ``KOUIKI_LAKE_URL`` set, the manifests and releases there count too (releases the home lacks are fetched
   first, checked against their metadata.json: ``publish.remote``);
4. Dagster: runs still marked started whose process is gone are marked failed, and the pool slots
   (``duckdb_warehouse``) they or any finished run hold are freed, so later runs never wait for a dead one.

Called under the run lock (``kouiki.runlock``), so no other ``kouiki run`` is writing meanwhile; the pieces
that could race with a live writer (a daemon's run, the upload service) only touch what a dead pid left.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from intake.landing import (
    CHANGED_CODE,
    LandedFileChanged,
    changed_detail,
    landed_files,
    landing_leftovers,
    local_copy,
    restore_uploads,
    sha256_of,
)
from kouiki import catalog, lake
from kouiki.catalog import UploadStatus
from kouiki.runlock import pid_alive
from kouiki.settings import Paths
from publish.recover import recover_releases
from publish.remote import Pulled, pull_releases

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
    pulled = pull_releases(paths.remote_releases, paths.releases) if paths.remote_releases else Pulled()
    releases = recover_releases(paths.releases, paths.catalog_url)
    pending = [u for u in catalog.list_uploads(paths.catalog_url) if u.status == UploadStatus.LANDED]
    changed = refuse_changed_uploads(paths, pending)
    changed += changed_landed_files(paths, skip={paths.home / u.stored_path for u in pending})
    return repaired + pulled.pulled + releases.repaired, pulled.problems + releases.problems + changed


__all__ = ["CHANGED_CODE", "recover_files", "refuse_changed_uploads"]
VERIFIED = "landing-verified.json"   # under $KOUIKI_HOME/tmp: landed file → (size, mtime_ns) last verified


def changed_landed_files(paths: Paths, skip: set[Path] | None = None) -> list[str]:
    """Landed files (processed or refused ones: ``skip`` the ones just checked) whose bytes no longer match the
    sha256 in their name, one line each, at every start until the file is restored.

    A file is hashed again only when its size or modification time differs from when it was last verified, so a
    run's start costs a stat per file; ``kouiki doctor`` hashes every file. A processed upload's rows were read
    from the original bytes, so nothing published changes: the line says to restore the file from a backup."""
    import json

    state_file = paths.home / "tmp" / VERIFIED
    try:
        verified = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        verified = {}
    now_ok: dict[str, list[int]] = {}
    lines = []
    for landed in landed_files(paths):
        if skip and landed in skip:
            continue
        stat = landed.stat()
        key, seen = str(landed.relative_to(paths.home)), [stat.st_size, stat.st_mtime_ns]
        if verified.get(key) == seen or sha256_of(landed) == landed.name.split(".", 1)[0]:
            now_ok[key] = seen
            continue
        lines.append(f"{landed}: 受付後に内容が変わっています（sha256 が名前と不一致）— バックアップから戻してください"
                     f" / changed after landing (sha256 does not match its name): restore it from a backup")
    state_file.parent.mkdir(parents=True, exist_ok=True)
    staged = state_file.with_name(f".{VERIFIED}.{os.getpid()}")
    staged.write_text(json.dumps(now_ok), encoding="utf-8")
    staged.replace(state_file)
    return lines


def refuse_changed_uploads(paths: Paths, uploads: list[catalog.UploadRow]) -> list[str]:
    """Refuse every upload in ``uploads`` whose landed file no longer has the bytes its name (sha256) says:
    changed or damaged after landing, so it is not what the city sent. Its status becomes ``unreadable`` with
    the reason, and it is never read; the file stays where it is for whoever looks into it. Restored from a
    backup, ``kouiki upload rerun CITY`` puts it back to ``landed`` and the next run checks it again (so does a
    rebuilt catalog: restored uploads are ``landed``). With ``KOUIKI_LAKE_URL`` set, an upload this home lacks
    is fetched from ``<url>/landing`` first and refused the same way when that object is not its bytes.
    Returns one line per upload refused, naming the file or the object."""
    lines = []
    for upload in uploads:
        fetched = not (paths.home / upload.stored_path).is_file()
        try:
            landed = local_copy(paths, upload.stored_path)   # from KOUIKI_LAKE_URL when this home lacks it
        except LandedFileChanged as exc:
            _refuse(paths, upload)
            lines.append(f"{exc} — アップロード {upload.upload_id}: 正しい原本を戻して kouiki upload rerun "
                         f"{upload.city_code} / upload {upload.upload_id}: put the original back, then kouiki upload "
                         f"rerun {upload.city_code}")
            continue
        if not landed.is_file() or fetched or sha256_of(landed) == upload.sha256:
            continue   # a missing file is kouiki doctor's to report; a fetched one was checked on the way
        _refuse(paths, upload)
        lines.append(f"{landed}: 受付後に内容が変わっています（sha256 が名前と不一致）。アップロード "
                     f"{upload.upload_id} は使いません — バックアップから戻して kouiki upload rerun "
                     f"{upload.city_code} / changed after landing (sha256 does not match its name): upload "
                     f"{upload.upload_id} is not used; restore it from a backup, then kouiki upload rerun "
                     f"{upload.city_code}")
    return lines


def _refuse(paths: Paths, upload: catalog.UploadRow) -> None:
    """The upload's status becomes ``unreadable``, with the reason: its bytes are not what the city sent."""
    catalog.set_upload_status(paths.catalog_url, upload.upload_id, UploadStatus.UNREADABLE, detail=changed_detail())


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
