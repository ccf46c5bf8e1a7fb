"""Crash harness: kill ``kouiki run`` and check that a rerun ends exactly where an uninterrupted run does.

Every case runs the real ``kouiki run`` on the demo (its three cities, the anonymisation job included) in a
fresh temporary ``KOUIKI_HOME`` with its own Dagster storage:

- ``point``: the run ends itself (``os._exit``, like SIGKILL) at a named step boundary of the lake, landing or
  publication code (``KOUIKI_CRASH_AT=<point>:<n>``, see ``kouiki/crashpoints.py``); every point a real run
  reaches is listed first by tracing the baseline run;
- ``random``: the run's process group gets SIGKILL after a random delay within the baseline's duration;
- ``pair``: two runs started together on the same fresh home (they must queue on the run lock).

After a crash the harness runs ``kouiki run`` again to completion, then compares the home with the baseline
run's: releases (every file's sha256; metadata.json, latest.json without timestamps), lake partitions (rows,
without timestamp columns) and catalog (uploads, releases). Each run has a timeout: a run over it is a hang.
Finally ``kouiki doctor`` must find no problem (storage, leftovers, dead runs, pool slots).

    .venv/bin/python bench/crash_harness.py                      # 30 random kills, every point, 20 pairs
    .venv/bin/python bench/crash_harness.py --random 3 --pairs 1 --points lake.written publish.renamed

Results: ``bench/results/crash_harness.json`` (figures in the bench result shape) and one JSON line per case
in ``bench/results/crash_harness.jsonl`` as they finish.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
KOUIKI = [str(REPO / ".venv" / "bin" / "kouiki")]
# Values that differ between two correct runs: when something happened, not what.
TIMESTAMP_KEYS = {"published_at", "received_at", "validated_at", "updated_at", "generated_at", "at"}
# Releases whose row order is random by design: an anonymised extract's rows are shuffled with a fresh secret seed
# each time it is staged (README, kouiki anonymise). Two correct runs publish the same rows in another order, so
# these are compared as row multisets, and their byte checksums are left out.
SHUFFLED_SUFFIX = "_anonymised"
CHECKSUM_KEYS = {"content_hash", "sha256", "bytes"}   # a compressed Parquet file's size depends on the order


@dataclass
class RunResult:
    returncode: int | None      # None: killed by the harness (random case) or timed out
    seconds: float
    hung: bool = False
    output_tail: str = ""


@dataclass
class Case:
    kind: str                   # baseline, point, random, pair
    name: str
    crash: RunResult | None = None
    reruns: list[RunResult] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    doctor_problems: list[str] = field(default_factory=list)
    failed_steps: int = 0
    error: str = ""

    @property
    def hung(self) -> bool:
        return any(r.hung for r in [*([self.crash] if self.crash else []), *self.reruns])

    @property
    def ok(self) -> bool:
        return (not self.differences and not self.hung and not self.error and not self.doctor_problems
                and self.failed_steps == 0 and all(r.returncode == 0 for r in self.reruns))


# --- running kouiki ------------------------------------------------------------------------------------

def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KOUIKI_") and k not in ("DAGSTER_HOME",)}
    return {**env, "KOUIKI_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


def start(home: Path, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    log = (home.parent / f"{home.name}.log").open("ab")
    return subprocess.Popen([*KOUIKI, *args], cwd=REPO, env=environment(home, **extra), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def finish(process: subprocess.Popen[bytes], started: float, timeout: float, home: Path) -> RunResult:
    try:
        code = process.wait(timeout=max(0.0, timeout - (time.monotonic() - started)))
        return RunResult(code, round(time.monotonic() - started, 1), output_tail=_tail(home))
    except subprocess.TimeoutExpired:
        kill_group(process)
        return RunResult(None, round(time.monotonic() - started, 1), hung=True, output_tail=_tail(home))


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run(home: Path, timeout: float, *args: str, **extra: str) -> RunResult:
    started = time.monotonic()
    return finish(start(home, "run", *args, **extra), started, timeout, home)


def _tail(home: Path, chars: int = 1500) -> str:
    log = home.parent / f"{home.name}.log"
    return log.read_text(encoding="utf-8", errors="replace")[-chars:] if log.exists() else ""


def doctor(home: Path, timeout: float) -> list[str]:
    try:
        done = subprocess.run([*KOUIKI, "doctor"], cwd=REPO, env=environment(home), capture_output=True,
                              timeout=timeout, text=True)
    except subprocess.TimeoutExpired:
        return ["kouiki doctor timed out (hang)"]
    if done.returncode == 0:
        return []
    return [line for line in done.stdout.splitlines() if "problem" in line] or [done.stdout[-500:] +
                                                                                 done.stderr[-500:]]


def failed_dagster_steps(home: Path) -> int:
    """Step failures and failed runs recorded in the home's Dagster storage (a pair must have none)."""
    history = home / "dagster" / "history"
    failures = 0
    try:
        if (history / "runs.db").exists():
            with sqlite3.connect(history / "runs.db") as con:
                failures += con.execute("SELECT count(*) FROM runs WHERE status = 'FAILURE'").fetchone()[0]
        for storage in (history / "runs").glob("*.db"):
            if storage.name == "index.db":
                continue
            with sqlite3.connect(storage) as con:
                failures += con.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_FAILURE'"
                                        ).fetchone()[0]
    except sqlite3.DatabaseError:
        failures += 1
    return failures


