"""Benchmark of the upload service (``python -m service``): many cities' clerks uploading at once.

1. Builds N distinct AED files of about S MB each from 狛江市's real rows (demo/uploads/132195), each row with
   its own ID, so every upload is new and is landed, detected and validated (Great Expectations) in full.
2. Starts the real server as its own process on a free 127.0.0.1 port with a fresh kouiki home
   (bench/.data/upload) and waits until validation is warm.
3. Sends all N uploads at once (multipart POST, one connection each), measures each one's latency until its
   validation result arrives, and samples the server's resident memory.

Run: .venv/bin/python bench/bench_upload.py [--uploads 50] [--size-mb 10] [--workers 2]
     → Markdown on stdout, JSON in bench/results/upload.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psutil  # noqa: E402

from kouiki.tokens import issue_token  # noqa: E402
from service.testing import catalog_url, run_service, write_members  # noqa: E402

BENCH = REPO / "bench"
HOME = BENCH / ".data" / "upload"
RESULTS = BENCH / "results" / "upload.json"
SOURCE = REPO / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
CITY = ("132195", "狛江市")


def build_files(folder: Path, count: int, size_mb: float) -> list[Path]:
    """``count`` AED files of about ``size_mb`` MB: the real rows repeated, IDs unique, each file different."""
    header, *rows = SOURCE.read_text(encoding="utf-8").splitlines()
    cells = [r.split(",", 2) for r in rows if r]         # code, ID, rest of the row
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(count):
        lines, size, row_id = [header], 0, 0
        while size < size_mb * 1_000_000:
            code, _, rest = cells[row_id % len(cells)]
            row_id += 1
            line = f"{code},{n * 10_000_000 + row_id},{rest}"
            lines.append(line)
            size += len(line.encode("utf-8")) + 2
        path = folder / f"aed_{n:03d}.csv"
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
        files.append(path)
    return files


class MemorySampler:
    """Peak resident memory of a process (and its children) while the benchmark runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss + sum(c.memory_info().rss for c in self.process.children())
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self._stop.wait(0.05)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def upload_all(url: str, token: str, files: list[Path]) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=len(files), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=httpx.Timeout(1800.0)) as client:
        return list(await asyncio.gather(*(upload_one(client, f) for f in files)))


async def upload_one(client: httpx.AsyncClient, path: Path) -> dict[str, Any]:
    content = path.read_bytes()
    started = time.perf_counter()
    try:
        response = await client.post("/api/uploads", files={"file": (path.name, content, "text/csv")})
    except httpx.HTTPError as exc:
        return {"file": path.name, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - started, "bytes": len(content)}
    seconds = time.perf_counter() - started
    doc = response.json()
    ok = response.status_code == 201
    summary = (doc.get("validation") or {}).get("summary") or {}
    return {"file": path.name, "ok": ok, "status": response.status_code, "seconds": seconds, "bytes": len(content),
            "rows": summary.get("rows_total"), "decision": summary.get("decision"),
            "error": None if ok else doc.get("error")}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--size-mb", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="uploads validated at once by the server")
    args = parser.parse_args()

    shutil.rmtree(HOME, ignore_errors=True)
    files = build_files(HOME / "files", args.uploads, args.size_mb)
    members = write_members(HOME / "members.yaml", [CITY])
    with run_service(HOME / "home", members, workers=args.workers, max_upload_mb=max(200, args.size_mb * 2),
                     wait_ready=True, timeout=180) as server:
        token = issue_token(catalog_url(server.home), CITY[0], "bench").token
        with MemorySampler(server.process.pid) as memory:
            started = time.perf_counter()
            results = asyncio.run(upload_all(server.url, token, files))
            wall = time.perf_counter() - started
        landed = sorted((server.home / "landing" / CITY[0]).glob("*.csv"))
        alive = server.alive()
    report = summarise(args, results, wall, memory.peak, len(landed), alive)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print(markdown(report))
    shutil.rmtree(HOME, ignore_errors=True)


def summarise(args: argparse.Namespace, results: list[dict[str, Any]], wall: float, peak_rss: int,
              landed: int, alive: bool) -> dict[str, Any]:
    latencies = [r["seconds"] for r in results]
    total_bytes = sum(r["bytes"] for r in results)
    errors = [r for r in results if not r["ok"]]
    return {
        "uploads": len(results),
        "file_mb": round(total_bytes / len(results) / 1e6, 2),
        "rows_per_file": results[0].get("rows"),
        "validation_workers": args.workers,
        "errors": len(errors),
        "error_samples": errors[:3],
        "latency_s": {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                      "p99": percentile(latencies, 99), "max": max(latencies), "mean": statistics.mean(latencies)},
        "wall_s": wall,
        "uploads_per_s": len(results) / wall,
        "mb_per_s": total_bytes / 1e6 / wall,
        "server_peak_rss_mb": round(peak_rss / 1e6, 1),
        "landed_files": landed,
        "server_alive_after": alive,
        "decisions": sorted({str(r.get("decision")) for r in results}),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }


def markdown(r: dict[str, Any]) -> str:
    lat = r["latency_s"]
    rows = [
        ("concurrent uploads", f"{r['uploads']} × {r['file_mb']} MB ({r['rows_per_file']:,} rows each)"),
        ("validation workers", str(r["validation_workers"])),
        ("errors (target 0)", str(r["errors"])),
        ("latency p50 / p90 / p99 / max",
         f"{lat['p50']:.1f} / {lat['p90']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} s"),
        ("wall time", f"{r['wall_s']:.1f} s"),
        ("throughput", f"{r['uploads_per_s']:.2f} uploads/s, {r['mb_per_s']:.1f} MB/s"),
        ("server peak RSS", f"{r['server_peak_rss_mb']:,.0f} MB"),
        ("files landed / server alive", f"{r['landed_files']} / {r['server_alive_after']}"),
    ]
    lines = ["| upload service | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
