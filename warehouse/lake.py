"""The Parquet lake: its layout and atomic writes.

Layout (Hive-partitioned, so DuckDB, Spark and Trino read it the same way):

    lake/staged/<dataset>/city=<code>/data.parquet       accepted rows with provenance
    lake/quarantine/<dataset>/city=<code>/data.parquet   failing rows with their reasons
    lake/findings/<dataset>/city=<code>/data.parquet     every failing cell (row-level validation results)
    lake/history/<dataset>/city=<code>/<upload>.parquet  one summary row per processed upload (kept forever:
                                                         the quality trend over uploads)

City partitions write only their own folder, so they can run in parallel; nothing here opens the DuckDB
database (one step owns it, see ``warehouse.duck``).

The lake root is a local folder by default, or any fsspec URL (``s3://bucket/lake``, ``gcs://…``,
``memory://…``) given as ``KOUIKI_LAKE_URL``: every read and write here goes through fsspec, so the same layout
lives on object storage unchanged (see docs/scale-out.md for who reads it there).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

AREAS = ("staged", "quarantine", "findings", "history")
LakeRoot = Path | str


def _fs(lake_root: LakeRoot) -> tuple[AbstractFileSystem, str]:
    fs, root = url_to_fs(str(lake_root))
    return fs, root.rstrip("/")


def partition_dir(lake_root: LakeRoot, area: str, dataset_id: str, city_code: str) -> str:
    if area not in AREAS:
        raise ValueError(f"unknown lake area {area!r}")
    _, root = _fs(lake_root)
    return f"{root}/{area}/{dataset_id}/city={city_code}"


def partition_exists(lake_root: LakeRoot, area: str, dataset_id: str, city_code: str,
                     file_name: str = "data.parquet") -> bool:
    fs, _ = _fs(lake_root)
    return bool(fs.exists(f"{partition_dir(lake_root, area, dataset_id, city_code)}/{file_name}"))


def dataset_glob(lake_root: LakeRoot, area: str, dataset_id: str) -> str:
    """The glob DuckDB / Spark / Trino read a dataset area with (a URL when the lake is remote)."""
    fs, root = _fs(lake_root)
    path = f"{root}/{area}/{dataset_id}/*/*.parquet"
    return path if fs.protocol in ("file", ("file", "local")) else fs.unstrip_protocol(path)


def has_data(lake_root: LakeRoot, area: str, dataset_id: str) -> bool:
    fs, root = _fs(lake_root)
    return bool(fs.glob(f"{root}/{area}/{dataset_id}/city=*/*.parquet"))


def write_partition(df: pl.DataFrame, lake_root: LakeRoot, area: str, dataset_id: str, city_code: str,
                    file_name: str = "data.parquet") -> str:
    """Replace one city's partition atomically: readers see the old file or the new one, never half.

    Written under a temporary name and moved into place (a rename on a local disk; object stores replace an
    object in one step)."""
    fs, _ = _fs(lake_root)
    folder = partition_dir(lake_root, area, dataset_id, city_code)
    fs.makedirs(folder, exist_ok=True)
    target = f"{folder}/{file_name}"
    tmp = f"{folder}/.tmp-{uuid.uuid4().hex}.parquet"
    try:
        with fs.open(tmp, "wb") as fh:
            df.write_parquet(fh, compression="zstd", statistics=True)
        fs.mv(tmp, target)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
    return target


def read_partition(lake_root: LakeRoot, area: str, dataset_id: str, city_code: str,
                   file_name: str = "data.parquet") -> pl.DataFrame | None:
    fs, _ = _fs(lake_root)
    path = f"{partition_dir(lake_root, area, dataset_id, city_code)}/{file_name}"
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as fh:
        return pl.read_parquet(fh)