# --- what a home holds ---------------------------------------------------------------------------------

def snapshot(home: Path) -> dict[str, Any]:
    """Releases, lake and catalog of a home, without what legitimately differs between runs (timestamps)."""
    return {"releases": _releases(home / "releases"), "lake": _lake(home / "lake"), "catalog": _catalog(home)}


def _strip(doc: Any, keys: set[str] = TIMESTAMP_KEYS) -> Any:
    if isinstance(doc, dict):
        return {k: _strip(v, keys) for k, v in doc.items() if k not in keys}
    if isinstance(doc, list):
        return [_strip(v, keys) for v in doc]
    return doc


def _releases(root: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            if path.name.startswith("."):
                found[rel] = "leftover folder"
            continue
        shuffled = rel.split("/", 1)[0].endswith(SHUFFLED_SUFFIX)
        if path.name in ("metadata.json", "latest.json"):
            doc = _strip(json.loads(path.read_text(encoding="utf-8")))
            found[rel] = _strip(doc, CHECKSUM_KEYS) if shuffled else doc
        elif shuffled:
            found[rel] = _rows_hash(path)
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _rows_hash(path: Path) -> str:
    """The checksum of a release file's rows in sorted order (the header line stays first)."""
    if path.suffix in (".parquet", ".json"):
        import polars as pl

        records = pl.read_parquet(path).to_dicts() if path.suffix == ".parquet" else json.loads(path.read_bytes())
        lines = sorted(json.dumps(r, ensure_ascii=False, sort_keys=True, default=str) for r in records)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest() + f" ({len(lines)} rows, any order)"
    text = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    head, rows = text[:1], sorted(text[1:])
    return hashlib.sha256("\n".join(head + rows).encode()).hexdigest() + f" ({len(rows)} lines, any order)"


def _lake(root: Path) -> dict[str, Any]:
    import polars as pl

    found: dict[str, Any] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(root))
        if not path.name.endswith(".parquet") or path.name.startswith("."):
            found[rel] = "not a data file (leftover?)"
            continue
        frame = pl.read_parquet(path)
        frame = frame.select([c for c, t in frame.schema.items() if not t.is_temporal()])
        rows = sorted(json.dumps(r, ensure_ascii=False, sort_keys=True, default=str) for r in frame.to_dicts())
        found[rel] = hashlib.sha256("\n".join(rows).encode()).hexdigest() + f" ({len(rows)} rows)"
    return found


