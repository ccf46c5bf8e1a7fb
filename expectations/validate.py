"""Validate one city's staged table against its dataset: GE on DuckDB, then every failing cell as a finding.

Input (from intake, see the module docs of :mod:`intake.process`): a DuckDB file with a table holding one
VARCHAR column per canonical column of the dataset plus ``_source_line`` and ``_row`` (0…n-1); optionally a
second table with the raw cell texts (same columns). The caller must have closed its own connections to
the file: GE opens it read-only, and DuckDB refuses differently configured connections to one file in one
process.

Steps: one GE run of the dataset's suite (:mod:`expectations.suites`) gives, per expectation, success and
the number of failing rows. GE on SQL lists at most ``partial_unexpected_count`` failing rows; for every
expectation whose list is short (a *gap*) the rows come from one SQL query derived from the same check
(:meth:`~expectations.suites.Check.failing_sql`), and the number found is compared with GE's count.
Each finding's severity comes from :func:`~kouiki.validation_errors.severity_for` (the dataset's keys and policy;
:func:`settle`). Rows with an error-severity finding are withheld (quarantined); rows with warnings only are
published, a typed cell that cannot hold its value published empty (:func:`published_values`). The dataset's
:class:`~kouiki.model.Policy` turns the withheld share into a decision: accept, quarantine or reject.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from expectations.suites import Check, build_checks, build_suite, count_failing, quote
from kouiki.model import Dataset, Policy
from kouiki.validation_errors import (
    EMPTIED_TYPES,
    REFINES,
    UNREADABLE_CODES,
    describe,
    error_type,
    impossible_date,
    severity_for,
)

Decision = Literal["accept", "quarantine", "reject"]
ROW, LINE = "_row", "_source_line"
SHOWN_VALUE_CHARS = 60          # a message quotes at most this much of a cell
_VALUE = "\x00value\x00"        # where the cell value goes in a message template

FINDING_SCHEMA: dict[str, Any] = {
    "upload_id": pl.String, "source_line": pl.Int64, "row": pl.Int64, "column": pl.String,
    "raw_value": pl.String, "value": pl.String, "error_code": pl.String, "message_ja": pl.String,
    "message_en": pl.String, "hint_ja": pl.String, "hint_en": pl.String, "severity": pl.String,
}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpectationSummary:
    """One expectation of the GE run, mapped back to its check."""

    check_id: str
    expectation_type: str
    error_code: str
    column: str
    severity: str
    success: bool
    unexpected_count: int


@dataclass(frozen=True)
class Gap:
    """An expectation whose failing rows GE did not list in full, and what the gap-closing SQL found."""

    check_id: str
    ge_unexpected_count: int
    ge_rows_listed: int
    rows_found: int

    @property
    def consistent(self) -> bool:
        return self.rows_found == self.ge_unexpected_count


@dataclass
class ValidationResult:
    """Everything one validation of one upload produced (findings as a polars DataFrame)."""

    upload_id: str
    dataset_id: str
    table: str
    row_count: int
    expectations: list[ExpectationSummary]
    findings: pl.DataFrame                  # FINDING_SCHEMA; file-level findings have row/source_line null
    failing_rows: pl.Series                 # sorted _row of rows with an error finding (quarantined)
    decision: Decision
    decision_reason: str                    # a reason code of decide()
    policy: Policy
    dataset: Dataset = field(repr=False)
    gaps: list[Gap] = field(default_factory=list)
    ge_success: bool = True
    ge_result: dict[str, Any] = field(default_factory=dict, repr=False)   # GE's result JSON (for Data Docs)

    @property
    def n_warnings(self) -> int:
        """Warning findings (cells, or columns for file-level codes): published, but counted."""
        return int((self.findings["severity"] == "warning").sum())

    @property
    def rows_with_warnings(self) -> int:
        """Published rows with at least one warning."""
        warned = self.findings.filter((pl.col("severity") == "warning") & pl.col("row").is_not_null())["row"]
        return int(warned.filter(~warned.is_in(self.failing_rows.implode())).n_unique())

    @property
    def n_failing(self) -> int:
        return len(self.failing_rows)

    @property
    def n_accepted(self) -> int:
        return self.row_count - self.n_failing

    @property
    def pass_rate(self) -> float:
        return self.n_accepted / self.row_count if self.row_count else 0.0

    @property
    def counts_by_code(self) -> dict[str, int]:
        """error code → number of findings (cells, or columns for file-level codes)."""
        counts = self.findings.group_by("error_code").len()
        return dict(sorted(zip(counts["error_code"].to_list(), counts["len"].to_list(), strict=True)))

    def accepted_rows(self) -> pl.Series:
        """Sorted _row of the rows that pass (no error finding)."""
        every = pl.Series(ROW, range(self.row_count), dtype=pl.Int64)
        return every.filter(~every.is_in(self.failing_rows.implode()))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (no findings, no GE JSON)."""
        return {
            "upload_id": self.upload_id, "dataset_id": self.dataset_id, "table": self.table,
            "row_count": self.row_count, "rows_failing": self.n_failing, "rows_accepted": self.n_accepted,
            "pass_rate": self.pass_rate, "decision": self.decision, "decision_reason": self.decision_reason,
            "warnings": self.n_warnings, "rows_with_warnings": self.rows_with_warnings,
            "counts_by_code": self.counts_by_code, "ge_success": self.ge_success,
            "expectations": [vars(e) for e in self.expectations],
            "gaps": [vars(g) | {"consistent": g.consistent} for g in self.gaps],
        }


