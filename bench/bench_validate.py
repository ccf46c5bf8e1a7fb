"""Benchmark of validation (issue 4): 1,000,000 staged AED rows × the AED suite, three ways.

Data: bench_intake.py's generated CP932 AED file (mostly clean, ~0.1 % failing cells of each of 15 kinds),
staged by intake once and stored as the pipeline stores it (warehouse.staged_db: tables ``staged``, ``raw``),
plus the staged values as a UTF-8 CSV for frictionless; both cached under bench/.data/validate.

(a) kouiki: ``expectations.validate.validate_table`` — one Great Expectations run on DuckDB through
    SQLAlchemy, then the row-level findings (one SQL query per failing expectation, raw values joined).
(b) the same checks as plain DuckDB SQL: ``suites.count_failing`` (one query counting every check) plus one
    failing-rows query per failing check with the same columns (line, value, raw value): equivalent work.
(c) ``frictionless validate`` (5.21.0, in its own venv bench/.venv-frictionless, created when missing) of
    the CSV with an equivalent Table Schema (required, pattern, enum, number with minimum/maximum, unique
    ID), timed as a whole process. The check digit and the time order have no Table Schema form: frictionless
    does slightly less work than (a).

(a) and (b) run alternately in one process, ``--repeats`` times each (median; the first (a) run, cold, is
kept in the details); (c) runs once (minutes). Failing counts are cross-checked: GE = SQL = what was injected.

Run: .venv/bin/python bench/bench_validate.py [--rows 1000000] [--repeats 3] [--skip-frictionless]
     → Markdown on stdout, JSON (bench/README.md's result shape) in bench/results/validate.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for folder in (REPO, BENCH_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_intake import (  # noqa: E402
    DEFAULT_ROWS,
    DEFAULT_SEED,
    FAILURES,
    AedFiles,
    ensure_aed_files,
    warm_page_cache,
)
from common import (  # noqa: E402
    BENCH,
    DATA_DIR,
    RESULTS_DIR,
    ChildRun,
    Target,
    emit,
    figure,
    figures_table,
    load_average,
    median_of,
    peak_rss_self_mib,
    result_document,
    run_child,
    write_result,
)

from kouiki.sql import literal, quote  # noqa: E402

NAME = "validate"
STAGE_VERSION = 1
DATASET = "aed"
FRICTIONLESS = "frictionless==5.21.0"
FRICTIONLESS_VENV = BENCH / ".venv-frictionless"
GE_TARGET = Target("<=", 1.5, on="ratio")
FRICTIONLESS_TARGET = Target(">=", 50, on="ratio")
CHILD_TIMEOUT = 1800
FRICTIONLESS_TIMEOUT = 3600
ROW, LINE = "_row", "_source_line"


# --- staged data --------------------------------------------------------------------------------------

def ensure_staged(files: AedFiles, data_dir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The DuckDB file (staged + raw, as warehouse.staged_db builds it) and the values CSV, made once."""
    stem = f"aed_{files.meta['rows']}_{files.meta['seed']}"
    db, csv, meta_path = data_dir / f"{stem}.duckdb", data_dir / f"{stem}.values.csv", data_dir / f"{stem}.json"
    wanted = {"source": files.meta, "stage_version": STAGE_VERSION}
    if db.exists() and csv.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if {k: meta.get(k) for k in wanted} == wanted:
            return db, csv, meta
    data_dir.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    # in this process: the measured children report their own peak memory (VmHWM), whatever this one holds
    meta = {**wanted, **stage_into_duckdb(files.cp932, db, csv)}
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return db, csv, meta


def stage_into_duckdb(cp932: Path, db: Path, csv: Path) -> dict[str, Any]:
    """Stage the file with intake and store it as the pipeline does (warehouse.staged_db.write_staged_db)."""
    import duckdb

    from expectations.registry import default_registry
    from intake.process import stage_file
    from warehouse.staged_db import write_staged_db

    staged = stage_file(cp932, default_registry())
    columns = [c.name for c in staged.dataset.canonical.columns]
    write_staged_db(db, staged.values, staged.raw)
    con = duckdb.connect(str(db))
    try:
        listed = ", ".join(quote(c) for c in columns)
        target = literal(str(csv))
        con.execute(f"COPY (SELECT {listed} FROM staged ORDER BY {ROW}) TO {target} (HEADER, DELIMITER ',')")
    finally:
        con.close()
    return {"rows": staged.values.height, "columns": len(columns), "variant": staged.match.variant,
            "missing_columns": list(staged.match.missing), "extra_columns": list(staged.match.unmatched)}


