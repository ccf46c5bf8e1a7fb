"""The DuckDB database: views over the Parquet lake and the tables the SQL models build.

Only one process may write a DuckDB file at a time (it locks out even readers), so city partitions never
open it: they write Parquet (``warehouse.lake``), and the single model step opens the database here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from expectations.model import Dataset
from kouiki.settings import REPO_ROOT
from warehouse import lake

REFERENCE_CSV = REPO_ROOT / "kouiki" / "data" / "local_governments.csv"
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


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def refresh_sources(con: duckdb.DuckDBPyConnection, lake_root: Path, datasets: Iterable[Dataset]) -> None:
    """(Re)create the source views ``lake.<dataset>``, ``quarantine.<dataset>``, ``findings.<dataset>`` and
    ``reference.local_governments``. A dataset with no files yet gets an empty view with its columns."""
    for schema in ("lake", "quarantine", "findings", "history", "reference"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for ds in datasets:
        _source_view(con, "lake", "staged", lake_root, ds)
        _source_view(con, "quarantine", "quarantine", lake_root, ds)
        _findings_view(con, lake_root, ds)
    _history_view(con, lake_root)
    con.execute(
        "CREATE OR REPLACE TABLE reference.local_governments AS SELECT * FROM read_csv("
        f"{literal(str(REFERENCE_CSV))}, header=true, all_varchar=true)"
    )


def _source_view(con: duckdb.DuckDBPyConnection, schema: str, area: str, lake_root: Path, ds: Dataset) -> None:
    name = f"{schema}.{quote(ds.id)}"
    if lake.has_data(lake_root, area, ds.id):
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
            f"{literal(lake.dataset_glob(lake_root, area, ds.id))}, hive_partitioning=false, union_by_name=true)"
        )
        return
    cols = [f"CAST(NULL AS VARCHAR) AS {quote(c.name)}" for c in ds.canonical.columns]
    cols += [f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in PROVENANCE_COLUMNS.items()]
    if area == "quarantine":
        cols += ["CAST(NULL AS VARCHAR) AS _errors"]
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {', '.join(cols)} WHERE false")


def _history_view(con: duckdb.DuckDBPyConnection, lake_root: Path) -> None:
    """``history.uploads``: one row per processed upload of every dataset and city."""
    if any((lake_root / "history").glob("*/city=*/*.parquet")):
        con.execute(
            "CREATE OR REPLACE VIEW history.uploads AS SELECT * FROM read_parquet("
            f"{literal(str(lake_root / 'history' / '*' / '*' / '*.parquet'))}, hive_partitioning=false, "
            "union_by_name=true)"
        )
        return
    con.execute(
        "CREATE OR REPLACE VIEW history.uploads AS SELECT CAST(NULL AS VARCHAR) AS _city_code, "
        "CAST(NULL AS VARCHAR) AS upload_id, CAST(NULL AS VARCHAR) AS dataset_id, CAST(NULL AS VARCHAR) AS file, "
        "CAST(NULL AS TIMESTAMPTZ) AS received_at, CAST(NULL AS TIMESTAMPTZ) AS validated_at, "
        "CAST(NULL AS BIGINT) AS rows, CAST(NULL AS BIGINT) AS rows_accepted, "
        "CAST(NULL AS BIGINT) AS rows_quarantined, "
        "CAST(NULL AS DOUBLE) AS pass_rate, CAST(NULL AS VARCHAR) AS decision, "
        "CAST(NULL AS VARCHAR) AS errors_by_code WHERE false"
    )


def _findings_view(con: duckdb.DuckDBPyConnection, lake_root: Path, ds: Dataset) -> None:
    name = f"findings.{quote(ds.id)}"
    if lake.has_data(lake_root, "findings", ds.id):
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
            f"{literal(lake.dataset_glob(lake_root, 'findings', ds.id))}, hive_partitioning=false, "
            "union_by_name=true)"
        )
        return
    con.execute(
        f"CREATE OR REPLACE VIEW {name} AS SELECT CAST(NULL AS VARCHAR) AS _city_code, "
        "CAST(NULL AS VARCHAR) AS upload_id, CAST(NULL AS BIGINT) AS source_line, "
        "CAST(NULL AS VARCHAR) AS \"column\", CAST(NULL AS VARCHAR) AS error_code WHERE false"
    )
