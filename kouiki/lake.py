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
See docs/scale-out.md. :func:`put_file` and :func:`put_tree` write the copies of landing and releases there.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from kouiki.crashpoints import crash_point
from kouiki.errors import ConfigError
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
    try:
        fs, root = url_to_fs(str(lake_root))
    except ImportError as exc:      # s3fs, gcsfs… are optional: `uv sync --extra s3` for s3://
        raise ConfigError(f"KOUIKI_LAKE_URL={lake_root}: {exc} — `uv sync --extra s3` で入ります / "
                          "install the extra for this URL (`uv sync --extra s3`)") from None
    if not is_local(fs):
        # another process (a city partition, the service) may have written since: never list from a stale cache
        fs.invalidate_cache()
    return fs, root.rstrip("/")


def is_local(fs: AbstractFileSystem) -> bool:
    return fs.protocol in ("file", ("file", "local"))


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

    _put(fs, target, write, crash_points="lake")
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


def put_file(root: str, key: str, source: Path) -> bool:
    """Copy the local file ``source`` to ``<root>/<key>`` unless it is there already (landed uploads and release
    files never change under their name); True when copied. One PUT: readers see the whole object or none."""
    fs, base = _fs(root)
    target = f"{base}/{key}"
    if fs.exists(target):
        return False
    _put(fs, target, lambda to: fs.put_file(str(source), to))
    return True


def put_bytes(root: str, key: str, data: bytes) -> None:
    """Write (or replace) ``<root>/<key>`` in one PUT, e.g. a release's ``latest.json``."""
    fs, base = _fs(root)
    target = f"{base}/{key}"
    _put(fs, target, lambda to: fs.pipe_file(to, data))


def _put(fs: AbstractFileSystem, target: str, write: Callable[[str], object],
         crash_points: str | None = None) -> None:
    """``write(target)`` on object storage (one PUT is atomic there); on a local disk (``KOUIKI_LAKE_URL`` a
    folder) into a temporary file beside it, renamed into place, so a reader never sees half a file. A temporary
    name starts with a dot, so no reader's glob matches it. ``crash_points``: the prefix of the two named crash
    points (``<prefix>.written``, ``<prefix>.renamed``) that the crash harness strikes at."""
    if not is_local(fs):
        write(target)
        _crash_point(crash_points, "written")
        _crash_point(crash_points, "renamed")
        return
    folder, name = target.rsplit("/", 1)
    fs.makedirs(folder, exist_ok=True)
    tmp = f"{folder}/.{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        _crash_point(crash_points, "written")
        fs.mv(tmp, target)
        _crash_point(crash_points, "renamed")
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def _crash_point(prefix: str | None, step: str) -> None:
    if prefix is not None:
        crash_point(f"{prefix}.{step}")


def put_tree(root: str, key: str, folder: Path, last: str | None = None) -> int:
    """Copy every file under ``folder`` to ``<root>/<key>/…`` (missing ones only), ``last`` (a relative path)
    after all the others: a reader that finds it finds the rest. Returns how many files were copied."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    ordered = [p for p in files if p.relative_to(folder).as_posix() != last] + \
              [p for p in files if p.relative_to(folder).as_posix() == last]
    return sum(put_file(root, f"{key}/{p.relative_to(folder).as_posix()}", p) for p in ordered)
