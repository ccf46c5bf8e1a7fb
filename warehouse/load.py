"""Loading uploads into the lake: stage them, validate them with Great Expectations, and write each city's
partition (published rows, withheld rows, row-level findings with their severity) plus each upload's report.

``lake.staged`` holds every row without an error finding (warnings are published: a typed cell that cannot
hold its value is emptied, text is kept as written, see :func:`expectations.validate.published_values`), with
the city's extra columns after the standard ones. ``lake.quarantine`` holds the withheld rows with their
``_errors``; ``lake.findings`` every finding, errors and warnings, for the city's report, the release's
per-column conformance and the scoreboard.

Validation runs on a private DuckDB file per batch (not the shared warehouse), so city partitions can load
in parallel without touching the warehouse's single-writer lock. Many small uploads of one dataset are
validated together in one GE run (IDs unique per upload), because GE's fixed cost per run would otherwise
dominate when hundreds of cities load at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from expectations.registry import Registry
from expectations.report import build_data_docs, render_report
from expectations.validate import (
    FINDING_SCHEMA,
    BatchPart,
    ValidationResult,
    add_findings,
    problem_findings,
    published_values,
    split_batch,
)
from intake.landing import CHANGED_CODE, LandedFileChanged, changed_detail, local_copy
from intake.process import StagedUpload, stage_file
from kouiki import catalog, lake
from kouiki.catalog import UploadStatus
from kouiki.localgov import lookup, other_municipality
from kouiki.problems import IntakeError
from kouiki.settings import Paths
from kouiki.validation_errors import describe, error_type
from warehouse.staged_db import validate_staged as validate_staged  # shared with the service and inspect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadOutcome:
    upload_id: str
    dataset_id: str | None
    decision: str                 # accept, quarantine, reject, unreadable
    rows: int
    rows_accepted: int
    rows_quarantined: int
    failures_by_code: dict[str, int]       # every finding by code, errors and warnings
    report_html: Path | None
    sample: list[dict[str, Any]]
    rows_with_warnings: int = 0            # published rows with at least one warning
    errors_by_code: dict[str, int] | None = None     # error findings only (why rows were withheld)


Item = tuple[catalog.UploadRow, StagedUpload]
# A batch validated in one Great Expectations run holds at most this many rows (memory stays bounded).
BATCH_ROWS = 400_000


def load_uploads(paths: Paths, registry: Registry, uploads: list[catalog.UploadRow],
                 submits_for: dict[str, tuple[str, ...]] | None = None) -> list[LoadOutcome]:
    """Stage every upload, validate them per dataset in batches (one GE run per batch, not per file), then
    write each city's partition and report. Never raises on bad input: an unreadable file is recorded as
    such, a rejected one leaves the city's previous good data in the lake. Outcomes are in input order.

    ``submits_for`` maps an uploader's code to the other municipalities it may submit rows for: such rows are
    split off to their municipality (``_city_code``); rows of any other municipality are refused."""
    rights = submits_for or {}
    outcomes: dict[str, LoadOutcome] = {}
    staged: list[Item] = []
    for upload in uploads:
        try:
            source = local_copy(paths, upload.stored_path)   # fetched from KOUIKI_LAKE_URL when this home lacks it
        except LandedFileChanged as exc:
            outcomes[upload.upload_id] = _changed(paths, upload, exc)
            continue
        try:
            staged.append((upload, stage_file(source, registry,
                                              original_name=upload.original_name, dataset_hint=upload.dataset_id,
                                              city_code=upload.city_code)))
        except IntakeError as err:
            outcomes[upload.upload_id] = _unreadable(paths, upload, err)
    for batch in _batches(staged):
        for (upload, one), result in zip(batch, _validate_batch(paths, batch), strict=True):
            result = add_findings(result, problem_findings(one.cell_problems))
            cities, result = assign_municipalities(one, result, upload.city_code,
                                                   rights.get(upload.city_code, ()))
            outcomes[upload.upload_id] = _write(paths, upload, one, result, cities)
    return [outcomes[u.upload_id] for u in uploads]


def _batches(staged: list[Item]) -> list[list[Item]]:
    """Uploads of one dataset together, in order, up to BATCH_ROWS rows per batch."""
    by_dataset: dict[str, list[Item]] = {}
    for item in staged:
        by_dataset.setdefault(item[1].dataset.id, []).append(item)
    batches: list[list[Item]] = []
    for items in by_dataset.values():
        current: list[Item] = []
        rows = 0
        for item in items:
            if current and rows + item[1].values.height > BATCH_ROWS:
                batches.append(current)
                current, rows = [], 0
            current.append(item)
            rows += item[1].values.height
        batches.append(current)
    return batches


def _validate_batch(paths: Paths, batch: list[Item]) -> list[ValidationResult]:
    """One GE run over every upload of the batch, split back into one result per upload."""
    if len(batch) == 1:
        upload, one = batch[0]
        single = validate_staged(one, _with_provenance(one.values, upload), upload.upload_id, paths.tmp)
        _data_docs(paths, one.dataset.id, single, upload.upload_id)
        return [single]
    parts, values, raws, offset = [], [], [], 0
    for upload, one in batch:
        n = one.values.height
        parts.append(BatchPart(upload.upload_id, offset, n, tuple(one.match.missing), tuple(one.match.unmatched),
                               tuple(one.match.missing_required)))
        shift = pl.col("_row") + offset
        values.append(_with_provenance(one.values, upload).with_columns(shift))
        raws.append(one.raw.with_columns(shift))
        offset += n
    first = batch[0][1]
    # uploads may carry different extra columns: missing ones are null
    combined = replace(first, values=pl.concat(values, how="diagonal"), raw=pl.concat(raws, how="diagonal"),
                       match=replace(first.match, missing=[], unmatched=[], missing_required=[]))
    result = validate_staged(combined, combined.values, f"batch-{batch[0][0].upload_id}", paths.tmp,
                             batch_column="_upload_id")
    _data_docs(paths, first.dataset.id, result, f"batch-{batch[0][0].upload_id}")
    return split_batch(result, parts)


def _data_docs(paths: Paths, dataset_id: str, result: ValidationResult, run_name: str) -> None:
    """GE Data Docs of the latest validation of a dataset, for the data office (reports/office/data_docs)."""
    try:
        build_data_docs(result.ge_result, paths.reports / "office" / "data_docs" / dataset_id, run_name=run_name)
    except Exception as exc:  # Data Docs are a convenience: never fail a city's load for them
        log.warning("GE Data Docs for %s not built: %s", dataset_id, exc)


def _changed(paths: Paths, upload: catalog.UploadRow, exc: LandedFileChanged) -> LoadOutcome:
    """The copy at KOUIKI_LAKE_URL is not the bytes the city sent: refused as ``recovery.start`` refuses a
    changed file in the home (the lake asset checks first, so this is for other callers)."""
    log.error("%s", exc)
    detail = changed_detail()
    catalog.set_upload_status(paths.catalog_url, upload.upload_id, UploadStatus.UNREADABLE, detail=detail)
    return LoadOutcome(upload.upload_id, upload.dataset_id, "unreadable", 0, 0, 0, {CHANGED_CODE: 1}, None,
                       [detail["error"] | {"where": str(exc).split(": ", 1)[0]}])


def _unreadable(paths: Paths, upload: catalog.UploadRow, err: IntakeError) -> LoadOutcome:
    catalog.set_upload_status(paths.catalog_url, upload.upload_id, UploadStatus.UNREADABLE,
                              detail={"error": err.to_dict()})
    return LoadOutcome(upload.upload_id, upload.dataset_id, "unreadable", 0, 0, 0, {err.code: 1}, None,
                       [err.to_dict()])


def assign_municipalities(staged: StagedUpload, result: ValidationResult, uploader: str,
                          submits_for: tuple[str, ...]) -> tuple[pl.Series, ValidationResult]:
    """Each row's municipality (``_city_code``) from its local-government code, and the result with a
    finding for every row of a municipality the uploader may not submit for.

    A row without a code, or with a code :func:`kouiki.localgov.other_municipality` does not count as
    another government's, belongs to the uploader."""
    column = staged.dataset.code_column
    n = staged.values.height
    own = pl.Series("_city_code", [uploader] * n, dtype=pl.String)
    if column not in staged.values.columns:
        return own, result
    codes = staged.values[column]
    distinct = codes.drop_nulls().unique().to_list()   # few distinct codes: decide once each
    others = [c for c in distinct if other_municipality(c, uploader)]
    other = codes.is_in(others).fill_null(False)
    allowed = other & codes.is_in(list(submits_for)).fill_null(False)
    cities = pl.select(pl.when(allowed).then(codes).otherwise(own)).to_series().alias("_city_code")
    refused = other & ~allowed
    if not refused.any():
        return cities, result
    rows = staged.values.filter(refused).select("_row", "_source_line", column)
    raw = staged.raw.filter(refused)[column]
    records = []
    for (row, line, code), raw_value in zip(rows.iter_rows(), raw, strict=True):
        words = describe("other-municipality", column=column, value=code)
        records.append({"upload_id": result.upload_id, "source_line": line, "row": row, "column": column,
                        "raw_value": raw_value, "value": code, "error_code": "other-municipality",
                        "message_ja": words.message_ja, "message_en": words.message_en, "hint_ja": words.hint_ja,
                        "hint_en": words.hint_en, "severity": error_type("other-municipality").severity})
    return cities, add_findings(result, pl.DataFrame(records, schema=FINDING_SCHEMA))


