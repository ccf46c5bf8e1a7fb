"""Benchmark of the anonymiser (行政機関等匿名加工情報).

1. 1,000,000 synthetic 要介護認定 records, policy care_certification (k=5, l=2, suppression ≤ 5 %): time, peak
   memory, chosen levels, information loss, records suppressed, then the independent verification.
2. 30,000 records, the same policy's quasi-identifiers written out as ARX-format hierarchy CSVs, anonymised by
   this project (through the CLI function) and by anjana 1.2.3 (in its own virtual environment,
   bench/.venv-anjana, since it pins numpy 2.0.2), side by side. Both outputs are measured by the same code
   (ARX Loss, verification) and their k and l cross-checked with pycanon (which anjana brings along).

Run: .venv/bin/python bench/bench_anonymise.py   → Markdown on stdout, JSON in bench/results/anonymise.json.
Each measured run is a separate process, so peak memory (ru_maxrss) is that run's own.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402
import psutil  # noqa: E402

from anonymise.cli_entry import anonymise_csv  # noqa: E402
from anonymise.hierarchy import Hierarchy, hierarchy_from_arx_csv  # noqa: E402
from anonymise.policy import load_policy  # noqa: E402
from anonymise.process import anonymise_records, prepare_records  # noqa: E402
from anonymise.synthetic import generate_care_records  # noqa: E402
from anonymise.verify import verify_policy_release, verify_release  # noqa: E402

BENCH = REPO / "bench"
VENV = BENCH / ".venv-anjana"
DATA = BENCH / ".data" / "anonymise"
RESULTS = BENCH / "results" / "anonymise.json"
ANJANA = "anjana==1.2.3"
CITY, SEED = "122033", 2025
BIG, SMALL = 1_000_000, 30_000
K, L, SUPPRESSION = 5, 2, 0.05
SENSITIVE = "要介護度"

ANJANA_DRIVER = """
import json, resource, sys, time
import pandas as pd
import anjana
from anjana.anonymity import l_diversity
data_path, out_path, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
data = pd.read_csv(data_path, dtype=str, keep_default_na=False)
hierarchies = {qi: dict(pd.read_csv(path, sep=";", header=None, dtype=str, keep_default_na=False))
               for qi, path in spec["hierarchies"].items()}
started = time.perf_counter()
result = l_diversity(data, [], list(spec["hierarchies"]), spec["sensitive"], spec["k"], spec["l"],
                     spec["suppression_pct"], hierarchies)
