"""What changed since the previous release: rows added, removed and changed, by record ID.

A record's key is its city code and ID (IDs are unique within a publishing government). Rows without an
ID are keyed by their whole content, so they can only be added or removed, never "changed".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from kouiki.sql import literal, quote

SHOWN_KEYS = 100


def _keyed(source: str, columns: list[str], code_column: str | None, id_column: str | None) -> str:
    row_hash = "md5(CAST(ROW(" + ", ".join(quote(c) for c in columns) + ") AS VARCHAR))"
    if id_column and id_column in columns:
        code = f"coalesce(CAST({quote(code_column)} AS VARCHAR), '')" if code_column in columns else "''"
        key = (f"CASE WHEN {quote(id_column)} IS NULL THEN 'row:' || {row_hash} "
               f"ELSE {code} || '/' || CAST({quote(id_column)} AS VARCHAR) END")
    else:
        key = f"'row:' || {row_hash}"
    return f"SELECT {key} AS k, {row_hash} AS h FROM {source}"


def compare(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], previous_parquet: Path | None,
            previous_number: int | None, *, code_column: str | None, id_column: str | None,
            personal: bool = False) -> dict[str, Any]:
    """Counts and first keys of added / removed / changed records between the previous release and ``table``.

    For a ``personal`` dataset (an anonymised extract) only the totals are given: a row key or row hash would
    point at the very record that changed, and a hash of a few generalised values is easily reversed."""
    if personal:
        return _totals_only(con, table, previous_parquet, previous_number)
    if previous_parquet is None or not previous_parquet.exists():
        total = con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return {"previous_release": None, "added": int(total[0]) if total else 0, "removed": 0, "changed": 0,
                "keys": {"added": [], "removed": [], "changed": []}}
    prev_cols = [r[0] for r in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({literal(str(previous_parquet))})").fetchall()]
    shared = [c for c in columns if c in prev_cols]
    new = _keyed(table, shared, code_column, id_column)
    old = _keyed(f"read_parquet({literal(str(previous_parquet))})", shared, code_column, id_column)
    base = f"WITH n AS ({new}), o AS ({old})"
    queries = {
        "added": f"{base} SELECT k FROM n WHERE k NOT IN (SELECT k FROM o)",
        "removed": f"{base} SELECT k FROM o WHERE k NOT IN (SELECT k FROM n)",
        "changed": f"{base} SELECT n.k FROM n JOIN o USING (k) WHERE n.h <> o.h AND NOT starts_with(n.k, 'row:')",
    }
    result: dict[str, Any] = {"previous_release": previous_number, "keys": {}}
    for kind, sql in queries.items():
        count = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
        result[kind] = int(count[0]) if count else 0
        result["keys"][kind] = [r[0] for r in con.execute(f"{sql} ORDER BY 1 LIMIT {SHOWN_KEYS}").fetchall()]
    return result


def _totals_only(con: duckdb.DuckDBPyConnection, table: str, previous_parquet: Path | None,
                 previous_number: int | None) -> dict[str, Any]:
    """Row totals of both releases: what anyone can count in the files themselves, and nothing more."""
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    rows = int(row[0]) if row else 0
    before = None
    if previous_parquet is not None and previous_parquet.exists():
        old = con.execute(f"SELECT count(*) FROM read_parquet({literal(str(previous_parquet))})").fetchone()
        before = int(old[0]) if old else 0
    return {"previous_release": previous_number if before is not None else None, "personal_dataset": True,
            "rows": rows, "previous_rows": before,
            "note": "個人情報から作成したデータのため、件数の合計のみ示します / totals only (made from personal data)",
            "added": None, "removed": None, "changed": None,
            "keys": {"added": [], "removed": [], "changed": []}}
