"""One ``kouiki run`` at a time per kouiki home, and whether a process is still alive.

The lock is an advisory lock (``flock``) on ``$KOUIKI_HOME/run.lock``; the kernel releases it when its holder
exits or is killed, so a crash never leaves a stale lock. The holder writes its pid into the file so a
waiting run can say whom it waits for.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psutil

LOCK_FILE = "run.lock"


def waiting_message(pid: int | None) -> str:
    who = f"pid {pid}" if pid else "pid ?"
    return (f"別の実行が進行中です（{who}）。終わるまで待ちます / another run is in progress ({who}), waiting")


@contextmanager
def run_lock(home: Path, say: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the home's run lock for the block; wait (saying so once) while another process holds it."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(waiting_message(lock_holder(home)))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # releases the lock


@contextmanager
def storage_init_lock(folder: Path) -> Iterator[None]:
    """A short lock for creating or migrating Dagster's storage in ``folder`` (DAGSTER_HOME): every kouiki
    command that opens the instance (run, doctor, rerun, members add) does it under this lock, so two never
    race the schema (two alembic heads, "table already exists")."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".kouiki-init.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def try_run_lock(home: Path) -> int | None:
    """Take the lock without waiting: the open descriptor (close it to release), or None when held."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lock_holder(home: Path) -> int | None:
    """The pid written by the lock's holder (or its last holder: only meaningful while the lock is held)."""
    try:
        text = (home / LOCK_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int, started_before: datetime | None = None) -> bool:
    """Whether ``pid`` is a running process; with ``started_before``, also one that existed by then (a pid
    reused by a process started later, e.g. after a reboot, is not the one we look for)."""
    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if started_before is not None and process.create_time() > started_before.timestamp() + 1:
            return False
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return True
