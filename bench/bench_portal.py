"""Benchmark of the public portal (``python -m portal``) on a 1,000,000-row release.

1. Builds an AED-like release (Japanese text, 10 member cities, 1,000,000 rows) laid out as publish/release.py
   writes it, under bench/.data/portal (reused when already built with the same row count).
2. Starts the real server as its own process on a free 127.0.0.1 port.
3. datastore_search: 1,000 sequential calls over one keep-alive connection (limit 100, a random offset each,
   every other call filtered on one city's code, total counted every time), latency p50 / p90 / p99 / max.
4. Full downloads: the region CSV (and the Parquet file) streamed whole, 3 times each: MB/s and rows/s.

Run: .venv/bin/python bench/bench_portal.py [--rows N] [--calls N]
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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402
import httpx  # noqa: E402

from portal.testing import synthetic_aed, write_release  # noqa: E402

BENCH = REPO / "bench"
HOME = BENCH / ".data" / "portal"
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KOUIKI_HOME": str(HOME), "KOUIKI_PORT": str(port)}
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
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=1_000)
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
    report = {
        "rows": args.rows, "cities": len(CITIES), "datastore_search": search, "downloads": downloads,
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
