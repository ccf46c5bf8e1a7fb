"""The upload service's request-head limits (service/limits.py), against the real ``python -m service``
process on 127.0.0.1: a 100 MB header and a trickling (slowloris) request never delay the health check."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tools.raw_http import HugeHeader, address, request_with_headers, send_huge_header, status_line

from service.testing import RunningService, run_service, write_members

HEAD_TIMEOUT_S = 2.0
HEALTH = "/api/health"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    root = tmp_path_factory.mktemp("limits")
    members = write_members(root / "members.yaml", [("132195", "狛江市")])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOUIKI_HEADER_TIMEOUT_S", str(HEAD_TIMEOUT_S))
        with run_service(root / "home", members) as running:
            yield running


def _request_with_headers(service: RunningService, headers: list[tuple[str, str]]) -> str:
    return request_with_headers(service.url, HEALTH, headers)


def test_ordinary_requests_with_many_headers_still_pass(service: RunningService) -> None:
    assert _request_with_headers(service, [(f"X-H{i}", "v" * 100) for i in range(90)]) == "HTTP/1.1 200 OK"


def test_too_many_or_too_large_headers_get_431(service: RunningService) -> None:
    assert _request_with_headers(service, [(f"X-H{i}", "v") for i in range(150)]).startswith("HTTP/1.1 431")
    assert _request_with_headers(service, [("X-Big", "v" * 70_000)]).startswith("HTTP/1.1 431")


def test_huge_and_slow_requests_never_delay_the_health_check(service: RunningService) -> None:
    outcome: dict[str, object] = {}

    def huge_header() -> None:
        """100 MB of one header, sent as fast as the server takes it."""
        outcome["huge"] = send_huge_header(service.url, HEALTH, 100)

    def slow_header() -> None:
        """One byte every 0.2 s, never finishing the head."""
        started = time.monotonic()
        with socket.create_connection(address(service.url), timeout=30) as sock:
            try:
                for byte in f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode() + b"s" * 200:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
            outcome["slow"] = status_line(sock)
            outcome["slow_s"] = time.monotonic() - started

    threads = [threading.Thread(target=huge_header), threading.Thread(target=slow_header)]
    for t in threads:
        t.start()
    latencies: list[float] = []
    with httpx.Client(timeout=10) as client:
        while any(t.is_alive() for t in threads) and len(latencies) < 200:
            started = time.monotonic()
            assert client.get(f"{service.url}/api/health").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)
    for t in threads:
        t.join(timeout=30)
    assert len(latencies) >= 5
    assert max(latencies) < 1.0, latencies
    # the huge header was refused (431) or cut off long before 100 MB were read
    huge = outcome["huge"]
    assert isinstance(huge, HugeHeader), outcome
    assert huge.answer.startswith("HTTP/1.1 431") or huge.cut_after_s is not None, outcome
    # the trickling request was answered 408 once the head timeout passed, not kept open
    assert str(outcome["slow"]).startswith("HTTP/1.1 408"), outcome
    assert HEAD_TIMEOUT_S <= float(outcome["slow_s"]) < HEAD_TIMEOUT_S + 5, outcome  # type: ignore[arg-type]


def test_a_bad_limit_setting_is_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from kouiki.settings import REPO_ROOT

    env = {**os.environ, "KOUIKI_HOME": str(tmp_path), "KOUIKI_MAX_HEADER_KB": "lots"}
    done = subprocess.run([sys.executable, "-m", "service"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "KOUIKI_MAX_HEADER_KB" in done.stderr and "Traceback" not in done.stderr
