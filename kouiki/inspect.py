"""``kouiki inspect``: read any file exactly as intake would and say what kouiki sees, storing nothing.

It answers in about a second for a small file: the validation runs the dataset's checks as the SQL predicates
they are defined with (:meth:`expectations.suites.Check.failing_sql`, the same checks, findings and decision as
the pipeline's Great Expectations run), so neither Great Expectations nor the lake code is imported.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from expectations.registry import default_registry
from expectations.validate import ValidationResult, validate_table
from intake.headers import detect
from intake.problems import IntakeError
from intake.process import stage_file

if TYPE_CHECKING:
    from intake.process import StagedUpload


def inspect_file(path: Path, dataset_hint: str | None = None, *, validate: bool = True) -> dict[str, Any]:
    """Everything intake learns about a file, as a JSON-able dict. Unreadable files give ``error``."""
    registry = default_registry()
    try:
        staged = stage_file(path, registry, dataset_hint=dataset_hint)
    except IntakeError as err:
        return {"file": str(path), "ok": False, "error": err.to_dict()}
    raw = staged.raw_table
    match = staged.match
    candidates = detect(raw.header, registry, file_name=path.name)[:3]
    report: dict[str, Any] = {
        "file": str(path),
        "ok": True,
        "encoding": raw.encoding,
        "format": raw.format,
        "sheet": raw.sheet,
        "dataset": match.dataset_id,
        "dataset_name_ja": staged.dataset.name_ja,
        "variant": match.variant,
        "score": round(match.score, 3),
        "candidates": [{"dataset": c.dataset_id, "variant": c.variant, "score": round(c.score, 3)}
                       for c in candidates],
        "rows": staged.values.height,
        "blank_rows_skipped": raw.blank_rows_skipped,
        "preamble_lines": len(raw.preamble),
        "header": {
            "mapped": {k: v for k, v in match.mapping.items()},
            "renamed": match.renamed,
            "unmatched": match.unmatched,
            "missing": match.missing,
            "missing_required": match.missing_required,
        },
        "normalisations": staged.normalisations,
        "invalid_cells": staged.invalid_cells,
        "notices": [n.to_dict() for n in staged.notices],
    }
    if validate:
        result = validate_with_sql(staged)
        report["validation"] = {
            "decision": result.decision,
            "rows_accepted": result.n_accepted,
            "rows_failing": result.n_failing,
            "pass_rate": round(result.pass_rate, 4),
            "counts_by_code": result.counts_by_code,
            "first_findings": result.findings.head(20).to_dicts(),
        }
    return report


def validate_with_sql(staged: StagedUpload, *, with_ge: bool = False) -> ValidationResult:
    """Validate a staged file as the pipeline does (warehouse.load.validate_staged: the staged values and raw
    cells in a private DuckDB file), with the checks' SQL alone unless ``with_ge``."""
    with tempfile.TemporaryDirectory(prefix="kouiki-inspect-") as tmp:
        db = Path(tmp) / f"inspect-{uuid.uuid4().hex[:12]}.duckdb"
        con = duckdb.connect(str(db))
        try:
            con.register("values_df", staged.values.to_arrow())
            con.register("raw_df", staged.raw.to_arrow())
            con.execute("CREATE TABLE staged AS SELECT * FROM values_df")
            con.execute("CREATE TABLE raw AS SELECT * FROM raw_df")
        finally:
            con.close()
        return validate_table(db, "staged", staged.dataset, raw_table="raw", upload_id="inspect",
                              missing_columns=list(staged.match.missing), extra_columns=list(staged.match.unmatched),
                              missing_required=list(staged.match.missing_required), with_ge=with_ge)