def validate_table(
    db_path: Path,
    table: str,
    dataset: Dataset,
    *,
    raw_table: str | None = None,
    upload_id: str = "",
    missing_columns: Sequence[str] = (),
    extra_columns: Sequence[str] = (),
    missing_required: Sequence[str] = (),
    ge_row_limit: int = 0,
    batch_column: str = "",
    with_ge: bool = True,
) -> ValidationResult:
    """Validate ``table`` in the DuckDB file ``db_path`` against ``dataset`` (canonical variant).

    ``missing_columns`` / ``extra_columns`` / ``missing_required`` come from intake's header mapping and
    become file-level findings. ``ge_row_limit`` is GE's ``partial_unexpected_count``: 0 (default) asks GE
    for counts only, the fastest; any expectation with more failing rows than GE listed is a gap closed
    with SQL. ``batch_column`` (e.g. ``_upload_id``) validates several uploads at once: IDs must then be
    unique within each upload; split the result with :func:`split_batch`.

    ``with_ge=False`` (``kouiki inspect``) counts and lists the failing rows of the same checks with their SQL
    alone: the same findings and decision, without Great Expectations' start-up (seconds) or its result JSON.
    """
    checks = build_checks(dataset, batch_column=batch_column)
    row_count = _check_contract(db_path, table, raw_table, dataset)
    if not with_ge:
        return _validate_with_sql(db_path, table, dataset, checks, row_count, raw_table=raw_table,
                                  upload_id=upload_id, labels=label_findings(missing_columns, extra_columns,
                                                                             missing_required))
    from expectations import ge_duckdb  # Great Expectations: imported when a validation runs

    ge_result = ge_duckdb.run_suite(db_path, table, build_suite(dataset, checks),
                                    result_format=ge_duckdb.result_format_for(ge_row_limit, ROW))
    by_id = {c.id: c for c in checks}
    summaries = [_summarise(r, by_id) for r in ge_result.results]
    listed = {r.expectation_config.meta["check_id"]: _listed_rows(r) for r in ge_result.results
              if r.expectation_config is not None}
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        cell_findings, gaps = _cell_findings(con, table, raw_table, summaries, by_id, listed)
    finally:
        con.close()
    labels = label_findings(missing_columns, extra_columns, missing_required)
    findings = pl.concat([labels, *cell_findings], how="vertical").with_columns(
        pl.lit(upload_id, dtype=pl.String).alias("upload_id"))
    result = ValidationResult(
        upload_id=upload_id, dataset_id=dataset.id, table=table, row_count=row_count,
        expectations=summaries, findings=findings, failing_rows=pl.Series(ROW, [], dtype=pl.Int64),
        decision="accept", decision_reason="", policy=dataset.policy, dataset=dataset, gaps=gaps,
        ge_success=bool(ge_result.success), ge_result=ge_result.to_json_dict())
    return conclude(result, findings)


