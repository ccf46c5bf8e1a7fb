"""Helpers shared by the benchmarks: machine facts, timing, child processes with their peak memory, results.

Every benchmark writes one JSON document of the *result shape* below to ``bench/results/<name>.json``;
``bench/run_all.py`` reads these documents and puts every figure into one table (see bench/README.md)::

    {"bench": "intake",
     "figures": [{"name": "intake of 1,000,000 CP932 rows", "value": 3.1, "unit": "s",
                  "baseline": 0.9, "baseline_name": "DuckDB read_csv (UTF-8)", "ratio": 3.4,
                  "target": "ratio ≤ 2", "met": false}, ...],
     "details": {...anything the bench wants to keep...},
     "machine": {...machine_facts()...}}

``ratio`` is always ``value / baseline`` (both measured in the same run); ``target`` is a short text and
``met`` says whether the figure reached it (None when there is no target).
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS_DIR = BENCH / "results"
DATA_DIR = BENCH / ".data"
MIB = 1 << 20

# Versions worth knowing when comparing figures between machines and runs.
PACKAGES = ("duckdb", "polars", "pyarrow", "great-expectations", "sqlalchemy", "dagster")

Op = Literal["<=", "<", ">=", ">"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_OP_TEXT = {"<=": "≤", "<": "<", ">=": "≥", ">": ">"}


# --- machine ------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    """Total memory in GiB (Linux /proc/meminfo)."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages: the machine is shared, so timings need this beside them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (from the package metadata: nothing is imported)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_facts() -> dict[str, Any]:
    """What a reader needs to judge a figure: CPU, cores, RAM, Python, key versions, load right now."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "load_average": load_average(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --- timing -------------------------------------------------------------------------------------------

def median_of(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_self_mib() -> float:
    """This process's own peak resident memory so far, in MiB.

    Linux: VmHWM of /proc/self/status, the high-water mark of this process image only. ``ru_maxrss`` is not
    used there because it keeps the maximum of the image before execve, i.e. of the parent at fork time: a
    child of a 3 GB parent reports 3 GB. Elsewhere ru_maxrss (KiB on Linux, bytes on macOS) is the fallback.
    """
    hwm = _proc_status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Restart VmHWM at the current RSS (Linux: write 5 to /proc/self/clear_refs), to measure one step's
    peak; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def rss_now_mib() -> float | None:
    """Resident memory right now, in MiB (Linux VmRSS), e.g. after imports and before the measured call."""
    rss = _proc_status_kib("VmRSS")
    return rss / 1024 if rss is not None else None


@dataclass(frozen=True)
class ChildRun:
    """One finished child process: its last JSON line, exit code, wall time and its own peak memory."""

    argv: list[str]
    returncode: int
    seconds: float
    peak_rss_mib: float          # ru_maxrss from os.wait4: max(child's peak, parent's RSS at fork)
    output: dict[str, Any] | None
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def failure(self) -> str:
        """A one-paragraph reason for a failed run (the tail of stderr)."""
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        tail = "\n".join(self.stderr.strip().splitlines()[-8:])
        return f"exit code {self.returncode}: {tail}"


def run_child(argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
              cwd: Path = REPO) -> ChildRun:
    """Run ``argv`` in its own process group and wait for it with ``os.wait4``.

    wait4 gives that one child's resource usage, not that of earlier children (a data generator, say).
    Its ``ru_maxrss`` still includes the parent's resident memory at fork time (Linux keeps the high-water
    mark across execve), so keep the parent small, or let the child report :func:`peak_rss_self_mib`.
    The last stdout line that parses as a JSON object is returned as ``output``. On timeout the whole
    group is killed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=err,
                                   start_new_session=True)
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)   # already reaped: keep Popen consistent
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        stderr = err.read().decode("utf-8", errors="replace")
    return ChildRun(list(argv), process.returncode, seconds, usage.ru_maxrss / 1024, last_json(stdout),
                    stdout, stderr, expired.is_set())


def last_json(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (children print their result last)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def emit(result: dict[str, Any]) -> None:
    """A child's result: one JSON line on stdout (the parent reads the last one)."""
    print(json.dumps(result, ensure_ascii=False, default=str), flush=True)


# --- figures and results ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A goal for a figure: ``on`` the value itself or on its ratio to the baseline, e.g. ratio ≤ 2."""

    op: Op
    limit: float
    on: Literal["value", "ratio"] = "value"
    unit: str = ""

    def text(self) -> str:
        unit = "×" if self.on == "ratio" else (f" {self.unit}" if self.unit else "")
        prefix = "ratio " if self.on == "ratio" else ""
        return f"{prefix}{_OP_TEXT[self.op]} {self.limit:g}{unit}"

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        measured = ratio if self.on == "ratio" else value
        if measured is None:
            return None
        return _OPS[self.op](measured, self.limit)


def figure(name: str, value: float | None, unit: str, *, baseline: float | None = None,
           baseline_name: str | None = None, target: Target | None = None,
           note: str | None = None) -> dict[str, Any]:
    """One row of the result shape; ``ratio`` = value / baseline when both are there."""
    ratio = value / baseline if value is not None and baseline else None
    row: dict[str, Any] = {
        "name": name, "value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
        "ratio": ratio, "target": target.text() if target else None,
        "met": target.met(value, ratio) if target else None,
    }
    if note:
        row["note"] = note
    return row


def result_document(bench: str, figures: list[dict[str, Any]], details: dict[str, Any]) -> dict[str, Any]:
    return {"bench": bench, "figures": figures, "details": details, "machine": machine_facts()}


def write_result(document: dict[str, Any], path: Path) -> Path:
    """Write a result document as JSON (UTF-8, readable) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def format_number(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    if abs(value) >= 0.01:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return f"{value:.2g}"


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "—"}[met]


FIGURE_COLUMNS = ("bench", "figure", "value", "unit", "baseline", "ratio", "target", "met?")


def markdown_rows(bench: str, figures: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for f in figures:
        baseline = format_number(f.get("baseline"))
        if f.get("baseline_name") and f.get("baseline") is not None:
            baseline = f"{baseline} ({f['baseline_name']})"
        ratio = f.get("ratio")
        rows.append([bench, str(f.get("name", "")), format_number(f.get("value")), str(f.get("unit") or ""),
                     baseline, f"{ratio:.2f}×" if ratio is not None else "—", str(f.get("target") or "—"),
                     met_text(f.get("met"))])
    return rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def figures_table(bench: str, figures: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of one bench's figures (benches print it; run_all prints all of them)."""
    return markdown_table(FIGURE_COLUMNS, markdown_rows(bench, figures))


def python_cmd() -> list[str]:
    """The interpreter running this bench (the project's .venv under ``make bench``)."""
    return [sys.executable]
