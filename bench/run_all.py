"""Run every benchmark (bench/bench_*.py) and write one summary: bench/results/summary.md and summary.json.

Each bench runs as its own process with a timeout; a failing or timed-out bench is recorded and the others
still run. Afterwards every bench's result JSON is read — the common result shape of bench/README.md, or the
older shapes of anonymise.json, portal.json and upload.json, mapped here — and each figure becomes one row of
one Markdown table: name, value, unit, baseline, ratio to the baseline (measured in the same run), target,
met?. A result file that is missing says "not run"; one older than this run says so.

Run: .venv/bin/python bench/run_all.py                    (full sizes; `make bench`)
     .venv/bin/python bench/run_all.py --quick            (small sizes, a few minutes)
     .venv/bin/python bench/run_all.py --only intake validate --args validate="--skip-frictionless"
Environment: KOUIKI_BENCH_TIMEOUT (seconds per bench), KOUIKI_BENCH_ARGS_<NAME> (extra arguments, e.g.
KOUIKI_BENCH_ARGS_PORTAL="--rows 100000").
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from common import (  # noqa: E402
    BENCH,
    FIGURE_COLUMNS,
    REPO,
    RESULTS_DIR,
    figure,
    load_average,
    machine_facts,
    markdown_rows,
    markdown_table,
    run_child,
)

DEFAULT_TIMEOUT = 3600.0
# Small sizes for a quick look (--quick); full sizes are each bench's defaults.
QUICK_ARGS: dict[str, list[str]] = {
    "intake": ["--rows", "20000", "--repeats", "1"],
    "validate": ["--rows", "20000", "--repeats", "1", "--skip-frictionless"],
    "anonymise": ["--records", "30000", "--skip-anjana"],
    "portal": ["--rows", "20000", "--calls", "100"],
    "upload": ["--uploads", "4", "--size-mb", "2"],
    "concurrent_runs": ["--rounds", "2"],
    "definitions": ["--repeats", "1"],
}
# Result files of benches that may exist without a bench_*.py here (yet).
KNOWN_RESULTS = ("intake", "validate", "anonymise", "portal", "upload", "scale")


def discover(only: Sequence[str] = (), skip: Sequence[str] = ()) -> dict[str, Path]:
    """bench name → script, for every bench/bench_*.py (name = the part after bench_)."""
    scripts = {p.stem.removeprefix("bench_"): p for p in sorted(BENCH.glob("bench_*.py"))}
    unknown = [n for n in [*only, *skip] if n not in scripts]
    if unknown:
        raise SystemExit(f"unknown bench(es) {unknown}; there are {sorted(scripts)}")
    return {n: p for n, p in scripts.items() if (not only or n in only) and n not in skip}


def bench_arguments(name: str, script: Path, *, quick: bool, extra: dict[str, str],
                    results_dir: Path) -> list[str]:
    args = list(QUICK_ARGS.get(name, [])) if quick else []
    args += shlex.split(os.environ.get(f"KOUIKI_BENCH_ARGS_{name.upper()}", ""))
    args += shlex.split(extra.get(name, ""))
    if "--out" in script.read_text(encoding="utf-8") and "--out" not in args:
        args += ["--out", str(results_dir / f"{name}.json")]      # benches on the common shape take --out
    return args


def run_bench(name: str, script: Path, args: list[str], timeout: float, logs: Path) -> dict[str, Any]:
    """Run one bench; its stdout and stderr go to logs/<name>.log."""
    print(f"▶ {name}: {' '.join(args) or '(defaults)'}", file=sys.stderr, flush=True)
    run = run_child([sys.executable, str(script), *args], timeout=timeout, cwd=REPO)
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    log.write_text(f"$ {script.name} {' '.join(args)}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}",
                   encoding="utf-8")
    status = "ok" if run.ok else ("timeout" if run.timed_out else "failed")
    print(f"  {status} in {run.seconds:.0f} s (log: {log})", file=sys.stderr, flush=True)
    return {"status": status, "seconds": round(run.seconds, 1), "returncode": run.returncode,
            "args": args, "error": None if run.ok else run.failure(), "log": str(log),
            "peak_rss_mib": round(run.peak_rss_mib, 1)}


# --- reading result files -----------------------------------------------------------------------------

def _get(doc: Any, *path: str | int) -> Any:
    for key in path:
        if isinstance(doc, dict) and isinstance(key, str):
            doc = doc.get(key)
        elif isinstance(doc, list) and isinstance(key, int) and -len(doc) <= key < len(doc):
            doc = doc[key]
        else:
            return None
    return doc


def _keep(*figures: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in figures if isinstance(f.get("value"), int | float)]


def figures_of_anonymise(doc: dict[str, Any]) -> list[dict[str, Any]]:
    records = _get(doc, "large", "records") or 0
    compared = _get(doc, "comparison", "records") or 0
    return _keep(
        figure(f"anonymise {records:,} records (k=5, l=2)", _get(doc, "large", "anonymise_seconds"), "s"),
        figure("anonymise peak memory (process)", _get(doc, "large", "peak_rss_process_mb"), "MiB"),
        figure(f"anonymise {compared:,} records, vs anjana", _get(doc, "comparison", "ours", "seconds"), "s",
               baseline=_get(doc, "comparison", "anjana", "seconds"), baseline_name="anjana 1.2.3"),
        figure("information loss (ARX Loss), vs anjana", _get(doc, "comparison", "ours", "loss"), "",
               baseline=_get(doc, "comparison", "anjana", "loss"), baseline_name="anjana 1.2.3"),
    )


def figures_of_portal(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = doc.get("rows") or 0
    search = doc.get("datastore_search") or {}
    found = [
        figure(f"datastore_search p50 ({rows:,} rows)", search.get("p50_ms"), "ms"),
        figure("datastore_search p99", search.get("p99_ms"), "ms"),
        figure("datastore_search calls", search.get("calls_per_s"), "calls/s"),
    ]
    for download in doc.get("downloads") or []:
        found.append(figure(f"download {download.get('file')}", download.get("mb_per_s"), "MB/s"))
    return _keep(*found)


def figures_of_upload(doc: dict[str, Any]) -> list[dict[str, Any]]:
    label = f"{doc.get('uploads')} × {doc.get('file_mb')} MB at once"
    return _keep(
        figure(f"upload latency p50 ({label})", _get(doc, "latency_s", "p50"), "s"),
        figure("upload latency p90", _get(doc, "latency_s", "p90"), "s"),
        figure("uploads validated", doc.get("uploads_per_s"), "uploads/s"),
        figure("upload server peak memory", doc.get("server_peak_rss_mb"), "MiB"),
        figure("upload errors", doc.get("errors"), "uploads"),
    )


def figures_generic(doc: Any, limit: int = 12) -> list[dict[str, Any]]:
    """A shape this script does not know: its first numeric leaves, named by their path."""
    found: list[dict[str, Any]] = []

    def walk(value: Any, path: str, depth: int) -> None:
        if len(found) >= limit or depth > 3:
            return
        if isinstance(value, bool):
            return
        if isinstance(value, int | float):
            found.append(figure(path, value, _unit_from_name(path)))
        elif isinstance(value, dict):
            for key, item in value.items():
                if key not in ("machine", "load_average", "load_average_1min", "parameters"):
                    walk(item, f"{path}.{key}" if path else str(key), depth + 1)

    walk(doc, "", 0)
    return found


def _unit_from_name(path: str) -> str:
    last = path.rsplit(".", 1)[-1].lower()
    for suffix, unit in (("_ms", "ms"), ("_seconds", "s"), ("_s", "s"), ("_mb", "MB"), ("_mib", "MiB"),
                         ("per_s", "/s"), ("rows", "rows")):
        if last.endswith(suffix):
            return unit
    return ""


ADAPTERS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "anonymise": figures_of_anonymise, "portal": figures_of_portal, "upload": figures_of_upload}


def read_figures(name: str, path: Path) -> tuple[list[dict[str, Any]], str]:
    """The figures of one result file and how they were read ("common shape", "mapped", "generic")."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(doc, dict) and isinstance(doc.get("figures"), list):
        return doc["figures"], "common shape"
    if name in ADAPTERS and isinstance(doc, dict):
        return ADAPTERS[name](doc), "mapped"
    return figures_generic(doc), "generic (numeric fields)"