def _validate_with_sql(db_path: Path, table: str, dataset: Dataset, checks: list[Check], row_count: int, *,
                       raw_table: str | None, upload_id: str, labels: pl.DataFrame) -> ValidationResult:
    """validate_table's findings from the checks' SQL predicates only (every failing row listed by SQL)."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        counts = count_failing(con, table, checks)
        summaries = [ExpectationSummary(c.id, f"sql:{c.kind}", c.error_code, c.column,
                                        error_type(c.error_code).severity, counts.get(c.id, 0) == 0,
                                        counts.get(c.id, 0)) for c in checks if c.id in counts]
        by_id = {c.id: c for c in checks}
        cell_findings, _ = _cell_findings(con, table, raw_table, summaries, by_id, {})
    finally:
        con.close()
    findings = pl.concat([labels, *cell_findings], how="vertical").with_columns(
        pl.lit(upload_id, dtype=pl.String).alias("upload_id"))
    result = ValidationResult(
        upload_id=upload_id, dataset_id=dataset.id, table=table, row_count=row_count, expectations=summaries,
        findings=findings, failing_rows=pl.Series(ROW, [], dtype=pl.Int64), decision="accept", decision_reason="",
        policy=dataset.policy, dataset=dataset, ge_success=all(s.success for s in summaries))
    return conclude(result, findings)


def conclude(result: ValidationResult, findings: pl.DataFrame) -> ValidationResult:
    """``result`` with ``findings`` settled (severities), its withheld rows and the policy's decision."""
    settled = settle(findings, result.dataset, result.row_count).sort(["row", "column"], nulls_last=False)
    failing = failing_rows_of(settled)
    file_errors = settled.filter((pl.col("severity") == "error") & pl.col("row").is_null())["column"].to_list()
    decision, reason = decide(result.policy, result.row_count, len(failing), file_errors)
    return replace(result, findings=settled, failing_rows=failing, decision=decision, decision_reason=reason)


def add_findings(result: ValidationResult, more: pl.DataFrame) -> ValidationResult:
    """``result`` with more findings (FINDING_SCHEMA: the lake load's municipality check, intake's repairs)."""
    if more.is_empty():
        return result
    more = more.with_columns(pl.lit(result.upload_id, dtype=pl.String).alias("upload_id"))
    return conclude(result, pl.concat([result.findings, more.select(list(FINDING_SCHEMA))], how="vertical"))


def settle(findings: pl.DataFrame, dataset: Dataset, row_count: int) -> pl.DataFrame:
    """Every finding's severity under the dataset's keys and policy (:func:`~kouiki.validation_errors.severity_for`).

    A key column left empty in *every* row (or absent) tells no row apart, so it withholds none: a file is never
    withheld whole for one empty column. Its key-errors become the standard's own finding, ``missing-cell``
    (a warning) when the column is 必須, and nothing otherwise (an empty optional ID breaks no rule)."""
    findings = _absent_keys_relaxed(findings, dataset, row_count)
    pairs = findings.select("error_code", "column").unique().iter_rows()
    severities = pl.DataFrame([(code, column, severity_for(code, column, dataset)) for code, column in pairs],
                              schema={"error_code": pl.String, "column": pl.String, "severity": pl.String},
                              orient="row")
    return (findings.drop("severity").join(severities, on=["error_code", "column"], how="left",
                                           maintain_order="left").select(list(FINDING_SCHEMA)))


