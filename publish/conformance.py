"""Per-column conformance of a release: for each standard column, the share of published rows whose value meets
the standard.

A published row's value in a standard column does *not* meet the standard when

* the lake has a finding on that cell (``findings.<dataset>``: one row per failing cell, with ``column``,
  ``error_code`` and ``severity``, joined to the published row on its upload and source line) — a warning
  (published with the raw value kept or the cell emptied) or an error; or
* the column is required (必須) and the value is empty, whatever the reason (a cell left empty, a column the
  city's file did not have) — except where empty is one of the column's values (a flag's "no", an enum with
  ``''``), as validation treats it.

Figures are computed on the published table itself, so they describe exactly the rows of the release. Only
counts leave here; the findings (values, line numbers) stay in the lake.
"""

from __future__ import annotations

from typing import Any

import duckdb

from kouiki.model import Column, Dataset
from kouiki.sql import literal, quote

# Provenance columns of a published table that identify the city's cell a finding is about.
ROW_KEY = ("_upload_id", "_source_line")
BASIS = ("findings.<dataset> (every failing cell, warnings and errors) joined to the published rows on "
         "upload and source line; a required column's empty value fails too")


def release_conformance(con: duckdb.DuckDBPyConnection, dataset: Dataset, table: str) -> dict[str, Any] | None:
    """The conformance section of a release's metadata, or None when it cannot be computed (the table has no
    provenance columns, or the connection has no findings view for the dataset)."""
    have = {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    findings = f"findings.{quote(dataset.id)}"
    if not set(ROW_KEY) <= set(have) or not _exists(con, "findings", dataset.id):
        return None
    columns = [c for c in dataset.canonical.columns if c.name in have]
    counted = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    rows = int(counted[0]) if counted else 0
    findings_columns = {r[0] for r in con.execute(f"DESCRIBE {findings}").fetchall()}
    # a lake without findings yet has a placeholder view without severities: every finding counts as an error
    severity = ("CASE WHEN f.severity IN ('warning', 'warn', 'info') THEN 'warning' ELSE 'error' END"
                if "severity" in findings_columns else "'error'")
    failing = _failing_cells(table, findings, columns, severity)
    by_column = _per_column(con, failing)
    by_code = _per_code(con, table, findings)
    all_ok = con.execute(f"SELECT {rows} - count(DISTINCT (_upload_id, _source_line)) FROM ({failing})").fetchone()
    rows_conforming = int(all_ok[0]) if all_ok else rows
    return {
        "basis": BASIS,
        "rows": rows,
        "rows_conforming": rows_conforming,
        "share_rows_conforming": _share(rows_conforming, rows),
        "columns": {c.name: _column_entry(c, rows, by_column.get(c.name, {}), by_code.get(c.name, {}))
                    for c in columns},
    }


def _exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                      [schema, name]).fetchone()
    return bool(row and row[0])


def _failing_cells(table: str, findings: str, columns: list[Column], severity: str) -> str:
    """A query of (column, _upload_id, _source_line, reason) for every published cell that fails: one row per
    finding on it, plus one per empty required value (reason ``empty``)."""
    names = ", ".join(literal(c.name) for c in columns)
    parts = [
        f"SELECT f.\"column\" AS column_name, t._upload_id, t._source_line, {severity} AS reason "
        f"FROM {table} AS t JOIN {findings} AS f "
        f"ON f.upload_id = t._upload_id AND f.source_line = t._source_line "
        f"WHERE f.\"column\" IN ({names})" if columns else "",
    ]
    for c in columns:
        if _must_have_value(c):
            value = quote(c.name)
            parts.append(f"SELECT {literal(c.name)}, _upload_id, _source_line, 'empty' FROM {table} "
                         f"WHERE {value} IS NULL OR trim(CAST({value} AS VARCHAR)) = ''")
    parts = [p for p in parts if p]
    if not parts:
        return "SELECT NULL AS column_name, NULL AS _upload_id, NULL AS _source_line, NULL AS reason WHERE false"
    return " UNION ALL ".join(parts)


def _must_have_value(column: Column) -> bool:
    """Required, and empty is not one of its values (an empty flag means "no", as the suites treat it)."""
    return column.required and column.type != "flag" and "" not in (column.enum or ())


def _per_column(con: duckdb.DuckDBPyConnection, failing: str) -> dict[str, dict[str, int]]:
    """{column: {"failing_rows", "warnings", "errors", "empty"}}; warnings and errors count cells with findings."""
    sql = (f"SELECT column_name, count(DISTINCT (_upload_id, _source_line)), "
           "count(*) FILTER (WHERE reason = 'warning'), count(*) FILTER (WHERE reason = 'error'), "
           f"count(*) FILTER (WHERE reason = 'empty') FROM ({failing}) GROUP BY 1")
    return {str(name): {"failing_rows": int(n), "warnings": int(w), "errors": int(e), "empty": int(empty)}
            for name, n, w, e, empty in con.execute(sql).fetchall()}


def _per_code(con: duckdb.DuckDBPyConnection, table: str, findings: str) -> dict[str, dict[str, int]]:
    """{column: {error code: published cells with that finding}}."""
    sql = (f"SELECT f.\"column\", f.error_code, count(*) FROM {table} AS t JOIN {findings} AS f "
           "ON f.upload_id = t._upload_id AND f.source_line = t._source_line GROUP BY ALL ORDER BY ALL")
    out: dict[str, dict[str, int]] = {}
    for column, code, n in con.execute(sql).fetchall():
        out.setdefault(str(column), {})[str(code)] = int(n)
    return out


def _column_entry(column: Column, rows: int, counts: dict[str, int], codes: dict[str, int]) -> dict[str, Any]:
    conforming = rows - counts.get("failing_rows", 0)
    return {
        "required": column.required,
        "type": column.type,
        "rows_conforming": conforming,
        "share": _share(conforming, rows),
        "warnings": counts.get("warnings", 0),
        "errors": counts.get("errors", 0),
        "empty_required": counts.get("empty", 0),
        "findings_by_code": codes,
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