def _catalog(home: Path) -> dict[str, Any]:
    db = home / "catalog.sqlite"
    if not db.exists():
        return {"error": "no catalog"}
    with sqlite3.connect(db) as con:
        uploads = con.execute("SELECT upload_id, city_code, sha256, original_name, size, stored_path, source, "
                              "dataset_id, variant, status, detail FROM uploads ORDER BY upload_id").fetchall()
        releases = con.execute("SELECT dataset_id, number, content_hash, rows FROM releases "
                               "ORDER BY dataset_id, number").fetchall()
    keep = ("rows", "rows_accepted", "rows_quarantined", "failures_by_code")
    return {
        "uploads": [[*row[:10], {k: v for k, v in json.loads(row[10] or "{}").items() if k in keep}]
                    for row in uploads],
        "releases": [[r[0], r[1], None if r[0].endswith(SHUFFLED_SUFFIX) else r[2], r[3]] for r in releases],
    }


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """One line per difference (file or row set) between two snapshots."""
    differences = []
    for part in ("releases", "lake"):
        for key in sorted(set(expected[part]) | set(actual[part])):
            if expected[part].get(key) != actual[part].get(key):
                differences.append(f"{part}/{key}: expected {_short(expected[part].get(key))}, "
                                   f"got {_short(actual[part].get(key))}")
    for table in ("uploads", "releases"):
        want, got = expected["catalog"].get(table), actual["catalog"].get(table)
        if want != got:
            differences.append(f"catalog.{table}: expected {_short(want)}, got {_short(got)}")
    return differences


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) < 160 else text[:157] + "…"


# --- the cases -----------------------------------------------------------------------------------------

def baseline(workdir: Path, timeout: float) -> tuple[Case, dict[str, Any], list[str], float]:
    """An uninterrupted run with every crash point traced: its snapshot, the points it reached, its time."""
    home = workdir / "baseline"
    trace = workdir / "baseline.trace"
    result = run(home, timeout, KOUIKI_CRASH_TRACE=str(trace))
    case = Case("baseline", "uninterrupted", reruns=[result])
    if result.returncode != 0:
        case.error = f"baseline run failed: {result.output_tail}"
    points = trace.read_text(encoding="utf-8").split() if trace.exists() else []
    return case, snapshot(home), points, result.seconds


def control(workdir: Path, expected: dict[str, Any], timeout: float) -> Case:
    """A second uninterrupted run in another home: differences here mean the comparison itself is wrong."""
    home = workdir / "control"
    case = Case("control", "uninterrupted", reruns=[run(home, timeout)])
    case.differences = compare(expected, snapshot(home))
    return case


def point_case(workdir: Path, expected: dict[str, Any], point: str, nth: int, timeout: float) -> Case:
    home = workdir / f"point-{point}-{nth}"
    # the trace counts the n-th occurrence over every process of the run, as the baseline's trace did
    trace = home.parent / f"{home.name}.trace"
    case = Case("point", f"{point}:{nth}", crash=run(home, timeout, KOUIKI_CRASH_AT=f"{point}:{nth}",
                                                     KOUIKI_CRASH_TRACE=str(trace)))
    if case.crash and case.crash.returncode != 137:
        case.error = f"did not crash at {point}:{nth} (exit {case.crash.returncode})"
    return _rerun_and_compare(case, home, expected, timeout)


# A random kill must strike a running run: the delays are drawn within the baseline's duration, and a run that
# the machine's load made faster than its baseline ends before its kill (8 of 30 in one harness run). Such a case
# starts again on a fresh home with a new delay drawn within the duration just seen, up to this many times.
KILL_ATTEMPTS = 4