def _absent_keys_relaxed(findings: pl.DataFrame, dataset: Dataset, row_count: int) -> pl.DataFrame:
    empty_key = (pl.col("error_code") == "key-error") & pl.col("value").is_null()
    counts = findings.filter(empty_key).group_by("column").agg(pl.col("row").n_unique().alias("n"))
    absent = counts.filter(pl.col("n") >= row_count)["column"].to_list() if row_count else []
    if not absent:
        return findings
    relaxed = [findings.filter(~(empty_key & pl.col("column").is_in(absent)))]
    for column in absent:
        declared = dataset.canonical.column(column)
        if declared is not None and declared.required:
            rows = findings.filter(empty_key & (pl.col("column") == column))
            relaxed.append(_worded(rows, "missing-cell", "required", column).with_columns(
                rows["upload_id"].alias("upload_id")))
    return pl.concat(relaxed, how="vertical")


def decide(policy: Policy, row_count: int, failing: int, file_errors: Sequence[str] = ()) -> tuple[
        Decision, str]:
    """The policy's decision for an upload and its reason code (reports word it for staff):
    ``missing-required-column`` (a strict column is missing: ``file_errors``), ``no-rows``,
    ``no-failing-rows``, ``policy-rejects-any-error``, ``above-threshold`` or ``failing-rows-set-aside``."""
    if file_errors:
        return "reject", "missing-required-column"
    if row_count == 0:
        return "reject", "no-rows"
    if failing == 0:
        return "accept", "no-failing-rows"
    if policy.on_error == "reject":
        return "reject", "policy-rejects-any-error"
    if failing / row_count > policy.reject_above:
        return "reject", "above-threshold"
    return "quarantine", "failing-rows-set-aside"


# --- steps ------------------------------------------------------------------------------------------

def _check_contract(db_path: Path, table: str, raw_table: str | None, dataset: Dataset) -> int:
    """The staged table has every canonical column + _row + _source_line; returns its row count."""
    needed = [c.name for c in dataset.canonical.columns] + [ROW, LINE]
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        for name, required in ((table, needed), (raw_table, [*needed[:-2], ROW])):
            if name is None:
                continue
            present = {r[0] for r in con.execute(f"DESCRIBE {quote(name)}").fetchall()}
            absent = [c for c in required if c not in present]
            if absent:
                raise ValueError(f"table {name!r} lacks the canonical column(s) {absent} of {dataset.id!r}")
        row = con.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def _summarise(result: Any, by_id: dict[str, Check]) -> ExpectationSummary:
    config = result.expectation_config
    check = by_id[config.meta["check_id"]]
    return ExpectationSummary(
        check_id=check.id, expectation_type=config.type, error_code=check.error_code, column=check.column,
        severity=error_type(check.error_code).severity, success=bool(result.success),
        unexpected_count=int(result.result.get("unexpected_count") or 0))


def _listed_rows(result: Any) -> list[int]:
    """The failing _row values GE listed itself (at most partial_unexpected_count)."""
    listed = result.result.get("partial_unexpected_index_list") or []
    return [int(item[ROW]) for item in listed]


def _cell_findings(con: duckdb.DuckDBPyConnection, table: str, raw_table: str | None,
                   summaries: list[ExpectationSummary], by_id: dict[str, Check],
                   listed: dict[str, list[int]]) -> tuple[list[pl.DataFrame], list[Gap]]:
    """One query per failing expectation: its failing rows with line, value and raw value."""
    frames, gaps = [], []
    for summary in summaries:
        check = by_id[summary.check_id]
        if summary.unexpected_count == 0 or check.kind == "exists":
            continue
        rows = listed.get(check.id, [])
        complete = len(rows) >= summary.unexpected_count
        if complete:
            where = f"{quote(ROW)} IN ({', '.join(str(r) for r in rows)})"
        else:
            where = check.failing_sql(table) or "false"
        found = _failing_cells(con, table, raw_table, check, where)
        if not complete:
            gap = Gap(check.id, summary.unexpected_count, len(rows), found.height)
            if not gap.consistent:
                log.warning("gap-closing SQL of %s found %d rows, GE counted %d",
                            check.id, gap.rows_found, gap.ge_unexpected_count)
            gaps.append(gap)
        frames.append(_with_words(found, check))
    return frames, gaps