# --- (a) kouiki and (b) plain SQL --------------------------------------------------------------------

def kouiki_validation(db: Path) -> dict[str, Any]:
    """(a) validate_table: GE run, findings, decision."""
    from expectations.registry import default_registry
    from expectations.validate import validate_table

    result = validate_table(db, "staged", default_registry().get(DATASET), raw_table="raw", upload_id="bench")
    return {
        "expectations": len(result.expectations),
        "failing_by_check": {e.check_id: e.unexpected_count for e in result.expectations if e.unexpected_count},
        "findings": result.findings.height, "findings_by_code": result.counts_by_code,
        "rows_failing": result.n_failing, "decision": result.decision,
        "gaps_consistent": all(g.consistent for g in result.gaps),
    }


def plain_sql_validation(db: Path) -> dict[str, Any]:
    """(b) The suite as plain DuckDB SQL, doing what validate_table does apart from GE: count each
    check's failing rows, then fetch every failing cell (line, value, raw value) of each failing check."""
    import duckdb
    import polars as pl

    from expectations.registry import default_registry
    from expectations.suites import build_checks, count_failing
    from kouiki.validation_errors import error_type

    checks = build_checks(default_registry().get(DATASET))
    con = duckdb.connect(str(db), read_only=True)
    try:
        count_row = con.execute("SELECT count(*) FROM staged").fetchone()
        counts = count_failing(con, "staged", checks)
        frames = []
        for check in checks:
            where = check.failing_sql("staged")
            if where is None or not counts.get(check.id):
                continue
            col = quote(check.column)
            sql = (f"WITH f AS (SELECT {ROW} AS row, {LINE} AS source_line, CAST({col} AS VARCHAR) AS value "
                   f"FROM staged WHERE {where}) SELECT f.source_line, f.row, CAST(r.{col} AS VARCHAR) AS "
                   f"raw_value, f.value FROM f LEFT JOIN raw r ON r.{ROW} = f.row ORDER BY f.row")
            frames.append(con.execute(sql).pl().with_columns(
                pl.lit(check.column).alias("column"), pl.lit(check.error_code).alias("error_code"),
                pl.lit(error_type(check.error_code).severity).alias("severity")))
    finally:
        con.close()
    findings = pl.concat(frames) if frames else pl.DataFrame()
    errors = findings.filter(pl.col("severity") == "error") if frames else findings
    return {"rows": int(count_row[0]) if count_row else 0, "failing_by_check": {k: v for k, v in counts.items() if v},
            "findings": findings.height,
            "rows_failing": errors["row"].n_unique() if errors.height else 0}


def child_measure(db: Path, repeats: str) -> dict[str, Any]:
    """(a) and (b) alternately, ``repeats`` times each, in one process (great_expectations, which both
    import through expectations.suites, takes seconds to import: once, before any timing)."""
    from expectations.registry import default_registry
    from expectations.suites import build_checks

    checks = len(build_checks(default_registry().get(DATASET)))
    timings: dict[str, list[float]] = {"ge": [], "sql": []}
    results: dict[str, dict[str, Any]] = {}
    for _ in range(int(repeats)):
        for name, validation in (("ge", kouiki_validation), ("sql", plain_sql_validation)):
            started = time.perf_counter()
            results[name] = validation(db)
            timings[name].append(time.perf_counter() - started)
    return {"checks": checks, "ge": {**results["ge"], "seconds_all": timings["ge"]},
            "sql": {**results["sql"], "seconds_all": timings["sql"]}, "peak_rss_mib": peak_rss_self_mib(),
            "sql_seconds_by_check": seconds_by_check(db)}


