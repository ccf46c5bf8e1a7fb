"""The public portal caps request heads as the upload service does (service/limits.py), against the real
``python -m portal`` process on 127.0.0.1: too many or too large headers get 431, and a 200 MB header is refused
quickly without delaying anybody else's request."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from tools.raw_http import HugeHeader, request_with_headers, send_huge_header

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


def _request_with_headers(url: str, headers: list[tuple[str, str]]) -> str:
    return request_with_headers(url, STATUS, headers)


def test_ordinary_requests_pass_and_too_many_or_too_large_headers_get_431(portal: str) -> None:
    assert _request_with_headers(portal, [(f"X-H{i}", "v" * 100) for i in range(90)]) == "HTTP/1.1 200 OK"
    assert _request_with_headers(portal, [(f"X-H{i}", "v") for i in range(150)]).startswith("HTTP/1.1 431")
    assert _request_with_headers(portal, [("X-Big", "v" * 70_000)]).startswith("HTTP/1.1 431")


def test_a_200_mb_header_is_refused_quickly_and_delays_nobody(portal: str) -> None:
    outcome: list[HugeHeader] = []
    sender = threading.Thread(target=lambda: outcome.append(send_huge_header(portal, STATUS, 200)))
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
    [huge] = outcome
    assert huge.answer.startswith("HTTP/1.1 431") or huge.cut_after_s is not None, huge
    assert huge.seconds < 10, huge
    assert max(latencies) < 2.0, latencies

