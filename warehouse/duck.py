"""The DuckDB database: views over the Parquet lake and the tables the SQL models build.

Only one process may write a DuckDB file at a time (it locks out even readers), so city partitions never
open it: they write Parquet (``kouiki.lake``), and the single model step opens the database here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from kouiki import lake
from kouiki.model import Dataset
from kouiki.settings import REPO_ROOT
from kouiki.sql import literal, quote

REFERENCE_CSV = REPO_ROOT / "kouiki" / "data" / "local_governments.csv"
FINDINGS_COLUMNS = {"_city_code": "VARCHAR", "upload_id": "VARCHAR", "source_line": "BIGINT",
                    "column": "VARCHAR", "error_code": "VARCHAR"}
HISTORY_COLUMNS = {
    "_city_code": "VARCHAR", "upload_id": "VARCHAR", "dataset_id": "VARCHAR", "file": "VARCHAR",
    "received_at": "TIMESTAMPTZ", "validated_at": "TIMESTAMPTZ", "rows": "BIGINT", "rows_accepted": "BIGINT",
    "rows_quarantined": "BIGINT", "pass_rate": "DOUBLE", "decision": "VARCHAR", "errors_by_code": "VARCHAR",
}
PROVENANCE_COLUMNS = {
    "_city_code": "VARCHAR",
    "_upload_id": "VARCHAR",
    "_source_file": "VARCHAR",
    "_source_line": "BIGINT",
    "_row": "BIGINT",
}


@contextmanager
def connect(db_path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse without trying to download extensions (this machine, like many, is offline)."""
    if read_only and not db_path.exists():
        raise FileNotFoundError(f"{db_path} does not exist yet: run the pipeline first")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        str(db_path), read_only=read_only, config={"autoinstall_known_extensions": False,
                                                   "autoload_known_extensions": False},
    )
    try:
        yield con
    finally:
        con.close()


def refresh_sources(con: duckdb.DuckDBPyConnection, lake_root: lake.LakeRoot, datasets: Iterable[Dataset]) -> None:
    """(Re)create the source views ``lake.<dataset>``, ``quarantine.<dataset>``, ``findings.<dataset>`` and
    ``reference.local_governments``. A dataset with no files yet gets an empty view with its columns. A remote
    lake's filesystem is registered on ``con`` first (the views read it whenever this connection queries them)."""
    lake.register_with(con, lake_root)
    for schema in ("lake", "quarantine", "findings", "history", "reference"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for ds in datasets:
        canonical = {c.name: "VARCHAR" for c in ds.canonical.columns} | PROVENANCE_COLUMNS
        _view_over_parquet(con, f"lake.{quote(ds.id)}", lake_root, "staged", ds.id, canonical)
        _view_over_parquet(con, f"quarantine.{quote(ds.id)}", lake_root, "quarantine", ds.id,
                           canonical | {"_errors": "VARCHAR"})
        _view_over_parquet(con, f"findings.{quote(ds.id)}", lake_root, "findings", ds.id, FINDINGS_COLUMNS)
    # history.uploads: one row per processed upload of every dataset and city
    _view_over_parquet(con, "history.uploads", lake_root, "history", "*", HISTORY_COLUMNS)
    con.execute(
        "CREATE OR REPLACE TABLE reference.local_governments AS SELECT * FROM read_csv("
        f"{literal(str(REFERENCE_CSV))}, header=true, all_varchar=true)"
    )


def _view_over_parquet(con: duckdb.DuckDBPyConnection, name: str, lake_root: lake.LakeRoot, area: str, dataset_id: str,
                       empty_columns: dict[str, str]) -> None:
    """A view over one lake area's Parquet files, or, while there are none, an empty view with the columns
    the models expect (so a dataset nobody has uploaded yet still builds)."""
    if lake.has_data(lake_root, area, dataset_id):
        files = (f"read_parquet({literal(lake.dataset_glob(lake_root, area, dataset_id))}, "
                 "hive_partitioning=false, union_by_name=true)")
        have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {files}").fetchall()}
        # a column added to the dataset's YAML after these files were written: empty, so the models still build
        added = "".join(f", CAST(NULL AS {t}) AS {quote(c)}" for c, t in empty_columns.items() if c not in have)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT *{added} FROM {files}")
        return
    cols = ", ".join(f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in empty_columns.items())
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} WHERE false")
