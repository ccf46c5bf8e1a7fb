"""The real upload service in its own process, for tests and the benchmark: ``python -m service`` on a free
127.0.0.1 port with a given kouiki home and member registry."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from kouiki.settings import REPO_ROOT


@dataclass(frozen=True)
class RunningService:
    url: str
    home: Path
    members_file: Path
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""


def write_members(path: Path, cities: list[tuple[str, str]]) -> Path:
    """A member registry listing ``(code, name)`` cities."""
    lines = ["# test registry", "members:"]
    for code, name in cities:
        lines += [f'  - code: "{code}"', f"    name: {name}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def catalog_url(home: Path) -> str:
    """The catalog the service started by :func:`run_service` uses (SQLite under its home)."""
    return f"sqlite:///{home / 'catalog.sqlite'}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_service(home: Path, members_file: Path, *, max_upload_mb: float | None = None, workers: int | None = None,
                wait_ready: bool = False, timeout: float = 90.0) -> Iterator[RunningService]:
    """Start ``python -m service``; yields once it answers (and, with ``wait_ready``, once validation is
    warm). Stops the process group afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "KOUIKI_HOME": str(home), "KOUIKI_MEMBERS": str(members_file),
           "KOUIKI_SERVICE_PORT": str(port), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("KOUIKI_CATALOG_URL", None)
    if max_upload_mb is not None:
        env["KOUIKI_MAX_UPLOAD_MB"] = str(max_upload_mb)
    if workers is not None:
        env["KOUIKI_SERVICE_WORKERS"] = str(workers)
    log = home / "service.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO_ROOT, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningService(f"http://127.0.0.1:{port}", home, members_file, process, log)
    try:
        _wait(running, timeout, ready=wait_ready)
        yield running
    finally:
        _stop(process)


def _wait(running: RunningService, timeout: float, *, ready: bool) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running.alive():
            raise RuntimeError(f"the upload service exited:\n{running.log_tail()}")
        try:
            health = httpx.get(f"{running.url}/api/health", timeout=2.0).json()
            if not ready or health.get("ready"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the upload service did not start in {timeout:.0f} s:\n{running.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
