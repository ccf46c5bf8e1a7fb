"""`kouiki anonymise INPUT.csv --qi COL=HIERARCHY.csv … [--sensitive COL] --k K [--l L]
[--max-suppression PCT] --out OUT.csv --report REPORT.json`, as a plain function (the CLI wiring
lives in kouiki.cli).

Only the quasi-identifiers (generalised) and the sensitive columns are written; every other column
is dropped. The written file is then verified by the separate DuckDB path; if verification fails the
file is removed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import polars as pl

from anonymise.anonymiser import anonymise_table
from anonymise.hierarchy import detect_delimiter, hierarchy_from_arx_csv
from anonymise.lattice import PrivacyModel
from anonymise.quality import QualityModel
from anonymise.verify import verify_release

# Dropped columns this unique (distinct values / rows) are treated as direct identifiers and searched
# for in the output; less unique ones (a city name, a category) could legitimately equal a generalised label.
IDENTIFIER_UNIQUENESS = 0.5


def anonymise_csv(
    input: Path,
    qis: dict[str, Path],
    sensitive: list[str],
    k: int,
    l: int | None,  # noqa: E741 - the model's own name
    max_suppression: float,
    out: Path,
    report: Path,
    quality: QualityModel | None = None,
) -> dict[str, Any]:
    """Anonymise a CSV (delimiter ',' or ';') with ARX-format hierarchy files.

    `max_suppression` is a percentage (5 = at most 5 % of the records suppressed).

    Writes OUT (only when the result verifies) and REPORT (always), and returns the report.
    """
    started = time.perf_counter()
    table, delimiter = read_delimited(input)
    _check_columns(table, [*qis, *sensitive])
    hierarchies = {column: hierarchy_from_arx_csv(path, column) for column, path in qis.items()}
    model = PrivacyModel(k=k, l=l, max_suppression=max_suppression / 100, quality=quality or QualityModel())
    outcome = anonymise_table(table, hierarchies, model, sensitive=sensitive)
    dropped = [column for column in table.columns if column not in qis and column not in sensitive]
    scanned = [c for c in dropped if table.height and table[c].n_unique() / table.height >= IDENTIFIER_UNIQUENESS]
    result: dict[str, Any] = {
        "input": str(input),
        "records_in": table.height,
        "model": {"k": k, "l": l, "max_suppression_pct": max_suppression, "quality": model.quality.describe()},
        "quasi_identifiers": {column: str(path) for column, path in qis.items()},
        "sensitive": sensitive,
        "dropped_columns": dropped,
        "identifier_columns_scanned": scanned,
    }
    if not outcome.ok or outcome.release is None:
        out.unlink(missing_ok=True)
        failure = outcome.failure.as_dict() if outcome.failure else None
        result |= {"released": False, "out": None, "failure": failure}
        return _finish(result, report, started)
    out.parent.mkdir(parents=True, exist_ok=True)
    outcome.release.write_csv(out, separator=delimiter)
    verification = verify_release(
        out,
        list(qis),
        k,
        sensitive=sensitive,
        l=l,
        source=table,
        direct_identifiers=scanned,
        forbidden_columns=scanned,
    )
    if not verification.passed:
        out.unlink(missing_ok=True)
    search = outcome.search
    result |= {
        "released": verification.passed,
        "out": str(out) if verification.passed else None,
        "levels": {
            column: {"level": level, "name": outcome.level_names[column]} for column, level in outcome.levels.items()
        },
        "records_suppressed": outcome.metrics["records_suppressed"],
        "suppressed_pct": 100 * outcome.metrics["suppressed_share"],
        "equivalence_classes": outcome.metrics["equivalence_classes"],
        "loss": {
            "metric": outcome.metrics["loss_metric"],
            "value": outcome.metrics["loss"],
            "generalisation_only": outcome.metrics["loss_generalisation_only"],
            "generalisation_intensity": outcome.metrics["generalisation_intensity"],
            "discernibility": outcome.metrics["discernibility"],
        },
        "quality": outcome.metrics["quality"],
        "verification": {
            "passed": verification.passed,
            "k": verification.k,
            "l": min(verification.l_distinct.values()) if verification.l_distinct else None,
            "l_entropy": verification.l_entropy,
            "risk": verification.risk,
            "reasons": [reason.as_dict() for reason in verification.reasons],
        },
        "search": {
            "lattice_size": search.lattice_size if search else None,
            "nodes_evaluated": len(search.evaluations) if search else None,
        },
        "failure": None
        if verification.passed
        else {
            "code": "verification_failed",
            "reasons": [reason.as_dict() for reason in verification.reasons],
        },
    }
    return _finish(result, report, started)


def read_delimited(path: Path) -> tuple[pl.DataFrame, str]:
    """All columns as text; UTF-8 (BOM or not) or CP932; delimiter ',' or ';' from the header line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp932")
    delimiter = detect_delimiter(text)
    table = pl.read_csv(text.encode("utf-8"), separator=delimiter, infer_schema=False)
    return table, delimiter


def _check_columns(table: pl.DataFrame, columns: list[str]) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(
            f"入力CSVに列がありません: {', '.join(missing)} / columns not in the input CSV: {', '.join(missing)}"
        )


def _finish(result: dict[str, Any], report: Path, started: float) -> dict[str, Any]:
    result["seconds"] = round(time.perf_counter() - started, 3)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return result
