"""The Parquet lake: its layout and atomic writes.

Layout (Hive-partitioned, so DuckDB, Spark and Trino read it the same way):

    lake/staged/<dataset>/city=<code>/data.parquet       accepted rows with provenance
    lake/quarantine/<dataset>/city=<code>/data.parquet   failing rows with their reasons
    lake/findings/<dataset>/city=<code>/data.parquet     every failing cell (row-level validation results)
    lake/history/<dataset>/city=<code>/<upload>.parquet  one summary row per processed upload (kept forever:
                                                         the quality trend over uploads)

City partitions write only their own folder, so they can run in parallel; nothing here opens the DuckDB
database (one step owns it, see ``warehouse.duck``).

The lake root is a local folder by default, or any fsspec URL (``s3://bucket/kouiki/lake``, ``gcs://…``,
``memory://…``): ``KOUIKI_LAKE_URL`` + ``/lake`` (``kouiki.settings.Paths.lake``). Every read and write here goes
through fsspec, so the same layout lives on object storage unchanged; DuckDB reads it through the same fsspec
filesystem (:func:`register_with`), never its httpfs extension (this machine, like many, cannot download it).
See docs/scale-out.md. Every write goes through ``kouiki.object_store.put`` (one PUT, or a temporary file renamed
into place on a local disk), as do those of landed uploads and releases.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from fsspec import AbstractFileSystem

from kouiki.object_store import filesystem, is_local, put
from kouiki.runlock import pid_alive

if TYPE_CHECKING:
    import duckdb

AREAS = ("staged", "quarantine", "findings", "history")
LakeRoot = Path | str
# A file being written: ``.<name>.<pid>.<random>.tmp``. It never ends in ``.parquet``, so the globs readers use
# (``*/*.parquet``) never see it, and the writer's pid tells a leftover of a dead process from a live write.
TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{32}\.tmp$")
# Written by earlier versions (read as data by the glob): always leftovers.
OLD_TMP_NAME = re.compile(r"^\.tmp-[0-9a-f]{32}\.parquet$")


def _fs(lake_root: LakeRoot) -> tuple[AbstractFileSystem, str]:
    return filesystem(lake_root)


def register_with(con: duckdb.DuckDBPyConnection, lake_root: LakeRoot) -> None:
    """Let DuckDB read a remote lake through the lake's own fsspec filesystem (a local lake needs nothing)."""
    fs, _ = _fs(lake_root)
    if not is_local(fs):
        con.register_filesystem(fs)


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
    return path if is_local(fs) else fs.unstrip_protocol(path)


def has_data(lake_root: LakeRoot, area: str, dataset_id: str) -> bool:
    fs, root = _fs(lake_root)
    return bool(fs.glob(f"{root}/{area}/{dataset_id}/city=*/*.parquet"))


def write_partition(df: pl.DataFrame, lake_root: LakeRoot, area: str, dataset_id: str, city_code: str,
                    file_name: str = "data.parquet") -> str:
    """Replace one city's partition atomically: readers see the old file or the new one, never half.

    On a local disk: written under a temporary name that no reader's glob matches and renamed into place; a
    crash leaves at most a temporary file, removed by :func:`remove_leftovers` at the next run. On object storage
    the object is written in place: a PUT (or a multipart upload) replaces an object in one step, and a rename
    there would be a copy and a delete."""
    fs, _ = _fs(lake_root)
    target = f"{partition_dir(lake_root, area, dataset_id, city_code)}/{file_name}"

    def write(to: str) -> None:
        with fs.open(to, "wb") as fh:
            df.write_parquet(fh, compression="zstd", statistics=True)

    put(fs, target, write, crash_points="lake")
    return target


def leftovers(lake_root: LakeRoot) -> list[str]:
    """Temporary files of writers that died (their process is gone), and files of the old naming."""
    fs, root = _fs(lake_root)
    if not fs.exists(root):
        return []
    local = is_local(fs)
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