def random_case(workdir: Path, expected: dict[str, Any], index: int, delay: float, timeout: float) -> Case:
    home = workdir / f"random-{index:02d}"
    for _ in range(KILL_ATTEMPTS):
        started = time.monotonic()
        process = start(home, "run")
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            kill_group(process)
            case = Case("random", f"SIGKILL after {delay:.1f} s", crash=RunResult(None, round(delay, 1)))
            return _rerun_and_compare(case, home, expected, timeout)
        finished = time.monotonic() - started
        shutil.rmtree(home, ignore_errors=True)
        delay = random.Random(f"{index}:{delay}").uniform(0.5, 0.95 * finished)   # within this run's duration
    crash = RunResult(process.returncode, round(finished, 1), output_tail="every attempt ended before its kill")
    case = Case("random", f"no kill landed (last delay {delay:.1f} s)", crash=crash)
    return _rerun_and_compare(case, home, expected, timeout)


def _rerun_and_compare(case: Case, home: Path, expected: dict[str, Any], timeout: float) -> Case:
    case.reruns.append(run(home, timeout))
    case.differences = compare(expected, snapshot(home))
    case.doctor_problems = doctor(home, timeout)
    if case.ok:
        shutil.rmtree(home, ignore_errors=True)
    return case


def pair_case(workdir: Path, expected: dict[str, Any], index: int, timeout: float) -> Case:
    """Two runs started together on one fresh home: both succeed, no failed step, storage intact."""
    home = workdir / f"pair-{index:02d}"
    home.mkdir(parents=True)
    started = time.monotonic()
    first, second = start(home, "run"), start(home, "run")
    case = Case("pair", f"pair {index}", reruns=[finish(first, started, timeout * 2, home),
                                                 finish(second, started, timeout * 2, home)])
    case.failed_steps = failed_dagster_steps(home)
    case.differences = compare(expected, snapshot(home))
    case.doctor_problems = doctor(home, timeout)
    if case.ok:
        shutil.rmtree(home, ignore_errors=True)
    return case


def boundary_cases(points: list[str], wanted: list[str] | None, rng: random.Random,
                   occurrences: str = "first,last,random") -> list[tuple[str, int]]:
    """Every named point the baseline reached, at its first / last / a random occurrence, or at ``all`` of
    them; ``<prefix>.*=all`` (e.g. ``publish.*=all``) takes every occurrence of those points only."""
    counts = Counter(points)
    cases = []
    for name in sorted(counts):
        if wanted and name not in wanted:
            continue
        n = counts[name]
        chosen: set[int] = set()
        for option in occurrences.split(","):
            prefix, _, how = option.rpartition("=")
            if prefix and not name.startswith(prefix.rstrip("*")):
                continue
            if how == "all":
                chosen |= set(range(1, n + 1))
            else:
                chosen.add({"first": 1, "last": n, "random": rng.randint(1, n)}[how])
        cases += [(name, k) for k in sorted(chosen)]
    return cases