seconds = time.perf_counter() - started
result = result.drop(columns=[c for c in ("index", "level_0") if c in result.columns])
result.to_csv(out_path, index=False)
print(json.dumps({"seconds": seconds, "rows": len(result),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PYCANON_DRIVER = """
import json, sys
import pandas as pd
from pycanon import anonymity
data = pd.read_csv(sys.argv[1], dtype=str, keep_default_na=False).reset_index(drop=True)
qis = json.loads(sys.argv[2])
print(json.dumps({"k": int(anonymity.k_anonymity(data, qis)),
                  "l": int(anonymity.l_diversity(data, qis, [sys.argv[3]]))}))
"""


class PeakRss:
    """Samples this process's resident memory in a thread, to report the peak during one phase."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_big(records_count: int) -> dict[str, Any]:
    """Generate, anonymise and verify `records_count` records (run in its own process)."""
    started = time.perf_counter()
    records = generate_care_records(CITY, records_count, SEED)
    generated = time.perf_counter() - started
    rss_after_generation = psutil.Process().memory_info().rss
    policy = load_policy("care_certification")
    with PeakRss() as peak:
        started = time.perf_counter()
        result = anonymise_records(records, policy)
        anonymised = time.perf_counter() - started
    assert result.release is not None, result.outcome.failure
    started = time.perf_counter()
    verification = verify_policy_release(result.release, records, policy)
    verified = time.perf_counter() - started
    metrics = result.outcome.metrics
    search = result.outcome.search
    return {
        "records": records_count,
        "generate_seconds": round(generated, 2),
        "anonymise_seconds": round(anonymised, 2),
        "verify_seconds": round(verified, 2),
        "rss_after_generation_mb": round(rss_after_generation / 2**20, 1),
        "peak_rss_during_anonymise_mb": round(peak.peak / 2**20, 1),
        "peak_rss_process_mb": round(_ru_maxrss_mb(), 1),
        "levels": {qi: f"{level} ({result.outcome.level_names[qi]})" for qi, level in result.outcome.levels.items()},
        "loss": metrics["loss"],
        "loss_generalisation_only": metrics["loss_generalisation_only"],
        "records_suppressed": metrics["records_suppressed"],
        "equivalence_classes": metrics["equivalence_classes"],
        "lattice_size": search.lattice_size if search else None,
        "nodes_evaluated": len(search.evaluations) if search else None,
        "verification": {"passed": verification.passed, "k": verification.k, "l": verification.l_distinct},
    }


def child_ours(data_path: Path, spec_path: Path, out_path: Path) -> dict[str, Any]:
    """The project's CLI function on the ARX-format inputs (run in its own process)."""
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    started = time.perf_counter()
    report = anonymise_csv(
        data_path,
        {qi: Path(path) for qi, path in spec["hierarchies"].items()},
        [spec["sensitive"]],
        spec["k"],
        spec["l"],
        spec["suppression_pct"],
        out_path,
        out_path.with_suffix(".report.json"),
    )
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": _ru_maxrss_mb(), "report": report}


def run_child(*arguments: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", *arguments], capture_output=True, text=True, check=True, timeout=600
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def ensure_anjana_venv() -> Path:
    """bench/.venv-anjana with anjana 1.2.3 (and the pycanon it pins), made once."""
    python = VENV / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([python, "-c", "import anjana, pycanon"], capture_output=True).returncode == 0
    ):
        return python
    base = shutil.which("python3") or sys.executable
    print(f"creating {VENV.relative_to(REPO)} with {ANJANA} …", file=sys.stderr)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", ANJANA],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode != 0:
        raise RuntimeError(f"pip install {ANJANA} failed:\n{install.stderr[-2000:]}")
    return python


def write_comparison_inputs() -> tuple[pl.DataFrame, dict[str, Hierarchy], Path, Path]:
    """30,000 prepared records (QIs + sensitive) as CSV and each QI hierarchy as an ARX CSV."""
    DATA.mkdir(parents=True, exist_ok=True)
    policy = load_policy("care_certification")
    prepared = prepare_records(generate_care_records(CITY, SMALL, SEED), policy)
    table = prepared.table.select([*policy.qi_columns, SENSITIVE])
    data_path = DATA / "care_30k.csv"
    table.write_csv(data_path)
    paths = {}
    for qi, hierarchy in prepared.hierarchies.items():
        paths[qi] = DATA / f"hierarchy_{qi}.csv"
        hierarchy.to_arx_csv(paths[qi], delimiter=";")
    spec = {
        "hierarchies": {qi: str(path) for qi, path in paths.items()},
        "sensitive": SENSITIVE,
        "k": K,
        "l": L,
        "suppression_pct": SUPPRESSION * 100,
    }
    spec_path = DATA / "spec.json"
    spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    hierarchies = {qi: hierarchy_from_arx_csv(path, qi) for qi, path in paths.items()}
    return table, hierarchies, data_path, spec_path


def measure_release(path: Path, records_in: int, hierarchies: dict[str, Hierarchy]) -> dict[str, Any]:
    """Levels, ARX Loss, suppression and verified k / l of a released CSV, whichever tool wrote it."""
    if not path.exists():
        return {"released": False}
    release = pl.read_csv(path, infer_schema=False)
    qis = list(hierarchies)
    levels = {qi: hierarchies[qi].level_of(release[qi].unique().to_list()) for qi in qis}
    loss_sum = 0.0
    for qi, level in levels.items():
        if level is None:
            return {"released": True, "rows": release.height, "levels": levels, "note": f"{qi}: mixed levels"}
        table = hierarchies[qi].table
        covered = table.group_by(str(level)).len()
        leaves = table.height
        per_label = dict(zip(covered[str(level)].to_list(), covered["len"].to_list(), strict=True))
        loss_sum += sum((per_label[value] - 1) / (leaves - 1) for value in release[qi].to_list())
    suppressed = records_in - release.height
    verification = verify_release(path, qis, K, sensitive=[SENSITIVE], l=L)
    classes = release.group_by(qis).len()["len"]
    return {
        "released": True,
        "rows": release.height,
        "records_suppressed": suppressed,
        "levels": levels,
        "loss": (loss_sum + suppressed * len(qis)) / (records_in * len(qis)),
        "equivalence_classes": {
            "count": len(classes),
            "min_size": int(classes.to_numpy().min()),
            "avg_size": float(classes.to_numpy().mean()),
        },
        "verification": {
            "passed": verification.passed,
            "k": verification.k,
            "l": verification.l_distinct.get(SENSITIVE),
        },
    }


def pycanon_check(python: Path, path: Path, qis: list[str]) -> dict[str, Any]:
    if not path.exists():
        return {}
    output = subprocess.run(
        [python, "-c", PYCANON_DRIVER, str(path), json.dumps(qis, ensure_ascii=False), SENSITIVE],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def compare_with_anjana() -> dict[str, Any]:
    python = ensure_anjana_venv()
    table, hierarchies, data_path, spec_path = write_comparison_inputs()
    ours_path, anjana_path = DATA / "ours_30k.csv", DATA / "anjana_30k.csv"
    started = time.perf_counter()
    ours = run_child("ours", str(data_path), str(spec_path), str(ours_path))
    ours["process_seconds"] = time.perf_counter() - started
    anjana_path.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.run(
        [python, "-c", ANJANA_DRIVER, str(data_path), str(anjana_path), spec_path.read_text(encoding="utf-8")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    anjana_wall = time.perf_counter() - started
    anjana: dict[str, Any]
    if process.returncode != 0:
        anjana = {"error": process.stderr.strip().splitlines()[-1:]}
    else:
        anjana = json.loads(process.stdout.strip().splitlines()[-1])
    anjana["process_seconds"] = anjana_wall
    qis = list(hierarchies)
    return {
        "records": table.height,
        "ours": {
            **ours,
            **measure_release(ours_path, table.height, hierarchies),
            "pycanon": pycanon_check(python, ours_path, qis),
        },
        "anjana": {
            **anjana,
            **measure_release(anjana_path, table.height, hierarchies),
            "pycanon": pycanon_check(python, anjana_path, qis),
        },
    }


def markdown(big: dict[str, Any], comparison: dict[str, Any]) -> str:
    lines = [
        f"## Anonymiser, {big['records']:,} synthetic records (k={K}, l={L}, suppression ≤ {SUPPRESSION:.0%})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| generate records | {big['generate_seconds']} s |",
        f"| anonymise (policy → release) | {big['anonymise_seconds']} s |",
        f"| verify (DuckDB, separate path) | {big['verify_seconds']} s |",
        f"| peak RSS during anonymise / whole process | {big['peak_rss_during_anonymise_mb']} / "
        f"{big['peak_rss_process_mb']} MB (after generation {big['rss_after_generation_mb']} MB) |",
        f"| chosen levels | {', '.join(f'{qi} {level}' for qi, level in big['levels'].items())} |",
        f"| ARX Loss (generalisation only) | {big['loss']:.4f} ({big['loss_generalisation_only']:.4f}) |",
        f"| records suppressed | {big['records_suppressed']:,} ({big['records_suppressed'] / big['records']:.2%}) |",
        f"| equivalence classes (min / avg size) | {big['equivalence_classes']['count']:,} "
        f"({big['equivalence_classes']['min_size']} / {big['equivalence_classes']['avg_size']:.1f}) |",
        f"| lattice nodes evaluated | {big['nodes_evaluated']} of {big['lattice_size']} |",
        f"| verification | passed={big['verification']['passed']}, k={big['verification']['k']}, "
        f"l={big['verification']['l']} |",
        "",
        f"## Side by side, {comparison['records']:,} records, same ARX-format hierarchies",
        "",
        "| | kouiki anonymise | anjana 1.2.3 |",
        "|---|---|---|",
    ]
    ours, anjana = comparison["ours"], comparison["anjana"]

    def cell(result: dict[str, Any], key: str, fmt: str = "{}") -> str:
        value = result.get(key)
        return "—" if value is None else fmt.format(value)

    ours_seconds = ours["report"]["seconds"]
    lines += [
        f"| time: ours = CLI function (read, anonymise, write, verify); anjana = l_diversity() "
        f"| {ours_seconds:.2f} s (whole process {ours['process_seconds']:.2f} s) | "
        f"{cell(anjana, 'seconds', '{:.2f} s')} (whole process {anjana['process_seconds']:.2f} s) |",
        f"| peak RSS of the process | {ours['peak_rss_mb']:.0f} MB | {cell(anjana, 'peak_rss_mb', '{:.0f} MB')} |",
        f"| chosen levels | {ours.get('levels')} | {anjana.get('levels')} |",
        f"| ARX Loss | {cell(ours, 'loss', '{:.4f}')} | {cell(anjana, 'loss', '{:.4f}')} |",
        f"| records suppressed | {cell(ours, 'records_suppressed')} | {cell(anjana, 'records_suppressed')} |",
        f"| classes (min / avg) | {ours.get('equivalence_classes')} | {anjana.get('equivalence_classes')} |",
        f"| verified k / l (ours) | {ours.get('verification')} | {anjana.get('verification')} |",
        f"| pycanon k / l | {ours.get('pycanon')} | {anjana.get('pycanon')} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=BIG, help="records in the large run (default 1,000,000)")
    parser.add_argument("--skip-anjana", action="store_true", help="only the large run")
    arguments = parser.parse_args()
    if arguments.child:
        mode, *rest = arguments.child
        result = child_big(int(rest[0])) if mode == "big" else child_ours(*(Path(p) for p in rest))
        print(json.dumps(result, ensure_ascii=False, default=str))
        return
    started = time.perf_counter()
    big = run_child("big", str(arguments.records))
    comparison = {} if arguments.skip_anjana else compare_with_anjana()
    results = {
        "benchmark": "anonymise",
        "machine": {"python": platform.python_version(), "cpus": psutil.cpu_count(), "platform": platform.platform()},
        "parameters": {"k": K, "l": L, "max_suppression": SUPPRESSION, "city": CITY, "seed": SEED},
        "large": big,
        "comparison": comparison,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    print(markdown(big, comparison) if comparison else json.dumps(big, ensure_ascii=False, indent=2))
    print(f"\n(total {results['total_seconds']} s; JSON in {RESULTS.relative_to(REPO)})")


if __name__ == "__main__":
    main()