def _write(paths: Paths, upload: catalog.UploadRow, staged: StagedUpload, result: ValidationResult,
           cities: pl.Series | None = None) -> LoadOutcome:
    """Write one upload's partition (unless rejected), its history row and its report; update the catalog."""
    values = _with_provenance(staged.values, upload)
    if cities is not None:
        values = values.with_columns(cities)
    accepted = published_values(values, result)
    dataset_id = staged.dataset.id
    if result.decision != "reject":
        lake.write_partition(accepted, paths.lake, "staged", dataset_id, upload.city_code)
        lake.write_partition(_quarantine(values, result), paths.lake, "quarantine", dataset_id, upload.city_code)
        lake.write_partition(result.findings.with_columns(pl.lit(upload.city_code).alias("_city_code")),
                             paths.lake, "findings", dataset_id, upload.city_code)
    report_html = write_report(paths, staged, result, upload)
    lake.write_partition(_history_row(upload, dataset_id, result), paths.lake, "history", dataset_id,
                         upload.city_code, file_name=f"{upload.upload_id}.parquet")
    rows_accepted = accepted.height if result.decision != "reject" else 0
    outcome = LoadOutcome(
        upload_id=upload.upload_id,
        dataset_id=dataset_id,
        decision=result.decision,
        rows=values.height,
        rows_accepted=rows_accepted,
        rows_quarantined=values.height - rows_accepted,
        failures_by_code=dict(result.counts_by_code),
        report_html=report_html,
        sample=result.findings.filter(pl.col("severity") == "error").head(10).to_dicts(),
        rows_with_warnings=result.rows_with_warnings if result.decision != "reject" else 0,
        errors_by_code=_errors_by_code(result),
    )
    catalog.set_upload_status(
        paths.catalog_url, upload.upload_id, UploadStatus.of_decision(result.decision),
        dataset_id=dataset_id, variant=staged.match.variant,
        detail={"rows": outcome.rows, "rows_accepted": outcome.rows_accepted,
                "rows_quarantined": outcome.rows_quarantined, "failures_by_code": outcome.failures_by_code,
                "rows_with_warnings": outcome.rows_with_warnings, "errors_by_code": outcome.errors_by_code,
                "report_html": str(report_html.relative_to(paths.home)),
                "report_json": str(report_html.with_suffix(".json").relative_to(paths.home))},
    )
    return outcome