def result_path(name: str, results_dir: Path) -> Path:
    mine = results_dir / f"{name}.json"
    return mine if mine.exists() or results_dir == RESULTS_DIR else RESULTS_DIR / f"{name}.json"


def collect(names: Sequence[str], runs: dict[str, dict[str, Any]], results_dir: Path,
            started: float) -> list[dict[str, Any]]:
    """One entry per bench: how it ran in this run (if it did) and the figures of its result file."""
    entries = []
    for name in names:
        run = runs.get(name)
        path = result_path(name, results_dir)
        entry: dict[str, Any] = {"bench": name, "run": run, "result_file": str(path), "figures": []}
        if not path.exists():
            entry["status"] = run["status"] if run else "not run"
            entries.append(entry)
            continue
        fresh = path.stat().st_mtime >= started
        entry["result_written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(path.stat().st_mtime))
        try:
            entry["figures"], entry["read_as"] = read_figures(name, path)
        except (json.JSONDecodeError, OSError) as err:
            entry["status"] = f"unreadable result ({err})"
            entries.append(entry)
            continue
        if run and run["status"] != "ok":
            entry["status"] = f"{run['status']} (figures from an earlier run, {entry['result_written_at']})"
        elif not fresh:
            entry["status"] = f"not run now (figures from {entry['result_written_at']})"
        else:
            entry["status"] = "ok"
        entries.append(entry)
    return entries


# --- the summary --------------------------------------------------------------------------------------

def summary_markdown(machine: dict[str, Any], entries: list[dict[str, Any]], load_end: list[float]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    lines = [
        "# Benchmark summary",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM; "
        f"Python {machine['python']}; {packages}",
        f"- Started {machine['measured_at']}; load average at start {machine['load_average']}, at end {load_end} "
        "(a shared machine: timings are noisy, ratios steadier)",
        "",
    ]
    rows = [row for e in entries for row in markdown_rows(e["bench"], e["figures"])]
    rows += [[e["bench"], "(no figures)", "—", "", "—", "—", "—", "—"] for e in entries if not e["figures"]]
    lines += [markdown_table(FIGURE_COLUMNS, rows), "", "## Runs", ""]
    status_rows = []
    for e in entries:
        run = e.get("run") or {}
        seconds = f"{run['seconds']:.0f} s" if run else "—"
        note = (run.get("error") or "").replace("\n", " ")[:200] if run else ""
        status_rows.append([e["bench"], e["status"], seconds, e.get("read_as", "—"), note])
    lines.append(markdown_table(("bench", "status", "time", "result read as", "error"), status_rows))
    return "\n".join(lines) + "\n"


def parse_extra(pairs: Sequence[str]) -> dict[str, str]:
    extra = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        extra[name] = value
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=[], help="run only these benches (names after bench_)")
    parser.add_argument("--skip", nargs="+", default=[], help="do not run these benches")
    parser.add_argument("--quick", action="store_true", help="small sizes (see QUICK_ARGS)")
    parser.add_argument("--args", nargs="+", default=[], metavar="NAME=ARGS", help="extra arguments for a bench")
    parser.add_argument("--timeout", type=float,
                        default=float(os.environ.get("KOUIKI_BENCH_TIMEOUT", DEFAULT_TIMEOUT)),
                        help="seconds per bench")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-run", action="store_true", help="only summarise the result files already there")
    args = parser.parse_args(argv)

    machine = machine_facts()
    started = time.time()
    scripts = discover(args.only, args.skip)
    extra = parse_extra(args.args)
    runs: dict[str, dict[str, Any]] = {}
    if not args.no_run:
        for name, script in scripts.items():
            bench_args = bench_arguments(name, script, quick=args.quick, extra=extra, results_dir=args.results_dir)
            runs[name] = run_bench(name, script, bench_args, args.timeout, args.results_dir / "logs")
    names = list(scripts) if args.only else [*scripts, *(n for n in KNOWN_RESULTS if n not in scripts)]
    entries = collect(names, runs, args.results_dir, started)
    load_end = load_average()
    markdown = summary_markdown(machine, entries, load_end)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "summary.md").write_text(markdown, encoding="utf-8")
    summary = {"machine": machine, "load_average_end": load_end, "quick": args.quick, "benches": entries}
    (args.results_dir / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    print(markdown)
    failed = [e["bench"] for e in entries if e.get("run") and e["run"]["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