def seconds_by_check(db: Path) -> dict[str, float]:
    """Each check's failing-row count as a query of its own: which checks the time goes to (after the
    measured runs, not part of them)."""
    import duckdb

    from expectations.registry import default_registry
    from expectations.suites import build_checks

    con = duckdb.connect(str(db), read_only=True)
    spent: dict[str, float] = {}
    try:
        for check in build_checks(default_registry().get(DATASET)):
            where = check.failing_sql("staged")
            if where is None:
                continue
            started = time.perf_counter()
            con.execute(f"SELECT count(*) FROM staged WHERE {where}").fetchone()
            spent[check.id] = round(time.perf_counter() - started, 3)
    finally:
        con.close()
    return dict(sorted(spent.items(), key=lambda kv: -kv[1]))


# --- (c) frictionless ---------------------------------------------------------------------------------

def table_schema() -> tuple[dict[str, Any], list[str]]:
    """A Frictionless Table Schema equivalent to the AED suite, and the checks it cannot express."""
    from expectations.registry import default_registry
    from expectations.suites import build_checks

    dataset = default_registry().get(DATASET)
    fields: dict[str, dict[str, Any]] = {c.name: {"name": c.name, "type": "string", "constraints": {}}
                                         for c in dataset.canonical.columns}
    left_out = []
    for check in build_checks(dataset):
        spec, constraints = fields[check.column], fields[check.column]["constraints"]
        if check.kind == "not_null":
            constraints["required"] = True
        elif check.kind == "regex" and check.rule in ("number", "integer"):
            spec["type"] = check.rule            # the type check is frictionless's type-error
        elif check.kind == "regex":
            constraints["pattern"] = _unanchored(check.regex)
        elif check.kind == "in_set":
            constraints["enum"] = list(check.value_set)
        elif check.kind == "between":
            spec["type"] = "number"
            constraints["minimum"], constraints["maximum"] = check.min_value, check.max_value
        elif check.kind == "unique":
            constraints["unique"] = True
        elif check.kind != "exists":             # a header check is part of reading a Table Schema
            left_out.append(check.id)
    for spec in fields.values():
        if not spec["constraints"]:
            del spec["constraints"]
    return {"fields": list(fields.values())}, left_out


def _unanchored(regex: str) -> str:
    """Frictionless anchors a pattern itself (^…$)."""
    inner = regex.removeprefix("^").removesuffix("$")
    return f"(?:{inner})"


def ensure_frictionless(venv: Path = FRICTIONLESS_VENV) -> Path:
    """The frictionless executable of its own venv; creates the venv (python3 -m venv + pip) when missing."""
    python, exe = venv / "bin" / "python", venv / "bin" / "frictionless"
    version = FRICTIONLESS.split("==")[1]
    if exe.exists():
        probe = subprocess.run([str(python), "-c", "import frictionless; print(frictionless.__version__)"],
                               capture_output=True, text=True, check=False)
        if probe.stdout.strip() == version:
            return exe
    base = shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", FRICTIONLESS],
                   check=True)
    return exe


