"""The landing zone: every upload's raw bytes, stored before anything else and never overwritten.

Files are content-addressed (``landing/<city>/<sha256><ext>``), so re-uploading the same bytes is idempotent
and two different files can never collide. Stored files are made read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath

from kouiki import catalog
from kouiki.settings import Paths

_CHUNK = 1 << 20
SAFE_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx", ".xls"}


@dataclass(frozen=True)
class Landed:
    upload_id: str
    sha256: str
    path: Path
    size: int
    is_new: bool


def upload_id_for(city_code: str, sha256: str) -> str:
    """Stable id of an upload: the same bytes from the same city are the same upload."""
    return f"{city_code}-{sha256[:16]}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_suffix(original_name: str) -> str:
    """The file's extension if it is one we know, else ``.bin``; never a path from the uploader."""
    suffix = PurePath(original_name.replace("\\", "/")).suffix.lower()
    return suffix if suffix in SAFE_SUFFIXES else ".bin"


def land_file(paths: Paths, city_code: str, source: Path, original_name: str | None = None,
              *, via: str = "inbox") -> Landed:
    """Copy ``source`` into the landing zone and record it in the catalog (idempotent)."""
    name = original_name or source.name
    sha = sha256_of(source)
    target = paths.landing / city_code / f"{sha}{safe_suffix(name)}"
    if not target.exists():
        copy_read_only(source, target)
    uid = upload_id_for(city_code, sha)
    is_new = catalog.add_upload(
        paths.catalog_url,
        {
            "upload_id": uid,
            "city_code": city_code,
            "sha256": sha,
            "original_name": PurePath(name.replace("\\", "/")).name,
            "size": target.stat().st_size,
            "stored_path": str(target.relative_to(paths.home)),
            "received_at": catalog.now(),
            "source": via,
            "status": "landed",
        },
    )
    return Landed(upload_id=uid, sha256=sha, path=target, size=target.stat().st_size, is_new=is_new)


def copy_read_only(source: Path, target: Path, mode: int = 0o444) -> None:
    """Copy through a temporary file in the same folder and rename: a crash never leaves a partial file under
    the content-addressed name. The stored copy is made read-only."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".landing-")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
