"""``kouiki inspect``: read any file exactly as intake would and say what kouiki sees, storing nothing.

The data rows read are always reported (``rows``), whatever is decided about the dataset: a file whose header
matches no dataset, or that has no data row, still says how many rows it holds, its header and its closest
datasets, beside the error. Only a file that cannot be read as a table at all has ``rows: None``.

It answers in about a second for a small file: the validation runs the dataset's checks as the SQL predicates
they are defined with (:meth:`expectations.suites.Check.failing_sql`, the same checks, findings and decision as
the pipeline's Great Expectations run), so neither Great Expectations nor the lake code is imported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expectations.registry import Registry, default_registry
from intake.headers import detect, header_score
from intake.process import choose_dataset, stage_table
from intake.read import SOURCE_LINE, RawTable, read_file
from kouiki.problems import IntakeError, Problem
from warehouse.staged_db import validate_staged

if TYPE_CHECKING:
    from expectations.validate import ValidationResult
    from intake.process import StagedUpload


def inspect_file(path: Path, dataset_hint: str | None = None, *, validate: bool = True) -> dict[str, Any]:
    """Everything intake learns about a file, as a JSON-able dict. Unreadable files give ``error``."""
    registry = default_registry()
    try:
        raw = read_file(path, header_scorer=lambda h: header_score(h, registry))
    except IntakeError as err:
        return {"file": str(path), "ok": False, "rows": None, "error": err.to_dict()}
    report = _table_report(path, raw, registry)
    try:
        match = choose_dataset(raw, registry, dataset_hint=dataset_hint, file_name=path.name)
    except IntakeError as err:   # refused: the rows read are still reported
        refused: dict[str, Any] = {**report, "ok": False, "error": err.to_dict()}
        if err.code == "no-dataset-match":   # issue 15: what the office could map it onto (intake/mapping.py)
            from intake.mapping import proposals_json

            refused["mapping_proposals"] = proposals_json(raw, registry, path.name)
        return refused
    except KeyError as err:      # --dataset names no dataset of the registry
        unknown = IntakeError(Problem.of("unknown-dataset", "cli", dataset=dataset_hint, detail=err.args[0]))
        return {**report, "ok": False, "error": unknown.to_dict()}
    staged = stage_table(raw, registry.get(match.dataset_id), match)
    report.update({
        "ok": True,
        "dataset": match.dataset_id,
        "dataset_name_ja": staged.dataset.name_ja,
        "variant": match.variant,
        "score": round(match.score, 3),
        "rows": staged.values.height,
        "header": {
            "mapped": dict(match.mapping),
            "renamed": match.renamed,
            "unmatched": match.unmatched,
            "missing": match.missing,
            "missing_required": match.missing_required,
        },
        "normalisations": staged.normalisations,
        "invalid_cells": staged.invalid_cells,
        "notices": [n.to_dict() for n in staged.notices],
    })
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


def _table_report(path: Path, raw: RawTable, registry: Registry) -> dict[str, Any]:
    """What reading alone tells: format, rows, header rows, preamble and the closest datasets."""
    candidates = detect(raw.header, registry, file_name=path.name)[:3]
    return {
        "file": str(path),
        "encoding": raw.encoding,
        "format": raw.format,
        "sheet": raw.sheet,
        "rows": raw.data.height,
        "blank_rows_skipped": raw.blank_rows_skipped,
        "preamble_lines": len(raw.preamble),
        "columns": list(raw.header),
        # LinkData: column (as named in the data) → its '#property' name (English), for mapping onto a dataset
        "properties": dict(zip([c for c in raw.data.columns if c != SOURCE_LINE], raw.property_names,
                               strict=True)) if raw.property_names else {},
        "candidates": [{"dataset": c.dataset_id, "variant": c.variant, "score": round(c.score, 3)}
                       for c in candidates],
        "notices": [n.to_dict() for n in raw.notices],
    }


def validate_with_sql(staged: StagedUpload, *, with_ge: bool = False) -> ValidationResult:
    """Validate a staged file as the pipeline does (warehouse.staged_db.validate_staged: the staged values and
    raw cells in a private DuckDB file), with the checks' SQL alone unless ``with_ge``."""
    with tempfile.TemporaryDirectory(prefix="kouiki-inspect-") as tmp:
        return validate_staged(staged, staged.values, "inspect", Path(tmp), with_ge=with_ge)
