"""Hostile API requests against a real server: every one is answered with CKAN's error envelope within 2 s,
and ordinary searches sent at the same time keep being answered (no stall). The p99 figure against the
100 ms target is measured by bench/bench_portal.py on a quiet machine; here the bar is "no stall"."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import SEARCH, build_catalogue, hostile_requests, serve

BUDGET_S = 2.0


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("hostile-home")
    build_catalogue(home / "releases", 60)
    with serve(create_app(PortalSettings(home=home))) as url:
        httpx.get(url + SEARCH, params={"rows": 100}, timeout=60)           # warm: index, package dicts
        yield url


def _is_ckan_error(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (response.status_code in (400, 404, 405, 409) and body.get("success") is False
            and bool(body.get("error", {}).get("__type")) and bool(body["error"].get("message")))


def test_there_are_more_than_sixty_kinds() -> None:
    assert len(hostile_requests()) >= 60


def test_hostile_requests_are_refused_quickly_without_stalling_others(base_url: str) -> None:
    attacks = hostile_requests()
    answers: list[tuple[str, float, httpx.Response]] = []
    lock = threading.Lock()

    def attack(share: list[tuple[str, str, dict[str, Any]]]) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for method, path, kwargs in share:
                started = time.perf_counter()
                response = client.request(method, path, **kwargs)
                elapsed = time.perf_counter() - started
                with lock:
                    answers.append((f"{method} {path} {str(kwargs)[:80]}", elapsed, response))

    normal: list[float] = []
    done = threading.Event()

    def search() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                response = client.get(SEARCH, params={"q": "AED", "fq": "organization:city-222127",
                                                      "rows": 10, "sort": "metadata_modified desc"})
                normal.append(time.perf_counter() - started)
                assert response.json()["result"]["count"] == 40

    searcher = threading.Thread(target=search)
    searcher.start()
    workers = [threading.Thread(target=attack, args=(attacks[i::6],)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    searcher.join()

    assert len(answers) == len(attacks)
    refused = [(what, elapsed) for what, elapsed, response in answers if not _is_ckan_error(response)]
    assert refused == []
    slow = [(what, round(elapsed, 2)) for what, elapsed, _ in answers if elapsed > BUDGET_S]
    assert slow == []
    # no stall: ordinary searches kept being answered while the batch ran
    assert len(normal) >= 5
    p99 = statistics.quantiles(normal, n=100)[98] if len(normal) >= 100 else max(normal)
    print(f"{len(answers)} hostile requests, slowest {max(e for _, e, _ in answers) * 1000:.0f} ms; "
          f"{len(normal)} ordinary searches meanwhile, p50 {statistics.median(normal) * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms")
    assert max(normal) < BUDGET_S