# --- main ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--random", type=int, default=30, help="random SIGKILLs (default 30)")
    parser.add_argument("--pairs", type=int, default=20, help="two runs started together, N times (default 20)")
    parser.add_argument("--points", nargs="*", default=None, help="only these crash points (default: all)")
    parser.add_argument("--no-points", action="store_true", help="skip the step-boundary cases")
    parser.add_argument("--occurrences", default="first,last,random",
                        help="which occurrences of each point: first,last,random or all; "
                             "PREFIX*=all for some points only (e.g. first,last,publish.*=all)")
    parser.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--timeout", type=float, default=0, help="seconds per run (default: 5 × baseline)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep homes here (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=RESULTS / "crash_harness.json")
    parser.add_argument("--summarise", type=Path, default=None, metavar="JSONL",
                        help="only summarise the case lines of a (possibly stopped) harness run")
    args = parser.parse_args(argv)
    if args.summarise:
        return print_summary(args.summarise)
    rng = random.Random(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kouiki-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lines = args.out.with_suffix(".jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines.write_text("", encoding="utf-8")

    def record(case: Case) -> Case:
        doc = {**asdict(case), "ok": case.ok, "hung": case.hung}
        with lines.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
        print(f"{'ok  ' if case.ok else 'FAIL'} {case.kind:8} {case.name:40} "
              f"{'; '.join(case.differences[:2] + case.doctor_problems[:2])[:300]}", flush=True)
        return case

    first, expected, points, seconds = baseline(workdir, args.timeout or 1800)
    record(first)
    if first.error:
        return 2
    timeout = args.timeout or max(300.0, 5 * seconds)
    points_jobs = [] if args.no_points else [
        lambda p=p, n=n: point_case(workdir, expected, p, n, timeout)
        for p, n in boundary_cases(points, args.points, rng, args.occurrences)]
    delays = [rng.uniform(0.5, seconds) for _ in range(args.random)]
    random_jobs = [lambda i=i, d=d: random_case(workdir, expected, i, d, timeout) for i, d in enumerate(delays)]
    pair_jobs = [lambda i=i: pair_case(workdir, expected, i, timeout) for i in range(args.pairs)]
    # every step boundary first (a harness stopped early has still reached each of them: the last occurrences
    # of a point used to wait behind random kills and pairs), then random kills and pairs interleaved
    jobs: list[Any] = [lambda: control(workdir, expected, timeout), *points_jobs]
    jobs += [job for group in zip_longest(random_jobs, pair_jobs) for job in group if job]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        cases = [first, *pool.map(lambda job: record(job()), jobs)]
    summary = summarise(cases, seconds, Counter(points))
    args.out.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(summary["figures"], ensure_ascii=False, indent=1))
    return 0 if all(c.ok for c in cases) else 1


def print_summary(lines: Path) -> int:
    """Figures from the case lines written so far (a harness stopped early still reports what it measured)."""
    docs = [json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines() if line.strip()]
    table: dict[str, Counter[str]] = {}
    for doc in docs:
        counts = table.setdefault(doc["kind"], Counter())
        counts["cases"] += 1
        # random: killed before it finished; point: ended itself at the point (exit 137)
        counts["crashed"] += bool(doc["crash"]) and doc["crash"]["returncode"] in (None, 137)
        counts["with differences"] += bool(doc["differences"])
        counts["hangs"] += bool(doc["hung"])
        counts["failed reruns"] += any(r["returncode"] != 0 for r in doc["reruns"])
        counts["doctor problems"] += bool(doc["doctor_problems"])
        counts["failed steps"] += doc["failed_steps"]
        counts["not ok"] += not doc["ok"]
    columns = ["cases", "crashed", "with differences", "hangs", "failed reruns", "doctor problems", "failed steps",
               "not ok"]
    print("| kind | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for kind, counts in table.items():
        print(f"| {kind} | " + " | ".join(str(counts[c]) for c in columns) + " |")
    return 0 if all(doc["ok"] for doc in docs) else 1


def summarise(cases: list[Case], seconds: float, points: Counter[str]) -> dict[str, Any]:
    def count(kind: str, test: Any) -> int:
        return sum(1 for c in cases if c.kind == kind and test(c))

    figures = []
    for kind in ("control", "point", "random", "pair"):
        total = count(kind, lambda c: True)
        if not total:
            continue
        figures += [
            {"name": f"{kind}: cases", "value": total, "unit": "", "target": None, "met": None},
            {"name": f"{kind}: cases with differences", "value": count(kind, lambda c: bool(c.differences)),
             "unit": "", "target": "= 0", "met": count(kind, lambda c: bool(c.differences)) == 0},
            {"name": f"{kind}: hangs", "value": count(kind, lambda c: c.hung), "unit": "", "target": "= 0",
             "met": count(kind, lambda c: c.hung) == 0},
            {"name": f"{kind}: failed runs / steps / doctor problems",
             "value": count(kind, lambda c: not c.ok), "unit": "", "target": "= 0",
             "met": count(kind, lambda c: not c.ok) == 0},
        ]
    return {"bench": "crash_harness", "figures": figures,
            "details": {"baseline_seconds": seconds, "points_reached": dict(points),
                        "failures": [asdict(c) for c in cases if not c.ok]},
            "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}


if __name__ == "__main__":
    sys.exit(main())
