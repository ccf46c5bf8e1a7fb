"""The benchmarks must not rot: run_all runs bench_intake and bench_validate at 2,000 rows (no frictionless)
into a temporary folder, and the figures they report must be consistent with the data they generated."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
ROWS = 2000

# failure kinds whose cells intake itself cannot read (the others are readable values that break a rule)
UNREADABLE_BY_INTAKE = {"phone-is-text", "longitude-not-a-number", "code-check-digit", "time-invalid",
                        "email-without-domain", "url-without-scheme", "postal-code-short", "reading-with-kanji"}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    data = out / "data"
    small = f"--rows {ROWS} --repeats 1"
    process = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "intake", "validate", "--results-dir", str(out),
         "--timeout", "120", "--args", f"intake={small} --data-dir {data / 'intake'}",
         f"validate={small} --skip-frictionless --data-dir {data}"],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert process.returncode == 0, process.stdout + process.stderr
    return {"out": out, "data": data, "stdout": process.stdout,
            "summary": json.loads((out / "summary.json").read_text(encoding="utf-8")),
            "intake": json.loads((out / "intake.json").read_text(encoding="utf-8")),
            "validate": json.loads((out / "validate.json").read_text(encoding="utf-8"))}


def _bench_module(name: str) -> Any:
    """A bench script as a module (bench/ is no package; the script puts bench/ on sys.path itself)."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _figure(doc: dict[str, Any], starts_with: str) -> dict[str, Any]:
    return next(f for f in doc["figures"] if f["name"].startswith(starts_with))


def test_summary_lists_every_figure_with_its_ratio_and_target(bench_run: dict[str, Any]) -> None:
    entries = {e["bench"]: e for e in bench_run["summary"]["benches"]}
    assert set(entries) == {"intake", "validate"}
    for name in ("intake", "validate"):
        assert entries[name]["status"] == "ok"
        assert entries[name]["read_as"] == "common shape"
        for fig in entries[name]["figures"]:
            assert fig["value"] > 0
            if fig["baseline"]:
                assert fig["ratio"] == pytest.approx(fig["value"] / fig["baseline"])
            assert (fig["met"] is None) == (fig["target"] is None)
    assert bench_run["summary"]["machine"]["cores"] >= 1
    markdown = (bench_run["out"] / "summary.md").read_text(encoding="utf-8")
    assert "| bench | figure | value | unit | baseline | ratio | target | met? |" in markdown
    assert "ratio ≤ 2×" in markdown and "ratio ≤ 1.5×" in markdown
    assert "| bench | figure |" in bench_run["stdout"]


def test_intake_bench_reads_its_own_cp932_file_as_aed(bench_run: dict[str, Any]) -> None:
    intake = bench_run["intake"]
    details = intake["details"]
    assert details["rows"] == ROWS
    assert details["detected"] == {"dataset": "aed", "variant": "current", "encoding": "cp932"}
    cp932 = (bench_run["data"] / "intake" / f"aed_{ROWS}_{details['seed']}.csv").read_bytes()
    assert "㈱髙".encode("cp932") in cp932 and b",," in cp932     # really CP932, blanks unquoted as Excel does
    # exactly the injected unreadable cells are unreadable: the generated clean values all normalise
    failures = _bench_module("bench_intake").FAILURES
    injected = details["failures_injected"]
    expected = {k.column: injected[k.name] for k in failures if k.name in UNREADABLE_BY_INTAKE}
    assert details["invalid_cells"] == expected
    assert _figure(intake, "intake peak memory")["value"] > details["intake_rss_after_imports_mib"]
    assert details["breakdown"]["normalise_by_type_s"].keys() >= {"string", "phone", "time", "kana", "code"}


def test_validate_bench_finds_what_was_injected_with_ge_and_with_sql(bench_run: dict[str, Any]) -> None:
    details = bench_run["validate"]["details"]
    assert details["rows"] == ROWS
    assert details["ge_equals_sql"] and details["ge_equals_injected"]
    assert details["findings"]["ge"] == details["findings"]["sql"] > 0
    assert details["rows_failing"]["ge"] == details["rows_failing"]["sql"]
    assert details["frictionless"] == "skipped"
    ge = _figure(bench_run["validate"], "validate_table (GE")
    assert ge["baseline_name"] == "same checks as plain DuckDB SQL" and isinstance(ge["met"], bool)

