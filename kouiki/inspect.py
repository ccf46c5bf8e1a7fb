"""``kouiki inspect``: read any file exactly as intake would and say what kouiki sees, storing nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from expectations.registry import default_registry
from intake.headers import detect
from intake.mapping import proposals_for_file
from intake.problems import IntakeError
from intake.process import stage_file
from warehouse.load import validate_staged


def inspect_file(path: Path, dataset_hint: str | None = None, *, validate: bool = True) -> dict[str, Any]:
    """Everything intake learns about a file, as a JSON-able dict. Unreadable files give ``error``."""
    registry = default_registry()
    try:
        staged = stage_file(path, registry, dataset_hint=dataset_hint)
    except IntakeError as err:
        refused: dict[str, Any] = {"file": str(path), "ok": False, "error": err.to_dict()}
        if err.code == "no-dataset-match":   # issue 15: what the office could map it onto (intake/mapping.py)
            refused["mapping_proposals"] = proposals_for_file(path, registry)
        return refused
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
        with tempfile.TemporaryDirectory(prefix="kouiki-inspect-") as tmp:
            result = validate_staged(staged, staged.values, "inspect", Path(tmp))
        report["validation"] = {
            "decision": result.decision,
            "rows_accepted": result.n_accepted,
            "rows_failing": result.n_failing,
            "pass_rate": round(result.pass_rate, 4),
            "counts_by_code": result.counts_by_code,
            "first_findings": result.findings.head(20).to_dicts(),
        }
    return report
