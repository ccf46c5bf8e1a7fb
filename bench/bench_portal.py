"""Benchmark of the public portal (``python -m portal``) on a 1,000,000-row release.

1. Builds an AED-like release (Japanese text, 10 member cities, 1,000,000 rows) laid out as publish/release.py
   writes it, under bench/.data/portal (reused when already built with the same row count).
2. Starts the real server as its own process on a free 127.0.0.1 port.
3. datastore_search: 1,000 sequential calls over one keep-alive connection (limit 100, a random offset each,
   every other call filtered on one city's code, total counted every time), latency p50 / p90 / p99 / max.
4. Full downloads: the region CSV (and the Parquet file) streamed whole, 3 times each: MB/s and rows/s.
5. package_search on a catalogue of 1,000 datasets (bench/.data/portal-catalogue, built once): a mix of what
   clients send (free text in Japanese, organisation / group fq with OR, metadata_modified ranges, the
   harvester's sort=id asc paging with rows=100, facets), p50 / p99 over ``--searches`` calls.
6. The same ordinary search repeated while 6 threads send every hostile request of portal.testing
   (71 kinds: 40 KB queries, 10,000 nested parentheses, bad JSON, …): each must come back as a CKAN error
   within 2 s; the ordinary search's p99 during the batch (target < 100 ms).

Run: .venv/bin/python bench/bench_portal.py [--rows N] [--calls N] [--datasets N] [--searches N]
     → Markdown on stdout, JSON in bench/results/portal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import httpx  # noqa: E402

from portal.testing import SEARCH, build_catalogue, hostile_requests, synthetic_aed, write_release  # noqa: E402

BENCH = REPO / "bench"
HOME = BENCH / ".data" / "portal"
CATALOGUE_HOME = BENCH / ".data" / "portal-catalogue"
RESULTS = BENCH / "results" / "portal.json"
DATASET = "aed"
CITIES = [("122033", "市川市"), ("222127", "焼津市"), ("132195", "狛江市"), ("011002", "札幌市"),
          ("131016", "千代田区"), ("141003", "横浜市"), ("231002", "名古屋市"), ("271004", "大阪市"),
          ("401005", "北九州市"), ("472018", "那覇市")]
PAGE = 100
SEED = 2026


def build_release(rows: int) -> Path:
    """The release folder of a ``rows``-row AED-like dataset (built once, reused while the size matches)."""
    dataset_root = HOME / "releases" / DATASET
    latest = dataset_root / "latest.json"
    if latest.exists() and json.loads(latest.read_text(encoding="utf-8")).get("rows") == rows:
        return dataset_root / str(json.loads(latest.read_text(encoding="utf-8"))["number"])
    shutil.rmtree(HOME, ignore_errors=True)
    started = time.perf_counter()
    frame = synthetic_aed(rows, CITIES)
    folder = write_release(HOME / "releases", DATASET, frame, city_column="全国地方公共団体コード",
                           title_ja="AED設置箇所一覧", title_en="AED locations")
    print(f"built {rows:,} rows in {time.perf_counter() - started:.1f} s → {folder}", file=sys.stderr)
    return folder


def build_catalogue_home(datasets: int) -> Path:
    """A catalogue of ``datasets`` small releases (built once, reused while the count matches)."""
    stamp = CATALOGUE_HOME / "datasets.txt"
    if stamp.exists() and stamp.read_text(encoding="utf-8").strip() == str(datasets):
        return CATALOGUE_HOME
    shutil.rmtree(CATALOGUE_HOME, ignore_errors=True)
    started = time.perf_counter()
    build_catalogue(CATALOGUE_HOME / "releases", datasets)
    stamp.write_text(str(datasets), encoding="utf-8")
    print(f"built {datasets:,} datasets in {time.perf_counter() - started:.1f} s → {CATALOGUE_HOME}",
          file=sys.stderr)
    return CATALOGUE_HOME


SEARCH_MIX: list[dict[str, Any]] = [
    {"q": "AED設置"}, {"q": "避難 OR 病院"}, {"q": "title:\"設置箇所\" AND -name:aed"},
    {"fq": "organization:city-132195 OR organization:city-222127", "rows": 20},
    {"fq": "groups:safety", "facet.field": '["organization", "res_format", "tags"]', "facet.limit": -1},
    {"fq": "metadata_modified:[2026-04-01T12:00:00Z TO *]", "sort": "metadata_modified desc"},
    {"q": "*:*", "sort": "title_string asc", "rows": 50},
    {"q": "aed*", "fq": "num_resources:[5 TO *]"},
]


def bench_package_search(client: httpx.Client, datasets: int, searches: int) -> dict[str, Any]:
    """``searches`` package_search calls cycling through SEARCH_MIX and the harvester's paging."""
    rng = random.Random(SEED)
    pages = max(1, -(-datasets // 100))
    for _ in range(3):  # warm-up: the index and every package dict
        for page in range(pages):
            client.get(SEARCH, params={"rows": 100, "start": page * 100, "sort": "id asc"})
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    for call in range(searches):
        params: dict[str, Any]
        if call % (len(SEARCH_MIX) + 1) == len(SEARCH_MIX):
            kind, params = "harvester page (rows=100, sort=id asc)", {
                "rows": 100, "start": rng.randrange(pages) * 100, "sort": "id asc"}
        else:
            params = SEARCH_MIX[call % (len(SEARCH_MIX) + 1)]
            kind = " ".join(f"{k}={v}" for k, v in params.items())[:60]
        started = time.perf_counter()
        response = client.get(SEARCH, params=params)
        latencies.append((time.perf_counter() - started) * 1000)
        by_kind.setdefault(kind, []).append(latencies[-1])
        assert response.status_code == 200 and response.json()["success"], response.text[:300]
    return {"datasets": datasets, "calls": searches, "p50_ms": percentile(latencies, 0.50),
            "p90_ms": percentile(latencies, 0.90), "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies), "calls_per_s": searches / (sum(latencies) / 1000),
            "by_kind": {k: {"p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)}
                        for k, v in by_kind.items()}}


def bench_hostile(base_url: str, rounds: int = 3) -> dict[str, Any]:
    """Every hostile request ``rounds`` times from 6 threads, while one thread repeats an ordinary search."""
    attacks = hostile_requests() * rounds
    hostile: list[tuple[float, bool]] = []
    normal: list[float] = []
    done = threading.Event()

    def attack(share: list[tuple[str, str, dict[str, Any]]]) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for method, path, kwargs in share:
                started = time.perf_counter()
                response = client.request(method, path, **kwargs)
                elapsed = time.perf_counter() - started
                try:
                    body = response.json()
                    ckan_error = body.get("success") is False and bool(body.get("error", {}).get("__type"))
                except ValueError:
                    ckan_error = False
                hostile.append((elapsed * 1000, ckan_error and response.status_code < 500))

    def search() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                client.get(SEARCH, params={"q": "AED", "fq": "organization:city-222127", "rows": 10})
                normal.append((time.perf_counter() - started) * 1000)

    searcher = threading.Thread(target=search)
    searcher.start()
    workers = [threading.Thread(target=attack, args=(attacks[i::6],)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    searcher.join()
    return {"kinds": len(hostile_requests()), "requests": len(hostile),
            "ckan_errors": sum(ok for _, ok in hostile), "max_ms": max(ms for ms, _ in hostile),
            "over_2s": sum(ms > 2000 for ms, _ in hostile), "normal_searches": len(normal),
            "normal_p50_ms": percentile(normal, 0.5), "normal_p99_ms": percentile(normal, 0.99),
            "normal_max_ms": max(normal)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, home: Path = HOME) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KOUIKI_HOME": str(home), "KOUIKI_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "portal"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/3/action/status_show", timeout=2)
            return process
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError("the portal exited during start-up") from None
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the portal did not answer within 60 s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_search(client: httpx.Client, rows: int, calls: int) -> dict[str, Any]:
    """``calls`` sequential datastore_search calls: random offsets, every other call filtered on a city."""
    rng = random.Random(SEED)
    resource_id = f"{DATASET}-1-csv"
    for _ in range(5):   # warm-up: connection, Parquet metadata, first query plans
        client.get("/api/3/action/datastore_search", params={"resource_id": resource_id, "limit": PAGE})
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {"whole table": [], "filtered by city": []}
    returned = 0
    for call in range(calls):
        params: dict[str, Any] = {"resource_id": resource_id, "limit": PAGE}
        if call % 2:
            code = CITIES[rng.randrange(len(CITIES))][0]
            params["filters"] = json.dumps({"全国地方公共団体コード": code}, ensure_ascii=False)
            params["offset"] = rng.randrange(rows // len(CITIES) - PAGE)
        else:
            params["offset"] = rng.randrange(rows - PAGE)
        started = time.perf_counter()
        response = client.get("/api/3/action/datastore_search", params=params)
        latencies.append((time.perf_counter() - started) * 1000)
        by_kind["filtered by city" if call % 2 else "whole table"].append(latencies[-1])
        result = response.json()["result"]
        assert len(result["records"]) == PAGE and result["total"] > 0, result.get("total")
        returned += len(result["records"])
    return {"calls": calls, "rows_per_call": PAGE, "rows_returned": returned,
            "p50_ms": percentile(latencies, 0.50), "p90_ms": percentile(latencies, 0.90),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies),
            "mean_ms": statistics.fmean(latencies), "calls_per_s": calls / (sum(latencies) / 1000),
            "by_kind": {kind: {"p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)}
                        for kind, v in by_kind.items() if v}}


def bench_download(client: httpx.Client, release: Path, path: str, rows: int, repeats: int = 3
                   ) -> dict[str, Any]:
    """Stream ``path`` whole ``repeats`` times; the median run's throughput."""
    expected = (release / path).stat().st_size
    seconds: list[float] = []
    for _ in range(repeats):
        received = 0
        started = time.perf_counter()
        with client.stream("GET", f"/download/{DATASET}/{release.name}/{path}") as response:
            response.raise_for_status()
            for chunk in response.iter_raw(1 << 20):
                received += len(chunk)
        seconds.append(time.perf_counter() - started)
        assert received == expected, (received, expected)
    median = statistics.median(seconds)
    return {"file": path, "bytes": expected, "seconds_median": median, "seconds_all": seconds,
            "mb_per_s": expected / 1e6 / median, "rows_per_s": rows / median}


def markdown(report: dict[str, Any]) -> str:
    search, downloads = report["datastore_search"], report["downloads"]
    lines = [
        f"### Portal on {report['rows']:,} rows ({report['machine']['cpus']} cores, Python "
        f"{report['machine']['python']}, DuckDB {report['machine']['duckdb']}, load average "
        f"{report['load_average_1min']['before']:.1f} → {report['load_average_1min']['after']:.1f})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| datastore_search calls (limit {PAGE}, random offset, every 2nd filtered by city) "
        f"| {search['calls']:,} |",
        f"| latency p50 | {search['p50_ms']:.1f} ms |",
        f"| latency p90 | {search['p90_ms']:.1f} ms |",
        f"| latency p99 | {search['p99_ms']:.1f} ms |",
        f"| latency max | {search['max_ms']:.1f} ms |",
        f"| sequential throughput | {search['calls_per_s']:.0f} calls/s |",
    ]
    for kind, figures in search["by_kind"].items():
        lines.append(f"| {kind}: p50 / p99 | {figures['p50_ms']:.1f} / {figures['p99_ms']:.1f} ms |")
    for item in downloads:
        lines.append(f"| download {item['file']} ({item['bytes'] / 1e6:.0f} MB) "
                     f"| {item['mb_per_s']:.0f} MB/s, {item['rows_per_s'] / 1e6:.2f} M rows/s "
                     f"({item['seconds_median']:.2f} s) |")
    packages, hostile = report.get("package_search"), report.get("hostile")
    if packages:
        lines += [
            f"| package_search on {packages['datasets']:,} datasets ({packages['calls']:,} calls, mixed "
            f"queries) p50 / p99 | {packages['p50_ms']:.1f} / {packages['p99_ms']:.1f} ms |"]
        lines += [f"| &nbsp;&nbsp;{kind}: p50 / p99 | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} ms |"
                  for kind, f in packages["by_kind"].items()]
    if hostile:
        lines += [
            f"| hostile requests ({hostile['kinds']} kinds × {hostile['requests'] // hostile['kinds']}, "
            f"6 threads): CKAN errors / slowest | {hostile['ckan_errors']}/{hostile['requests']} / "
            f"{hostile['max_ms']:.0f} ms |",
            f"| ordinary search during the hostile batch ({hostile['normal_searches']} calls) p50 / p99 "
            f"| {hostile['normal_p50_ms']:.1f} / {hostile['normal_p99_ms']:.1f} ms |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--datasets", type=int, default=1_000)
    parser.add_argument("--searches", type=int, default=1_000)
    args = parser.parse_args()
    release = build_release(args.rows)
    load_before = os.getloadavg()[0]
    port = free_port()
    server = start_server(port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            search = bench_search(client, args.rows, args.calls)
            downloads = [bench_download(client, release, f"{DATASET}.csv", args.rows),
                         bench_download(client, release, f"{DATASET}.parquet", args.rows)]
    finally:
        server.terminate()
        server.wait(timeout=20)
    catalogue_home = build_catalogue_home(args.datasets)
    port = free_port()
    server = start_server(port, catalogue_home)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            packages = bench_package_search(client, args.datasets, args.searches)
        hostile = bench_hostile(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=20)
    report = {
        "rows": args.rows, "cities": len(CITIES), "datastore_search": search, "downloads": downloads,
        "package_search": packages, "hostile": hostile,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
                    "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # the machine is shared: a 1-minute load average well above the core count inflates every figure
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(markdown(report))


if __name__ == "__main__":
    main()
