"""A staged upload in a private DuckDB file, and its validation there: the one copy of this step that the
pipeline (:mod:`warehouse.load`, the upload service), ``kouiki inspect`` and ``bench/bench_validate.py`` share.

The file holds two tables: ``staged`` (the typed values intake produced, one row per data row, ``_row`` and
``_source_line`` included) and ``raw`` (the cells as written, for the findings' raw values). A private file
per validation keeps it off the shared warehouse's single-writer lock, so cities validate in parallel.

Light on purpose: DuckDB and the checks only. Great Expectations is imported by :func:`validate_staged` only
when ``with_ge`` (the pipeline); ``kouiki inspect`` runs the same checks as SQL (``with_ge=False``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from expectations.validate import ValidationResult, validate_table

if TYPE_CHECKING:
    import polars as pl

    from intake.process import StagedUpload

STAGED_TABLE = "staged"
RAW_TABLE = "raw"


def write_staged_db(db: Path, values: pl.DataFrame, raw: pl.DataFrame) -> None:
    """Create the DuckDB file ``db`` with the tables ``staged`` (``values``) and ``raw`` (``raw``)."""
    con = duckdb.connect(str(db))
    try:
        con.register("values_df", values.to_arrow())
        con.register("raw_df", raw.to_arrow())
        con.execute(f"CREATE TABLE {STAGED_TABLE} AS SELECT * FROM values_df")
        con.execute(f"CREATE TABLE {RAW_TABLE} AS SELECT * FROM raw_df")
    finally:
        con.close()


def validate_staged(staged: StagedUpload, values: pl.DataFrame, upload_id: str, workdir: Path,
                    *, batch_column: str = "", with_ge: bool = True) -> ValidationResult:
    """Validate ``values`` (the staged values, perhaps with provenance columns) and ``staged.raw`` on a
    private, temporary DuckDB file in ``workdir``, removed afterwards. ``with_ge``: one Great Expectations
    run (the pipeline); without it the checks' SQL alone, with the same findings and decision."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / f"validate-{upload_id}-{uuid.uuid4().hex[:12]}.duckdb"   # unique: two runs may validate one upload
    db.unlink(missing_ok=True)
    try:
        write_staged_db(db, values, staged.raw)
        return validate_table(
            db, STAGED_TABLE, staged.dataset, raw_table=RAW_TABLE, upload_id=upload_id,
            missing_columns=list(staged.match.missing), extra_columns=list(staged.match.unmatched),
            missing_required=list(staged.match.missing_required), batch_column=batch_column, with_ge=with_ge,
        )
    finally:
        db.unlink(missing_ok=True)
        Path(str(db) + ".wal").unlink(missing_ok=True)