def _failing_cells(con: duckdb.DuckDBPyConnection, table: str, raw_table: str | None, check: Check,
                   where: str) -> pl.DataFrame:
    col = quote(check.column)
    # the predicate sees only the staged table (the raw table has the same column names)
    failing = (f"SELECT {quote(ROW)} AS row, {quote(LINE)} AS source_line, CAST({col} AS VARCHAR) AS value "
               f"FROM {quote(table)} WHERE {where}")
    if raw_table:
        sql = (f"WITH f AS ({failing}) SELECT f.source_line, f.row, CAST(r.{col} AS VARCHAR) AS raw_value, "
               f"f.value FROM f LEFT JOIN {quote(raw_table)} r ON r.{quote(ROW)} = f.row ORDER BY f.row")
    else:
        sql = f"WITH f AS ({failing}) SELECT source_line, row, value AS raw_value, value FROM f ORDER BY row"
    return con.execute(sql).pl()


def _with_words(found: pl.DataFrame, check: Check) -> pl.DataFrame:
    """Add column, code, severity and the messages/hints (value spliced in, vectorised)."""
    worded = _worded(found, check.error_code, check.rule, check.column, check.other_column, check.value_set)
    return _impossible_dates(worded, check.column) if check.rule == "date" else worded


def _impossible_dates(findings: pl.DataFrame, column: str) -> pl.DataFrame:
    """A date check's findings whose value is shaped like a date but is not in the calendar (2023/02/30,
    令和5年13月1日) become ``date-error`` with their own words (2月30日は存在しません) and fix."""
    words = [impossible_date(v, column) for v in findings["raw_value"].to_list()]
    if not any(words):
        return findings
    fields = ("message_ja", "message_en", "hint_ja", "hint_en")
    replaced = {f: [getattr(w, f) if w else old for w, old in zip(words, findings[f].to_list(), strict=True)]
                for f in fields}
    code = ["date-error" if w else old for w, old in zip(words, findings["error_code"].to_list(), strict=True)]
    return findings.with_columns(pl.Series("error_code", code, dtype=pl.String),
                                 *(pl.Series(f, replaced[f], dtype=pl.String) for f in fields))


def _worded(found: pl.DataFrame, code: str, rule: str | None, column: str, other: str = "",
            values: tuple[str, ...] = ()) -> pl.DataFrame:
    """Findings of one code in one column from (source_line, row, raw_value, value) rows."""
    words = describe(code, rule, column=column, value=_VALUE, other=other, values=values)
    shown = (pl.when(pl.col("value").str.len_chars() > SHOWN_VALUE_CHARS)
             .then(pl.col("value").str.slice(0, SHOWN_VALUE_CHARS) + "…")
             .otherwise(pl.col("value")).fill_null(""))
    return found.select(
        pl.lit(None, dtype=pl.String).alias("upload_id"),
        pl.col("source_line").cast(pl.Int64), pl.col("row").cast(pl.Int64),
        pl.lit(column).alias("column"), pl.col("raw_value"), pl.col("value"),
        pl.lit(code).alias("error_code"),
        _splice(words.message_ja, shown).alias("message_ja"),
        _splice(words.message_en, shown).alias("message_en"),
        pl.lit(words.hint_ja).alias("hint_ja"), pl.lit(words.hint_en).alias("hint_en"),
        pl.lit(error_type(code).severity).alias("severity"),
    )


def problem_findings(problems: pl.DataFrame) -> pl.DataFrame:
    """Findings (FINDING_SCHEMA) of per-cell problems intake found or repaired (row, source_line, column,
    raw_value, value, error_code, rule); the message quotes the raw value as written."""
    frames = [pl.DataFrame(schema=FINDING_SCHEMA)]
    for (code, rule, column), group in problems.group_by("error_code", "rule", "column", maintain_order=True):
        shown = group.with_columns(pl.col("value").alias("_published"), pl.col("raw_value").alias("value"))
        frames.append(_worded(shown, str(code), rule if rule is None else str(rule), str(column))
                      .with_columns(shown["_published"].alias("value")))
    return pl.concat(frames, how="vertical")


