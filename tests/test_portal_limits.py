"""The public portal caps request heads as the upload service does (service/limits.py), against the real
``python -m portal`` process on 127.0.0.1: too many or too large headers get 431, and a 200 MB header is refused
quickly without delaying anybody else's request."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from kouiki.settings import REPO_ROOT
from service.testing import free_port

STATUS = "/api/3/action/status_show"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("portal-limits")
    port = free_port()
    env = {**os.environ, "KOUIKI_HOME": str(home), "KOUIKI_PORT": str(port)}
    log = (home / "portal.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "portal"], cwd=REPO_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + STATUS, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (home / "portal.log").read_text(errors="replace")
            time.sleep(0.5)
        else:
            pytest.fail("the portal did not start: " + (home / "portal.log").read_text(errors="replace")[-2000:])
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _status_line(sock: socket.socket) -> str:
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def _request_with_headers(url: str, headers: list[tuple[str, str]]) -> str:
    with socket.create_connection(_address(url), timeout=10) as sock:
        head = f"GET {STATUS} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        sock.sendall((head + "\r\n").encode("ascii"))
        return _status_line(sock)


def test_ordinary_requests_pass_and_too_many_or_too_large_headers_get_431(portal: str) -> None:
    assert _request_with_headers(portal, [(f"X-H{i}", "v" * 100) for i in range(90)]) == "HTTP/1.1 200 OK"
    assert _request_with_headers(portal, [(f"X-H{i}", "v") for i in range(150)]).startswith("HTTP/1.1 431")
    assert _request_with_headers(portal, [("X-Big", "v" * 70_000)]).startswith("HTTP/1.1 431")


def test_a_200_mb_header_is_refused_quickly_and_delays_nobody(portal: str) -> None:
    outcome: dict[str, object] = {}

    def huge_header() -> None:
        started = time.monotonic()
        with socket.create_connection(_address(portal), timeout=30) as sock:
            try:
                sock.sendall(f"GET {STATUS} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".encode())
                chunk = b"a" * (1 << 20)
                for _ in range(200):
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                outcome["cut_after_s"] = time.monotonic() - started
            outcome["answer"] = _status_line(sock)
            outcome["seconds"] = time.monotonic() - started

    sender = threading.Thread(target=huge_header)
    sender.start()
    latencies: list[float] = []
    with httpx.Client(timeout=10) as client:
        while sender.is_alive() or len(latencies) < 5:
            started = time.monotonic()
            assert client.get(portal + STATUS).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
    sender.join(timeout=60)
    # refused (431) or cut off long before 200 MB were read; the portal answered everyone else meanwhile
    assert str(outcome.get("answer", "")).startswith("HTTP/1.1 431") or "cut_after_s" in outcome, outcome
    assert float(outcome["seconds"]) < 10, outcome  # type: ignore[arg-type]
    assert max(latencies) < 2.0, latencies

