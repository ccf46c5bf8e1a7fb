"""The real Dagster daemon in its own process, for tests and benchmarks: ``kouiki daemon`` (dagster.yaml,
partitions, then ``dagster-daemon run``) with a given kouiki home, member registry and automation settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from kouiki.settings import REPO_ROOT


@dataclass(frozen=True)
class RunningDaemon:
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""


def write_automation(path: Path, interval_seconds: int = 2, **runs: int) -> Path:
    """An automation settings file with short sensor intervals (tests); ``runs`` overrides run settings."""
    lines = ["sensors:", f"  upload_interval_seconds: {interval_seconds}",
             f"  automation_interval_seconds: {interval_seconds}", f"  members_interval_seconds: {interval_seconds}"]
    if runs:
        lines += ["runs:", *(f"  {key}: {value}" for key, value in runs.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def daemon_env(home: Path, members_file: Path, automation_file: Path) -> dict[str, str]:
    env = {**os.environ, "KOUIKI_HOME": str(home), "KOUIKI_MEMBERS": str(members_file),
           "KOUIKI_AUTOMATION": str(automation_file), "DAGSTER_HOME": str(home / "dagster"),
           "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("KOUIKI_CATALOG_URL", None)
    return env


@contextmanager
def run_daemon(home: Path, members_file: Path, automation_file: Path) -> Iterator[RunningDaemon]:
    """Start ``kouiki daemon`` in its own process group; stops the whole group (daemon, code server, run
    workers) afterwards, even when the test fails."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "daemon.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "commands.cli", "daemon"], cwd=REPO_ROOT,
                                   env=daemon_env(home, members_file, automation_file), stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield RunningDaemon(home, process, log)
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL after 20 s (``dagster-daemon`` may wait for its threads)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)   # run workers of the group that outlived the daemon
    process.wait(timeout=10)
