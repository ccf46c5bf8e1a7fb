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

import os
import re
import uuid
from pathlib import Path

import polars as pl
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from kouiki.crashpoints import crash_point
from kouiki.runlock import pid_alive

AREAS = ("staged", "quarantine", "findings", "history")
LakeRoot = Path | str
# A file being written: ``.<name>.<pid>.<random>.tmp``. It never ends in ``.parquet``, so the globs readers use
# (``*/*.parquet``) never see it, and the writer's pid tells a leftover of a dead process from a live write.
TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{32}\.tmp$")
# Written by earlier versions (read as data by the glob): always leftovers.
OLD_TMP_NAME = re.compile(r"^\.tmp-[0-9a-f]{32}\.parquet$")


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

    Written under a temporary name that no reader's glob matches and moved into place (a rename on a local
    disk; object stores replace an object in one step). A crash leaves at most a temporary file, removed by
    :func:`remove_leftovers` at the next run."""
    fs, _ = _fs(lake_root)
    folder = partition_dir(lake_root, area, dataset_id, city_code)
    fs.makedirs(folder, exist_ok=True)
    target = f"{folder}/{file_name}"
    tmp = f"{folder}/.{file_name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open(tmp, "wb") as fh:
            df.write_parquet(fh, compression="zstd", statistics=True)
        crash_point("lake.written")
        fs.mv(tmp, target)
        crash_point("lake.renamed")
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
    return target


def leftovers(lake_root: LakeRoot) -> list[str]:
    """Temporary files of writers that died (their process is gone), and files of the old naming."""
    fs, root = _fs(lake_root)
    if not fs.exists(root):
        return []
    local = fs.protocol in ("file", ("file", "local"))
    found = []
    for path in fs.find(root):
        name = path.rsplit("/", 1)[-1]
        if OLD_TMP_NAME.match(name):
            found.append(path)
            continue
        match = TMP_NAME.match(name)
        # on object storage a pid means nothing: a temporary object is a leftover once an hour old
        if match and (not pid_alive(int(match["pid"])) if local else _older_than(fs, path, 3600)):
            found.append(path)
    return sorted(found)


def remove_leftovers(lake_root: LakeRoot) -> list[str]:
    """Delete :func:`leftovers`; returns what was deleted."""
    fs, _ = _fs(lake_root)
    removed = leftovers(lake_root)
    for path in removed:
        fs.rm(path)
    return removed


def _older_than(fs: AbstractFileSystem, path: str, seconds: float) -> bool:
    import time

    try:
        modified = fs.modified(path).timestamp()
    except (NotImplementedError, OSError):
        return False
    return time.time() - modified > seconds


def read_partition(lake_root: LakeRoot, area: str, dataset_id: str, city_code: str,
                   file_name: str = "data.parquet") -> pl.DataFrame | None:
    fs, _ = _fs(lake_root)
    path = f"{partition_dir(lake_root, area, dataset_id, city_code)}/{file_name}"
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as fh:
        return pl.read_parquet(fh)


def history_of(lake_root: LakeRoot, city_code: str, upload_id: str) -> dict[str, object] | None:
    """The history row of a processed upload (its decision and counts), or None if it was never processed."""
    fs, root = _fs(lake_root)
    for path in fs.glob(f"{root}/history/*/city={city_code}/{upload_id}.parquet"):
        with fs.open(path, "rb") as fh:
            rows = pl.read_parquet(fh).to_dicts()
        if rows:
            return rows[0]
    return None
