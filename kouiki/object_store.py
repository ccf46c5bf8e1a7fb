"""Objects under an fsspec URL (``KOUIKI_LAKE_URL``: ``s3://bucket/kouiki``, ``memory://…`` or a local folder):
the one place that writes and reads them, for the lake (``kouiki.lake``), landed uploads (``intake.landing``) and
releases (``publish.remote``).

A root is a URL and a key a ``/``-separated path under it. Writes are whole or nothing for readers: on object
storage one PUT (or multipart upload) makes an object appear in one step; on a local folder the object is written
under a temporary name starting with a dot (no reader's listing or glob matches it) and renamed into place
(:func:`put`). Reads that copy an object to local disk stream it into a temporary file beside the target, hash
it on the way when its sha256 is known, and rename it into place only when it matches (:func:`fetch_file`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from kouiki.crashpoints import crash_point
from kouiki.errors import ConfigError

Root = Path | str
_CHUNK = 1 << 20


class ObjectChanged(Exception):
    """An object whose bytes are not the ones its name or its release's metadata says (tampered or damaged).
    The message is one line naming the object."""


def filesystem(root: Root) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of ``root`` and the root's path on it (no trailing slash)."""
    try:
        fs, path = url_to_fs(str(root))
    except ImportError as exc:      # s3fs, gcsfs… are optional: `uv sync --extra s3` for s3://
        raise ConfigError(f"KOUIKI_LAKE_URL={root}: {exc} — `uv sync --extra s3` で入ります / "
                          "install the extra for this URL (`uv sync --extra s3`)") from None
    if not is_local(fs):
        # another process or machine may have written since: never list from a stale cache
        fs.invalidate_cache()
    return fs, path.rstrip("/")


def is_local(fs: AbstractFileSystem) -> bool:
    return fs.protocol in ("file", ("file", "local"))


def url_of(root: Root, key: str) -> str:
    """The full address of ``<root>/<key>`` as a person would look it up (``s3://bucket/…``, or a local path)."""
    fs, base = filesystem(root)
    path = f"{base}/{key}" if key else base
    return path if is_local(fs) else fs.unstrip_protocol(path)


def exists(root: Root, key: str) -> bool:
    fs, base = filesystem(root)
    return bool(fs.exists(f"{base}/{key}"))


def keys(root: Root, pattern: str) -> list[str]:
    """Keys under ``root`` matching the glob ``pattern`` (``*/latest.json``), sorted; none when it is empty.
    Temporary objects (names starting with a dot that end in ``.tmp``) are never listed."""
    fs, base = filesystem(root)
    found = []
    for path in fs.glob(f"{base}/{pattern}"):
        key = str(path).removeprefix(base + "/")
        if not key.rsplit("/", 1)[-1].endswith(".tmp"):
            found.append(key)
    return sorted(found)


def files_under(root: Root, prefix: str) -> list[str]:
    """Keys of every object under ``<root>/<prefix>/``, relative to that prefix, sorted (temporary ones left out)."""
    fs, base = filesystem(root)
    folder = f"{base}/{prefix}"
    found = [str(p).removeprefix(folder + "/") for p in fs.find(folder)]
    return sorted(k for k in found if not k.rsplit("/", 1)[-1].endswith(".tmp"))


def read_bytes(root: Root, key: str) -> bytes | None:
    """The whole object (small ones: a manifest, a ``latest.json``), or None when there is none."""
    fs, base = filesystem(root)
    try:
        return bytes(fs.cat_file(f"{base}/{key}"))
    except FileNotFoundError:
        return None


def fetch_file(root: Root, key: str, target: Path, *, sha256: str | None = None, tmp_prefix: str = ".fetch-",
               mode: int | None = None) -> bool:
    """Copy ``<root>/<key>`` to the local file ``target``: streamed into a temporary file beside it (named
    ``tmp_prefix…``, so the target's own leftover cleaning finds it), checked against ``sha256`` when given, and
    renamed into place only then. False when there is no such object; :class:`ObjectChanged` (nothing written)
    when its bytes do not match."""
    fs, base = filesystem(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=tmp_prefix)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with fs.open(f"{base}/{key}", "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except FileNotFoundError:
                Path(tmp).unlink(missing_ok=True)
                return False
            out.flush()
            os.fsync(out.fileno())
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ObjectChanged(
                f"{url_of(root, key)}: 内容が sha256 {sha256[:16]}… と一致しません（改ざん・破損）。使いません / "
                f"content does not match sha256 {sha256[:16]}… (tampered or damaged): not used")
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def put_file(root: Root, key: str, source: Path) -> bool:
    """Copy the local file ``source`` to ``<root>/<key>`` unless it is there already (landed uploads and release
    files never change under their name); True when copied. One PUT: readers see the whole object or none."""
    fs, base = filesystem(root)
    target = f"{base}/{key}"
    if fs.exists(target):
        return False
    put(fs, target, lambda to: fs.put_file(str(source), to))
    return True


def put_bytes(root: Root, key: str, data: bytes) -> None:
    """Write (or replace) ``<root>/<key>`` in one PUT, e.g. a release's ``latest.json``."""
    fs, base = filesystem(root)
    target = f"{base}/{key}"
    put(fs, target, lambda to: fs.pipe_file(to, data))


def put_tree(root: Root, key: str, folder: Path, last: str | None = None) -> int:
    """Copy every file under ``folder`` to ``<root>/<key>/…`` (missing ones only), ``last`` (a relative path)
    after all the others: a reader that finds it finds the rest. Returns how many files were copied."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    ordered = [p for p in files if p.relative_to(folder).as_posix() != last] + \
              [p for p in files if p.relative_to(folder).as_posix() == last]
    return sum(put_file(root, f"{key}/{p.relative_to(folder).as_posix()}", p) for p in ordered)


def put(fs: AbstractFileSystem, target: str, write: Callable[[str], object],
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
