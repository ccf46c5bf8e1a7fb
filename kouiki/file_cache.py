"""Results computed from configuration files, kept on disk between processes (``$KOUIKI_HOME/cache/``).

The schema registry (19 YAML files read with line numbers for error messages) and the SQL models (parsed with
sqlglot) take about a second to build, and every process that loads the Dagster definitions — the daemon, the UI,
each run, ``dagster definitions validate`` — builds them again although they change only when someone edits a file.
Each result is stored once under a key made of every input file's path, size and modification time *and* of the
Python code that builds it (so a new kouiki version never reads an old cache), and is used only while all of them
are unchanged. A missing, stale or unreadable entry is simply built again; the cache is never needed.

The entries are pickles: only kouiki itself writes ``$KOUIKI_HOME`` (the same trust as the catalog beside it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar, cast

from kouiki.settings import REPO_ROOT, Settings, kouiki_home

log = logging.getLogger(__name__)

T = TypeVar("T")
# The library versions (sqlglot's parse, PyYAML's) are part of every key: a new lock file is a new key.
LOCK_FILE = REPO_ROOT / "uv.lock"
STALE_TMP_SECONDS = 600   # writing an entry takes milliseconds


def cached(kind: str, inputs: Iterable[Path], build: Callable[[], T], folder: Path | None = None) -> T:
    """``build()``, or the result stored for the same ``inputs`` (files, or folders taken with every file under
    them) by an earlier process. ``kind`` names the result (one entry per kind is kept)."""
    if not Settings.from_env().file_cache:
        return build()
    folder = folder if folder is not None else kouiki_home() / "cache"
    key = input_key(kind, inputs)
    entry = folder / f"{kind}-{key}.pickle"
    found = _read(entry)
    if found is not None:
        return cast(T, found[0])
    result = build()
    _write(folder, kind, entry, result)
    return result


def input_key(kind: str, inputs: Iterable[Path]) -> str:
    """A digest of every input file's path, size and mtime (folders: every file under them, so a file added or
    removed changes the key too), of the Python version and of kind."""
    digest = hashlib.sha256(f"{kind}\0{sys.version}\0".encode())
    for path in sorted(_files([*inputs, LOCK_FILE])):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _files(inputs: Iterable[Path]) -> set[Path]:
    files: set[Path] = set()
    for path in inputs:
        if path.is_dir():
            files.update(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        else:
            files.add(path)   # a missing file counts too: its creation changes the key
    return files


def _read(entry: Path) -> tuple[object] | None:
    try:
        with entry.open("rb") as fh:
            value = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:   # a truncated or foreign entry: build again (and replace it below)
        log.info("file cache %s unreadable (%s); building again", entry, exc)
        return None
    return (value,)


def _write(folder: Path, kind: str, entry: Path, result: object) -> None:
    """Write atomically (two processes may build the same entry; the last rename wins, both are complete) and
    remove the kind's older entries. A cache that cannot be written (read-only home) is only logged."""
    tmp = ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{kind}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)
    except Exception as exc:
        log.info("file cache %s not written: %s", entry, exc)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return
    for old in folder.glob(f"{kind}-*.pickle"):
        if old != entry:
            with contextlib.suppress(OSError):
                old.unlink()
    # a process killed while writing leaves its temporary file: gone once no writer can still own it
    for left in folder.glob(f".{kind}-*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - left.stat().st_mtime > STALE_TMP_SECONDS:
                left.unlink()