def _errors_by_code(result: ValidationResult) -> dict[str, int]:
    errors = result.findings.filter(pl.col("severity") == "error").group_by("error_code").len()
    return dict(sorted(zip(errors["error_code"].to_list(), errors["len"].to_list(), strict=True)))


def _with_provenance(values: pl.DataFrame, upload: catalog.UploadRow) -> pl.DataFrame:
    return values.with_columns(
        pl.lit(upload.city_code).alias("_city_code"),
        pl.lit(upload.upload_id).alias("_upload_id"),
        pl.lit(upload.original_name).alias("_source_file"),
    )


def _history_row(upload: catalog.UploadRow, dataset_id: str, result: ValidationResult) -> pl.DataFrame:
    """One row per processed upload, so the office can follow each city's quality over time."""
    accepted = result.n_accepted if result.decision != "reject" else 0
    return pl.DataFrame({
        "_city_code": [upload.city_code],
        "upload_id": [upload.upload_id],
        "dataset_id": [dataset_id],
        "file": [upload.original_name],
        "received_at": [upload.received_at],
        "validated_at": [catalog.now()],
        "rows": [result.row_count],
        "rows_accepted": [accepted],
        "rows_quarantined": [result.row_count - accepted],
        "pass_rate": [result.pass_rate],
        "decision": [result.decision],
        "errors_by_code": [json.dumps(result.counts_by_code, ensure_ascii=False)],
    })


def _quarantine(values: pl.DataFrame, result: ValidationResult) -> pl.DataFrame:
    """Failing rows with the codes of their problems (``_errors``: 'column:code; …')."""
    errors = (
        result.findings.filter(pl.col("severity") == "error")
        .group_by("row")
        .agg(pl.concat_str([pl.col("column"), pl.col("error_code")], separator=":").str.join("; ")
             .alias("_errors"))
        .rename({"row": "_row"})
    )
    return values.join(errors.with_columns(pl.col("_row").cast(pl.Int64)), on="_row", how="inner")


def write_report(paths: Paths, staged: StagedUpload, result: ValidationResult,
                  upload: catalog.UploadRow) -> Path:
    city = lookup(upload.city_code)
    html, doc = render_report(
        result,
        file_name=upload.original_name,
        city_name=city.name if city else upload.city_code,
        dataset_name_ja=staged.dataset.name_ja,
        normalisations=staged.normalisations,
        notices=[n.to_dict() for n in staged.notices],
        received_at=upload.received_at,
    )
    folder = paths.reports / upload.city_code
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{upload.upload_id}.html"
    target.write_text(html, encoding="utf-8")
    target.with_suffix(".json").write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=str),
                                           encoding="utf-8")
    return target
