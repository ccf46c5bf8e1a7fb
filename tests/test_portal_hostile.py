"""Hostile API requests against a real server: every one is answered with CKAN's error envelope within 2 s,
and ordinary searches sent at the same time keep being answered (no stall). The p99 figure against the
100 ms target is measured by bench/bench_portal.py on a quiet machine; here the bar is "no stall"."""

from __future__ import annotations

import json
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
from portal.testing import build_catalogue, serve

BUDGET_S = 2.0
SEARCH = "/api/3/action/package_search"


def hostile_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx keyword arguments) of requests meant to hurt, each of which must be refused."""
    deep = "(" * 10_000 + "a" + ")" * 10_000
    get = [
        {"q": "a" * 12_000}, {"q": "x" * 40_000}, {"fq": "name:" + "y" * 40_000}, {"q": deep},
        {"q": "(" * 17 + "a" + ")" * 17}, {"q": " OR ".join(["a"] * 1000)}, {"q": " ".join(["b"] * 300)},
        {"q": "a)"}, {"q": '"unterminated'}, {"q": '"""'}, {"q": "name:[a TO"}, {"q": "name:[a b]"},
        {"fq": "metadata_modified:[yesterday TO *]"}, {"fq": "metadata_modified:[NOW+99999999YEARS TO *]"},
        {"fq": "metadata_modified:[NOW-99999999999DAYS TO *]"}, {"fq": "num_resources:[abc TO *]"},
        {"fq": "title:[a TO b]"}, {"q": "nosuchfield:x"}, {"q": "*:x"}, {"q": "title:"}, {"q": "AND OR NOT"},
        {"q": "\\"}, {"q": "a AND"}, {"q": "f:[1 TO 2 TO 3]"},
        {"facet.field": "[bad"}, {"facet.field": '{"a": 1}'}, {"facet.field": json.dumps(["tags"] * 1000)},
        {"facet.field": '["notes"]'}, {"facet.limit": "abc"}, {"facet.mincount": "-5"},
        {"rows": "-1"}, {"rows": "abc"}, {"rows": "1e9"}, {"start": "-1"}, {"start": "9" * 5000},
        {"start": str(10**30)}, {"sort": "bogus asc"}, {"sort": "name asc; DROP TABLE docs"},
        {"sort": "name asc, " * 1000}, {"sort": "name sideways"}, {"fq_list": "[1, 2]"},
        {"fq_list": "not json ["}, {"fq_list": json.dumps(["name:a"] * 100)},
        {"fq_list": json.dumps(["z" * 5000])}, {"q": "\x00"}, {"fq": "name:\x00("},
    ]
    requests: list[tuple[str, str, dict[str, Any]]] = [("GET", SEARCH, {"params": p}) for p in get]
    post_json = [[1, 2], {"q": ["a"]}, {"q": {"a": 1}}, {"rows": [1]}, {"fq_list": {"x": 1}},
                 {"facet.field": 5}]
    requests += [("POST", SEARCH, {"json": body}) for body in post_json]
    requests += [
        ("POST", SEARCH, {"content": b"{", "headers": {"Content-Type": "application/json"}}),
        ("POST", SEARCH, {"content": b"[" * 200_000, "headers": {"Content-Type": "application/json"}}),
        ("POST", SEARCH, {"content": b"q=a", "headers": {"Content-Type": "text/plain"}}),
        ("PUT", SEARCH, {}),
        ("GET", "/api/3/action/no_such_action", {}),
        ("GET", "/api/3/action/", {}),
        ("GET", "/api/3/action/package_show", {}),
        ("GET", "/api/3/action/package_show", {"params": {"id": "../../etc/passwd"}}),
        ("GET", "/api/3/action/package_show", {"params": {"id": "a" * 10_000}}),
        ("GET", "/api/3/action/resource_show", {"params": {"id": "../../x-1-csv"}}),
        ("GET", "/api/3/action/datastore_search", {"params": {"resource_id": "nope-1-csv"}}),
        ("GET", "/api/3/action/datastore_search", {"params": {"resource_id": "aed-1-csv", "filters": "{"}}),
        ("GET", "/api/3/action/datastore_search",
         {"params": {"resource_id": "aed-1-csv", "sort": '"x"; DROP TABLE t'}}),
        ("GET", "/api/3/action/datastore_search", {"params": {"resource_id": "aed-1-csv", "offset": "9" * 40}}),
        ("GET", "/api/3/action/group_show", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/organization_show", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/tag_show", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/package_activity_list", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/help_show", {"params": {"name": "nope"}}),
    ]
    return requests


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