def _splice(template: str, value: pl.Expr) -> pl.Expr:
    if _VALUE not in template:
        return pl.lit(template)
    before, after = template.split(_VALUE, 1)
    return pl.concat_str([pl.lit(before), value, pl.lit(after)])


def label_findings(missing_columns: Sequence[str], extra_columns: Sequence[str],
                    missing_required: Sequence[str]) -> pl.DataFrame:
    required = set(missing_required)
    labelled = ([("missing-required-label", c) for c in missing_required]
                + [("missing-label", c) for c in missing_columns if c not in required]
                + [("extra-label", c) for c in extra_columns])
    records = []
    for code, column in labelled:
        words = describe(code, "label", column=column)
        records.append({"upload_id": None, "source_line": None, "row": None, "column": column,
                        "raw_value": None, "value": None, "error_code": code,
                        "message_ja": words.message_ja, "message_en": words.message_en,
                        "hint_ja": words.hint_ja, "hint_en": words.hint_en,
                        "severity": error_type(code).severity})
    return pl.DataFrame(records, schema=FINDING_SCHEMA)


def failing_rows_of(findings: pl.DataFrame) -> pl.Series:
    errors = findings.filter((pl.col("severity") == "error") & pl.col("row").is_not_null())
    return errors["row"].unique().sort().rename(ROW)



@dataclass(frozen=True)
class BatchPart:
    """Where one upload sits in a batch table: rows ``offset`` … ``offset + rows - 1``, and its header findings."""

    upload_id: str
    offset: int
    rows: int
    missing_columns: Sequence[str] = ()
    extra_columns: Sequence[str] = ()
    missing_required: Sequence[str] = ()


def split_batch(result: ValidationResult, parts: Sequence[BatchPart]) -> list[ValidationResult]:
    """One result per upload from the validation of a batch (rows re-based to each upload, own decision).

    Per-expectation counts are recounted from each upload's findings; the GE result JSON stays the batch's."""
    out = []
    for part in parts:
        end = part.offset + part.rows
        cells = (result.findings.filter(pl.col("row").is_not_null() & (pl.col("row") >= part.offset)
                                        & (pl.col("row") < end))
                 .with_columns((pl.col("row") - part.offset).alias("row")))
        labels = label_findings(part.missing_columns, part.extra_columns, part.missing_required)
        findings = pl.concat([labels, cells], how="vertical").with_columns(
            pl.lit(part.upload_id, dtype=pl.String).alias("upload_id"))
        counts: dict[tuple[str, str], int] = {}
        for r in findings.group_by("error_code", "column").len().iter_rows(named=True):
            key = (REFINES.get(r["error_code"], r["error_code"]), r["column"])   # date-error: its check's
            counts[key] = counts.get(key, 0) + r["len"]
        summaries = [replace(e, unexpected_count=int(counts.get((e.error_code, e.column), 0)),
                             success=counts.get((e.error_code, e.column), 0) == 0) for e in result.expectations]
        out.append(conclude(replace(result, upload_id=part.upload_id, row_count=part.rows,
                                    expectations=summaries), findings))
    return out


def published_values(values: pl.DataFrame, result: ValidationResult) -> pl.DataFrame:
    """The rows to publish: every row not withheld, each typed cell with a warning that its value cannot be
    read as the type (EMPTIED_TYPES) made empty. Text cells keep the value as written."""
    kept = values.filter(~pl.col(ROW).is_in(result.failing_rows.implode()))
    typed = {c.name for c in result.dataset.canonical.columns if c.type in EMPTIED_TYPES}
    unreadable = result.findings.filter(
        (pl.col("severity") == "warning") & pl.col("row").is_not_null() & pl.col("column").is_in(list(typed))
        & pl.col("error_code").is_in(list(UNREADABLE_CODES)))
    for column, rows in unreadable.group_by("column").agg(pl.col("row")).iter_rows():
        kept = kept.with_columns(pl.when(pl.col(ROW).is_in(rows)).then(None).otherwise(pl.col(column))
                                 .alias(column))
    return kept
