"""The Parquet lake: its layout and atomic writes.

Layout (Hive-partitioned, so DuckDB, Spark and Trino read it the same way):

    lake/staged/<dataset>/city=<code>/data.parquet       accepted rows with provenance
    lake/quarantine/<dataset>/city=<code>/data.parquet   failing rows with their reasons
    lake/findings/<dataset>/city=<code>/data.parquet     every failing cell (row-level validation results)
    lake/history/<dataset>/city=<code>/<upload>.parquet  one summary row per processed upload (kept forever:
                                                         the quality trend over uploads)

City partitions write only their own folder, so they can run in parallel; nothing here opens the DuckDB
database (one step owns it, see ``warehouse.duck``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl

AREAS = ("staged", "quarantine", "findings", "history")


def partition_dir(lake_root: Path, area: str, dataset_id: str, city_code: str) -> Path:
    if area not in AREAS:
        raise ValueError(f"unknown lake area {area!r}")
    return lake_root / area / dataset_id / f"city={city_code}"


def partition_file(lake_root: Path, area: str, dataset_id: str, city_code: str) -> Path:
    return partition_dir(lake_root, area, dataset_id, city_code) / "data.parquet"


def dataset_glob(lake_root: Path, area: str, dataset_id: str) -> str:
    return str(lake_root / area / dataset_id / "*" / "*.parquet")


def has_data(lake_root: Path, area: str, dataset_id: str) -> bool:
    return any((lake_root / area / dataset_id).glob("city=*/*.parquet"))


def write_partition(df: pl.DataFrame, lake_root: Path, area: str, dataset_id: str, city_code: str,
                    file_name: str = "data.parquet") -> Path:
    """Replace one city's partition atomically: readers see the old file or the new one, never half."""
    target = partition_dir(lake_root, area, dataset_id, city_code) / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        df.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_partition(lake_root: Path, area: str, dataset_id: str, city_code: str) -> pl.DataFrame | None:
    path = partition_file(lake_root, area, dataset_id, city_code)
    return pl.read_parquet(path) if path.exists() else None
