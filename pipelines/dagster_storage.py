"""Dagster's own SQLite storage under the kouiki home, created so that a crash never leaves it half made.

Dagster creates its SQLite databases on first use and, for the event log's index (``history/runs/index.db``),
only when the file does not exist yet. A run killed while Dagster was creating them left an index without its
tables, and every later run failed ("requires the dynamic partitions table … run `dagster instance migrate`",
seen by bench/crash_harness.py with a kill 10 s into a first run). So kouiki creates the storage in a staging
folder, moves it into place and then writes a marker; a home without the marker is checked, and storage that a
crash left incomplete (with no run recorded in it) is set aside and made again. The caller holds the storage
lock (``kouiki.runlock.storage_init_lock``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

from kouiki.errors import ConfigError

READY_MARKER = ".kouiki-storage-ready"
STORAGE_DIRS = ("history", "schedules", "storage")
# database (relative to DAGSTER_HOME) → tables it must hold once Dagster has made it
REQUIRED_TABLES = {
    "history/runs.db": ("alembic_version", "runs"),
    "history/runs/index.db": ("alembic_version", "event_logs", "dynamic_partitions"),
    "schedules/schedules.db": ("alembic_version", "jobs"),
}


def ensure_sqlite_storage(dagster_home: Path) -> None:
    """Make sure Dagster's SQLite storage in ``dagster_home`` is complete, creating it atomically if needed."""
    marker = dagster_home / READY_MARKER
    if marker.exists():
        return
    for staging in dagster_home.glob(".staging-storage-*"):   # a creation killed before its move (we hold the lock)
        shutil.rmtree(staging, ignore_errors=True)
    if any((dagster_home / name).exists() for name in STORAGE_DIRS):
        missing = missing_tables(dagster_home)
        if not missing:
            _write_marker(marker)
            return
        if recorded_runs(dagster_home) > 0:
            raise ConfigError(
                f"{dagster_home}: Dagster の記録が不完全です（{', '.join(missing)}）— history/ と schedules/ を"
                "別の場所へ移すと作り直します（kouiki の記録はカタログにあり失われません）/ Dagster's storage is "
                f"incomplete ({', '.join(missing)}) — move history/ and schedules/ out of {dagster_home} and kouiki "
                "makes them again (kouiki's own records are in its catalog; Dagster's run history starts anew)")
        _set_aside(dagster_home)
    _create(dagster_home)
    _write_marker(marker)


def missing_tables(dagster_home: Path) -> list[str]:
    """``db:table`` for every required table that is not there (a whole missing database counts once)."""
    missing = []
    for relative, tables in REQUIRED_TABLES.items():
        path = dagster_home / relative
        if not path.exists():
            missing.append(relative)
            continue
        present = _tables(path)
        missing += [f"{relative}:{table}" for table in tables if table not in present]
    return missing


def recorded_runs(dagster_home: Path) -> int:
    """How many runs the storage holds (0 when it has no runs table: nothing to lose)."""
    path = dagster_home / "history" / "runs.db"
    if not path.exists() or "runs" not in _tables(path):
        return 0
    with _connect(path) as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


def _tables(path: Path) -> set[str]:
    try:
        with _connect(path) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:   # not a database at all (a file cut short): nothing usable in it
        return set()


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def _set_aside(dagster_home: Path) -> None:
    """Move what a crashed creation left into ``.incomplete-storage-<time>/`` (kept for a look, never read)."""
    aside = dagster_home / f".incomplete-storage-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    aside.mkdir()
    for name in STORAGE_DIRS:
        if (dagster_home / name).exists():
            (dagster_home / name).rename(aside / name)


def _create(dagster_home: Path) -> None:
    """Let Dagster make its databases in a staging folder beside the home, then move them into place."""
    from dagster import DagsterInstance

    staging = dagster_home / f".staging-storage-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if (dagster_home / "dagster.yaml").exists():
            shutil.copy2(dagster_home / "dagster.yaml", staging / "dagster.yaml")
        with DagsterInstance.from_config(str(staging)):
            pass
        for name in STORAGE_DIRS:
            if (staging / name).exists():
                (staging / name).rename(dagster_home / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_marker(marker: Path) -> None:
    staged = marker.with_name(f"{marker.name}.{os.getpid()}")
    staged.write_text("Dagster's storage here is complete (kouiki checked it).\n", encoding="utf-8")
    staged.replace(marker)