def run_frictionless(exe: Path, csv: Path, schema: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``frictionless validate`` as a whole process (start-up measured separately), errors counted."""
    folder = csv.parent
    (folder / "aed.schema.json").write_text(json.dumps(schema, ensure_ascii=False, indent=1), encoding="utf-8")
    head = folder / "aed.head.csv"
    with csv.open(encoding="utf-8") as source:
        head.write_text("".join(next(source) for _ in range(2)), encoding="utf-8")
    # relative paths: frictionless treats absolute ones as unsafe
    command = [str(exe), "validate", "--schema", "aed.schema.json", "--json", "--limit-errors", "100000000"]
    startup = run_child([*command, head.name], timeout=300, cwd=folder)
    run = run_child([*command, csv.name], timeout=timeout, cwd=folder)
    if run.timed_out or not run.stdout.strip().startswith("{"):
        raise RuntimeError(f"frictionless failed: {run.failure()}")
    report = json.loads(run.stdout)
    task = report["tasks"][0]
    errors = Counter(f"{e.get('type')}:{e.get('fieldName', '')}" for e in task.get("errors", []))
    return {"seconds": run.seconds, "startup_seconds": startup.seconds, "peak_rss_mib": run.peak_rss_mib,
            "valid": report.get("valid"), "rows": task.get("stats", {}).get("rows"),
            "errors": sum(errors.values()), "errors_by_type_and_field": dict(sorted(errors.items()))}


# --- the parent ---------------------------------------------------------------------------------------

def _child(mode: str, *args: Any, timeout: float) -> ChildRun:
    run = run_child([sys.executable, str(Path(__file__).resolve()), "--child", mode, *map(str, args)],
                    timeout=timeout)
    if not run.ok or run.output is None:
        raise RuntimeError(f"child {mode} failed: {run.failure()}")
    return run


def expected_failures(files: AedFiles) -> dict[str, int]:
    """error code:column → failing cells put in by the generator (what GE must find)."""
    injected = files.meta["failures"]
    return {f"{kind.error_code}:{kind.column}": injected[kind.name] for kind in FAILURES if kind.name in injected}


def build_result(files: AedFiles, stage_meta: dict[str, Any], measured: dict[str, Any],
                 frictionless: dict[str, Any] | None, load_before: list[float]) -> dict[str, Any]:
    rows = stage_meta["rows"]
    ge, sql = measured["ge"], measured["sql"]
    ge_s, sql_s = median_of(ge["seconds_all"]), median_of(sql["seconds_all"])
    label = f"{rows:,} rows × {measured['checks']} checks"
    figures = [
        figure(f"validate_table (GE on DuckDB + findings), {label}", ge_s, "s", baseline=sql_s,
               baseline_name="same checks as plain DuckDB SQL", target=GE_TARGET),
        figure("validate_table throughput", rows / ge_s, "rows/s"),
    ]
    if frictionless is not None:
        figures.append(figure("frictionless validate, same data as CSV (whole process)", frictionless["seconds"],
                              "s", baseline=ge_s, baseline_name="kouiki validate_table", target=FRICTIONLESS_TARGET))
    expected = expected_failures(files)
    details = {
        "rows": rows, "checks": measured["checks"], "expectations": ge["expectations"],
        "ge_seconds_all": [round(s, 3) for s in ge["seconds_all"]],
        "sql_seconds_all": [round(s, 3) for s in sql["seconds_all"]],
        "ge_first_run_seconds": round(ge["seconds_all"][0], 3),
        "peak_rss_mib_of_the_process_running_both": round(measured["peak_rss_mib"], 1),
        "failing_by_check": {"ge": ge["failing_by_check"], "sql": sql["failing_by_check"], "injected": expected},
        "ge_equals_sql": ge["failing_by_check"] == sql["failing_by_check"],
        "ge_equals_injected": ge["failing_by_check"] == expected,
        "findings": {"ge": ge["findings"], "sql": sql["findings"]},
        "rows_failing": {"ge": ge["rows_failing"], "sql": sql["rows_failing"]},
        "findings_by_code": ge["findings_by_code"], "decision": ge["decision"],
        "sql_seconds_by_check": measured["sql_seconds_by_check"],
        "gaps_consistent": ge["gaps_consistent"],
        "frictionless": frictionless if frictionless is not None else "skipped",
        "load_average_before": load_before, "load_average_after": load_average(),
        "method": "(a) and (b) alternately in one process, repeated, median (the first (a) run is cold); "
                  "(c) one whole process; the staged DuckDB file is built once beforehand (not timed)",
    }
    return result_document(NAME, figures, details)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="holds intake/ (the generated file) and validate/ (staged data)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{NAME}.json")
    parser.add_argument("--timeout", type=float, default=CHILD_TIMEOUT, help="seconds per child process")
    parser.add_argument("--frictionless-timeout", type=float, default=FRICTIONLESS_TIMEOUT)
    parser.add_argument("--skip-frictionless", action="store_true", help="only (a) and (b)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        db, repeats = args.child[1:]      # the one child mode: measure
        emit(child_measure(Path(db), repeats))
        return 0
    load_before = load_average()
    files = ensure_aed_files(args.rows, args.seed, args.data_dir / "intake", args.timeout)
    db, csv, stage_meta = ensure_staged(files, args.data_dir / NAME)
    warm_page_cache(db)
    measured = _child("measure", db, args.repeats, timeout=args.timeout).output
    assert measured is not None
    frictionless = None
    if not args.skip_frictionless:
        schema, left_out = table_schema()
        frictionless = run_frictionless(ensure_frictionless(), csv, schema, args.frictionless_timeout)
        frictionless["checks_without_table_schema_form"] = left_out
    document = build_result(files, stage_meta, measured, frictionless, load_before)
    write_result(document, args.out)
    print(figures_table(NAME, document["figures"]))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
