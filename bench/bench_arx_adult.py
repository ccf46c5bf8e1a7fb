"""ARX's Adult benchmark: utility and speed of the anonymiser beside ARX's published figures (issue 13).

Data: arx-deidentifier/arx data/adult.csv (30,162 records) and its hierarchy files, fetched into
bench/.data/arx-adult by bench/arx_adult_data.py (from --arx-source, KOUIKI_ARX_SOURCE or the network).

Setting (the one behind the issue's ARX figures, which it reproduces to the fourth decimal): the 8
quasi-identifiers sex, age, race, marital-status, education, native-country, workclass, occupation with ARX's
hierarchies; salary-class is the sensitive attribute of the l-diversity case (and is carried along, not a
quasi-identifier, otherwise). k = 5, at most 5 % of the records suppressed (whole records, ARX's default).
Figures are compared with ARX's at the four decimals the issue gives.

For each case the bench reports, for the released table: precision loss (ARX's Precision: mean over QI cells
of level / top level, a suppressed record counting 1), ARX Loss (geometric mean, ARX's default), normalised
non-uniform entropy, suppressed records, the levels, nodes evaluated, and the whole-process time (read the CSV
and the hierarchies, search, write the output; median of --repeats runs in this process). It also times the
`kouiki anonymise` path (anonymise_csv, which adds the independent DuckDB verification) in-process and as a
fresh process, and re-runs three results of ARX's own test suite on Adult (TestAnonymizationKAnonymity,
TestAnonymizationEntropyLDiversity) that must come out identical: node and loss.

    .venv/bin/python bench/bench_arx_adult.py [--arx-source PATH] [--repeats 3] [--out bench/results/arx_adult.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from arx_adult_data import AdultDataMissing, ensure_adult_data
from common import (
    RESULTS_DIR,
    Target,
    emit,
    figure,
    figures_table,
    python_cmd,
    result_document,
    run_child,
    write_result,
)

from anonymise.anonymiser import AnonymisationOutcome, anonymise_table
from anonymise.cli_entry import anonymise_csv, read_delimited
from anonymise.hierarchy import Hierarchy, hierarchy_from_arx_csv
from anonymise.lattice import PrivacyModel, encode_table, search_lattice
from anonymise.quality import QualityModel

QUASI_IDENTIFIERS = (
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
)
SENSITIVE = "salary-class"
TARGET_SECONDS = 3.3  # ARX's time for the whole process on Adult (issue 13)


@dataclass(frozen=True)
class Case:
    name: str
    model: PrivacyModel
    arx_precision: float | None  # ARX's precision loss for this setting (issue 13)
    target: bool  # whether the issue sets ARX's figure as the acceptance target


CASES = (
    Case("k=5, ≤5 %, optimising precision", PrivacyModel(k=5, max_suppression=0.05, quality=QualityModel("precision")),
         0.3805, True),
    Case("k=5, ≤5 %, optimising Loss (ARX's default)", PrivacyModel(k=5, max_suppression=0.05), 0.4151, False),
    Case("k=5, l=2, ≤5 %, optimising precision",
         PrivacyModel(k=5, l=2, max_suppression=0.05, quality=QualityModel("precision")), 0.4435, True),
    Case("k=5, l=2, ≤5 %, optimising Loss",
         PrivacyModel(k=5, l=2, max_suppression=0.05), None, False),
    Case("k=5, ≤5 %, optimising non-uniform entropy",
         PrivacyModel(k=5, max_suppression=0.05, quality=QualityModel("nu_entropy")), None, False),
)

# Results from ARX's test suite on Adult (9 QIs in file order unless `sensitive`): configuration, expected
# node (levels in the file's column order) and expected information loss.
ALL_COLUMNS = ("sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation",
               "salary-class")
ARX_REFERENCES = (
    ("TestAnonymizationKAnonymity: k=5, 4 %, Loss", PrivacyModel(k=5, max_suppression=0.04), (),
     (0, 3, 0, 1, 1, 1, 1, 2, 0), 0.26611081915757495),
    ("TestAnonymizationKAnonymity: k=5, 100 %, Loss", PrivacyModel(k=5, max_suppression=1.0), (),
     (0, 3, 0, 0, 2, 1, 1, 1, 0), 0.22041192847984292),
    ("TestAnonymizationEntropyLDiversity: entropy-l=5 (occupation), 4 %, non-uniform entropy",
     PrivacyModel(k=1, l=5, l_variant="entropy", max_suppression=0.04, quality=QualityModel("nu_entropy")),
     ("occupation",), (1, 0, 1, 1, 2, 2, 2, 1), 228878.2039109517),
)


def load_hierarchies(data: Path, columns: tuple[str, ...]) -> dict[str, Hierarchy]:
    return {column: hierarchy_from_arx_csv(data / f"adult_hierarchy_{column}.csv", column) for column in columns}


def whole_process(data: Path, model: PrivacyModel, out: Path) -> tuple[float, float, AnonymisationOutcome]:
    """Read the CSV and the hierarchies, search, write the released CSV: the process ARX's time covers.
    Returns wall seconds, CPU seconds (all threads of this process) and the outcome."""
    started, cpu = time.perf_counter(), time.process_time()
    table, delimiter = read_delimited(data / "adult.csv")
    hierarchies = load_hierarchies(data, QUASI_IDENTIFIERS)
    sensitive = [SENSITIVE] if model.needs_sensitive else []
    outcome = anonymise_table(table, hierarchies, model, sensitive=sensitive, keep=[] if sensitive else [SENSITIVE])
    if outcome.release is not None:
        outcome.release.write_csv(out, separator=delimiter)
    return time.perf_counter() - started, time.process_time() - cpu, outcome


def measure_case(data: Path, case: Case, repeats: int, work: Path) -> dict[str, Any]:
    times, cpu_times, outcome = [], [], None
    for _ in range(repeats):
        seconds, cpu, outcome = whole_process(data, case.model, work / "release.csv")
        times.append(seconds)
        cpu_times.append(cpu)
    assert outcome is not None
    if not outcome.ok:
        return {"case": case.name, "released": False, "seconds": statistics.median(times)}
    quality = outcome.metrics["quality"]
    search = outcome.search
    return {
        "case": case.name,
        "released": True,
        "quality_model": case.model.quality.describe(),
        "precision": quality["precision"],
        "arx_loss": quality["loss"],
        "nu_entropy": quality["nu_entropy"],
        "records_suppressed": outcome.metrics["records_suppressed"],
        "levels": outcome.levels,
        "nodes_evaluated": len(search.evaluations) if search else None,
        "lattice_size": search.lattice_size if search else None,
        "seconds": statistics.median(times),
        "seconds_all": [round(value, 3) for value in times],
        "cpu_seconds": statistics.median(cpu_times),
        "arx_precision": case.arx_precision,
    }


def cli_timings(data: Path, work: Path) -> dict[str, Any]:
    """`kouiki anonymise` for the precision case: in this process, and as a fresh process."""
    qis = {column: data / f"adult_hierarchy_{column}.csv" for column in QUASI_IDENTIFIERS}
    started = time.perf_counter()
    report = anonymise_csv(data / "adult.csv", qis, [], 5, None, 5.0, work / "cli.csv", work / "cli.json",
                           quality=QualityModel("precision"))
    in_process = time.perf_counter() - started
    argv = [*python_cmd(), "-m", "commands.cli", "anonymise", str(data / "adult.csv"),
            *(f"--qi={column}={path}" for column, path in qis.items()), "--k", "5", "--max-suppression", "5",
            "--quality-model", "precision", "--out", str(work / "cli2.csv"), "--report", str(work / "cli2.json")]
    child = run_child(argv, timeout=600)
    return {"in_process_seconds": in_process, "released": report["released"],
            "fresh_process_seconds": child.seconds if child.ok else None,
            "fresh_process_error": None if child.ok else child.failure()}


def arx_reference_checks(data: Path) -> list[dict[str, Any]]:
    table, _ = read_delimited(data / "adult.csv")
    checks = []
    for name, model, sensitive, expected_levels, expected_loss in ARX_REFERENCES:
        columns = tuple(column for column in ALL_COLUMNS if column not in sensitive)
        encoded = encode_table(table, load_hierarchies(data, columns), list(sensitive))
        best = search_lattice(encoded, model).best
        levels = best.levels if best else None
        score = best.score if best else None
        same = levels == expected_levels and score is not None and abs(score - expected_loss) <= 1e-8 * max(
            1.0, abs(expected_loss))
        checks.append({"test": name, "expected_levels": expected_levels, "levels": levels,
                       "expected_loss": expected_loss, "loss": score, "identical": same})
    return checks


def figures_of(cases: list[dict[str, Any]], cli: dict[str, Any], checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for case, result in zip(CASES, cases, strict=True):
        if not result.get("released"):
            found.append(figure(f"Adult {case.name}: not released", None, ""))
            continue
        target = Target("<=", case.arx_precision) if case.target and case.arx_precision is not None else None
        found.append(figure(f"Adult {case.name}: precision loss", round(result["precision"], 4), "",
                            baseline=case.arx_precision, baseline_name="ARX" if case.arx_precision else None,
                            target=target, note=f"{result['precision']:.6f}; levels {result['levels']}, suppressed "
                            f"{result['records_suppressed']}, ARX Loss {result['arx_loss']:.4f}, NU entropy "
                            f"{result['nu_entropy']:.4f}"))
        found.append(figure(f"Adult {case.name}: whole process (read, search, write)", result["seconds"], "s",
                            target=Target("<=", TARGET_SECONDS, unit="s"),
                            note=f"CPU {result['cpu_seconds']:.2f} s; {result['nodes_evaluated']} of "
                            f"{result['lattice_size']} nodes evaluated"))
        if case.target:  # CPU time too: on this shared machine the wall time mostly measures the waiting
            found.append(figure(f"Adult {case.name}: whole process, CPU time", result["cpu_seconds"], "s",
                                target=Target("<=", TARGET_SECONDS, unit="s")))
    found.append(figure("Adult `kouiki anonymise` k=5 precision, with verification, in-process",
                        cli["in_process_seconds"], "s"))
    found.append(figure("Adult `kouiki anonymise` k=5 precision, fresh process (Python start-up included)",
                        cli["fresh_process_seconds"], "s"))
    found.append(figure("ARX test-suite results on Adult reproduced (node and loss)",
                        sum(check["identical"] for check in checks), "of 3",
                        target=Target(">=", len(checks))))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arx-source", type=Path, help="git directory or checkout of arx-deidentifier/arx")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "arx_adult.json")
    args = parser.parse_args(argv)
    try:
        data = ensure_adult_data(source=args.arx_source)
    except AdultDataMissing as error:
        print(error, file=sys.stderr)
        write_result(result_document("arx_adult", [], {"error": str(error)}), args.out)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        cases = [measure_case(data, case, args.repeats, work) for case in CASES]
        cli = cli_timings(data, work)
    checks = arx_reference_checks(data)
    figures = figures_of(cases, cli, checks)
    details = {"quasi_identifiers": QUASI_IDENTIFIERS, "sensitive": SENSITIVE, "cases": cases, "cli": cli,
               "arx_reference_checks": checks}
    write_result(result_document("arx_adult", figures, details), args.out)
    print(figures_table("arx_adult", figures))
    emit({"figures": len(figures), "out": str(args.out)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
