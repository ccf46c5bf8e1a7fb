"""The landing zone: every upload's raw bytes, stored before anything else and never overwritten.

Files are content-addressed (``landing/<city>/<sha256><ext>``), so re-uploading the same bytes is idempotent
and two different files can never collide. Stored files are made read-only.

Beside each file, a hidden manifest (``.<sha256>.upload.json``, read-only) keeps what the catalog knows at landing:
city, original name, size, source and, above all, when it was first received. The catalog can be lost and
rebuilt from these (``restore_uploads``): each upload gets back its first ``received_at`` (so an old inbox file
picked up again never becomes "newer" than a later correction) and, when the lake's history says it was already
processed, its decision, so nothing is processed or published again.

With ``KOUIKI_LAKE_URL`` set, ``<url>/landing/<city>/`` is the store of record: every landed file and its
manifest are copied there (:func:`copy_to_remote`, before the catalog records the upload), and so is a refusal
record. The folder in the home is a working copy: a reader opens a landed file through :func:`local_copy`, which
fetches it from the URL when this home lacks it (a worker on another machine, a rebuilt home), checked against
the sha256 in its name; a catalog rebuilt on an empty home finds the uploads by their manifests there
(:func:`restore_uploads`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from kouiki import catalog, lake, object_store
from kouiki.catalog import UploadStatus
from kouiki.crashpoints import crash_point
from kouiki.object_store import ObjectChanged
from kouiki.settings import Paths

_CHUNK = 1 << 20
SAFE_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx", ".xls"}
MANIFEST_SUFFIX = ".upload.json"
REFUSAL_SUFFIX = ".refused.json"   # the upload service refused these bytes (status and reason)
TMP_PREFIX = ".landing-"   # + the writer's pid: a leftover of a dead process is removed at the next run


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
    """Copy ``source`` into the landing zone, write its manifest and record it in the catalog (idempotent:
    the same bytes again keep their first name and time)."""
    name = original_name or source.name
    sha = sha256_of(source)
    target = paths.landing / city_code / f"{sha}{safe_suffix(name)}"
    if not target.exists():
        copy_read_only(source, target)
        crash_point("landing.copied")
    manifest = read_manifest(manifest_path(target)) if manifest_path(target).exists() else None
    if manifest is None:
        manifest = {
            "upload_id": upload_id_for(city_code, sha),
            "city_code": city_code,
            "sha256": sha,
            "original_name": PurePath(name.replace("\\", "/")).name,
            "size": target.stat().st_size,
            "stored_path": str(target.relative_to(paths.home)),
            "received_at": catalog.now().isoformat(),
            "source": via,
        }
        write_manifest(target, manifest)
        crash_point("landing.manifest_written")
    copy_to_remote(paths, target)
    is_new = catalog.add_upload(paths.catalog_url, upload_row(paths, manifest))
    return Landed(upload_id=manifest["upload_id"], sha256=sha, path=target, size=target.stat().st_size,
                  is_new=is_new)


def copy_to_remote(paths: Paths, landed: Path) -> int:
    """Copy a landed file and its manifest to ``<KOUIKI_LAKE_URL>/landing/<city>/`` (what is there already is
    left alone: content-addressed names never change). Returns the number of objects written."""
    if paths.remote_landing is None:
        return 0
    city = landed.parent.name
    return sum(object_store.put_file(paths.remote_landing, f"{city}/{p.name}", p)
               for p in (landed, manifest_path(landed)) if p.exists())


CHANGED_CODE = "landed-file-changed"


def changed_detail() -> dict[str, Any]:
    """The catalog detail of an upload refused because its landed bytes are not what its name says."""
    return {"error": {
        "code": CHANGED_CODE,
        "message_ja": "受付後にファイルの内容が変わっています（改ざん・破損）。使いません",
        "message_en": "the landed file changed after it was received (tampered or damaged): not used",
    }}


class LandedFileChanged(ObjectChanged):
    """The copy of a landed upload at ``<KOUIKI_LAKE_URL>/landing`` is not the bytes its name (sha256) says:
    refused, never read. One line naming the object."""


def remote_key(stored_path: str) -> str:
    """A landed file's key under ``<url>/landing`` from its ``stored_path`` (``landing/<city>/<name>``)."""
    return PurePath(stored_path).relative_to("landing").as_posix()


def local_copy(paths: Paths, stored_path: str) -> Path:
    """The landed file to read: the home's copy; when this home lacks it and ``KOUIKI_LAKE_URL`` is set, first
    fetched from ``<url>/landing/…`` with its manifest (the file checked against the sha256 in its name, written
    read-only; :class:`LandedFileChanged` when it does not match). A file that is nowhere is returned as its
    (missing) local path: reading it fails as it always did."""
    landed = paths.home / stored_path
    if landed.is_file() or paths.remote_landing is None:
        return landed
    key = remote_key(stored_path)
    try:
        fetched = object_store.fetch_file(paths.remote_landing, key, landed, sha256=landed.name.split(".", 1)[0],
                                          tmp_prefix=f"{TMP_PREFIX}{os.getpid()}-", mode=0o444)
    except ObjectChanged as exc:
        raise LandedFileChanged(str(exc)) from None
    if fetched and not manifest_path(landed).exists():
        object_store.fetch_file(paths.remote_landing, f"{key.rsplit('/', 1)[0]}/{manifest_path(landed).name}",
                                manifest_path(landed), tmp_prefix=f"{TMP_PREFIX}{os.getpid()}-", mode=0o444)
    return landed


def landed_exists(paths: Paths, stored_path: str) -> bool:
    """Whether a landed file is in this home or, with ``KOUIKI_LAKE_URL``, at ``<url>/landing``."""
    return (paths.home / stored_path).is_file() or (
        paths.remote_landing is not None and object_store.exists(paths.remote_landing, remote_key(stored_path)))


def remote_upload_ids(paths: Paths) -> dict[str, str]:
    """Upload id → manifest key of every upload at ``<url>/landing`` (none without ``KOUIKI_LAKE_URL``), from
    one listing: the id is in the name (``<city>/.<sha256>.upload.json``). A manifest is copied after its file,
    so the file is there."""
    if paths.remote_landing is None:
        return {}
    found = {}
    for key in object_store.keys(paths.remote_landing, f"*/.*{MANIFEST_SUFFIX}"):
        city, name = key.split("/", 1)
        found[upload_id_for(city, name[1:].split(".", 1)[0])] = key
    return found


def remote_manifests(paths: Paths, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """The manifests at ``<url>/landing`` by upload id, but those in ``skip`` (not read: one GET each); one that
    does not read is left out."""
    found = {}
    for upload_id, key in remote_upload_ids(paths).items():
        manifest = None if upload_id in skip else _manifest_doc(object_store.read_bytes(str(paths.remote_landing),
                                                                                        key))
        if manifest is not None and _names_its_key(manifest, key):
            found[manifest["upload_id"]] = manifest
    return found


def _names_its_key(manifest: dict[str, Any], key: str) -> bool:
    """A manifest from the URL says where its file goes in a home: only beside it, under its own name (never a
    path that would leave the landing folder)."""
    city, name = key.split("/", 1)
    sha = name[1:].split(".", 1)[0]
    stored = PurePath(str(manifest.get("stored_path", "")))
    return (manifest.get("upload_id") == upload_id_for(city, sha) and manifest.get("city_code") == city
            and stored.parts[:2] == ("landing", city) and len(stored.parts) == 3
            and stored.name.split(".", 1)[0] == sha and safe_suffix(stored.name) == stored.suffix)


def manifest_path(landed: Path) -> Path:
    """``.<sha256>.upload.json``: hidden, so every listing of a city's landed files sees only uploads."""
    return landed.with_name("." + landed.name.split(".", 1)[0] + MANIFEST_SUFFIX)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A landed file's manifest, or None when it does not read (``kouiki doctor`` reports that)."""
    try:
        return _manifest_doc(path.read_bytes())
    except OSError:
        return None


def _manifest_doc(data: bytes | None) -> dict[str, Any] | None:
    try:
        doc = json.loads((data or b"").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and {"upload_id", "city_code", "received_at"} <= doc.keys() else None


def read_refusal(path: Path) -> dict[str, Any] | None:
    """A refusal record (status, detail), or None when there is none or it does not read."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and {"status", "detail"} <= doc.keys() else None


def write_manifest(landed: Path, manifest: dict[str, Any]) -> None:
    _write_beside(landed, manifest_path(landed), manifest)


def refusal_path(landed: Path) -> Path:
    return landed.with_name("." + landed.name.split(".", 1)[0] + REFUSAL_SUFFIX)


def record_refusal(paths: Paths, stored_path: str, status: str, detail: dict[str, Any]) -> None:
    """Keep the service's refusal beside the landed file, so a rebuilt catalog never lets the pipeline process
    bytes the service refused. ``status`` is an :class:`UploadStatus` or its value (anything else raises)."""
    landed = paths.home / stored_path
    _write_beside(landed, refusal_path(landed), {"status": UploadStatus(status).value, "detail": detail})
    if paths.remote_landing is not None:
        object_store.put_bytes(paths.remote_landing, refusal_path(Path(remote_key(stored_path))).as_posix(),
                               refusal_path(landed).read_bytes())


def _write_beside(landed: Path, target: Path, doc: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=landed.parent, prefix=f"{TMP_PREFIX}{os.getpid()}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(doc, ensure_ascii=False, indent=1))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def upload_row(paths: Paths, manifest: dict[str, Any]) -> dict[str, Any]:
    """The catalog row of a landed upload: as landed, or, when the lake's history holds its decision (it was
    processed before the catalog was lost), with that decision, so it is not processed again."""
    row: dict[str, Any] = {
        "upload_id": manifest["upload_id"],
        "city_code": manifest["city_code"],
        "sha256": manifest["sha256"],
        "original_name": manifest["original_name"],
        "size": int(manifest["size"]),
        "stored_path": manifest["stored_path"],
        "received_at": datetime.fromisoformat(manifest["received_at"]),
        "source": manifest.get("source", "inbox"),
        "status": UploadStatus.LANDED,
    }
    refused = _refusal_of(paths, manifest["stored_path"])
    if refused is not None:
        return row | {"status": refused["status"], "detail": {**refused["detail"], "restored": True}}
    processed = lake.history_of(paths.lake, manifest["city_code"], manifest["upload_id"])
    if processed is not None:
        html = paths.reports / manifest["city_code"] / f"{manifest['upload_id']}.html"
        row |= {"status": UploadStatus.of_decision(str(processed["decision"])),
                "dataset_id": processed["dataset_id"],
                "detail": {"rows": processed["rows"], "rows_accepted": processed["rows_accepted"],
                           "rows_quarantined": processed["rows_quarantined"], "restored": True,
                           **({"report_html": str(html.relative_to(paths.home)),
                               "report_json": str(html.with_suffix(".json").relative_to(paths.home))}
                              if html.exists() else {})}}
    return row


def _refusal_of(paths: Paths, stored_path: str) -> dict[str, Any] | None:
    """The refusal record of a landed file: the home's, else the one at ``<url>/landing``."""
    local = refusal_path(paths.home / stored_path)
    if local.exists() or paths.remote_landing is None:
        return read_refusal(local)
    data = object_store.read_bytes(paths.remote_landing, refusal_path(Path(remote_key(stored_path))).as_posix())
    try:
        doc = json.loads(data.decode("utf-8")) if data is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and {"status", "detail"} <= doc.keys() else None


def landed_files(paths: Paths) -> list[Path]:
    """Every landed upload (not the manifests, not temporary files)."""
    if not paths.landing.is_dir():
        return []
    return sorted(p for p in paths.landing.glob("*/*") if p.is_file() and not p.name.startswith("."))


def restore_uploads(paths: Paths) -> list[str]:
    """Re-add to the catalog every landed upload it lacks (a lost or rebuilt catalog), from the manifests; a
    landed file without a manifest that the catalog knows (landed by an older version) gets its manifest from
    the catalog. A file with neither is a landing still in progress or one a crash interrupted before its
    manifest: it is left alone (landing the same bytes again completes it; ``kouiki doctor`` lists it).
    With ``KOUIKI_LAKE_URL`` set, the manifests at ``<url>/landing`` count too: an empty home's catalog gets
    every upload landed anywhere (its file is fetched when a step reads it, :func:`local_copy`).
    Returns one line per upload restored."""
    known = {u.upload_id: u for u in catalog.list_uploads(paths.catalog_url)}
    seen = set(known)
    restored = []
    for landed in landed_files(paths):
        manifest = read_manifest(manifest_path(landed)) if manifest_path(landed).exists() else None
        if manifest is None:
            upload = known.get(upload_id_for(landed.parent.name, landed.name.split(".", 1)[0]))
            if upload is not None:
                write_manifest(landed, _manifest_from(paths, landed, upload))
            continue
        if manifest["upload_id"] in seen:
            continue
        seen.add(manifest["upload_id"])
        if catalog.add_upload(paths.catalog_url, upload_row(paths, manifest)):
            restored.append(f"{landed}: カタログに復元 / restored to the catalog as {manifest['upload_id']}")
    for upload_id, manifest in remote_manifests(paths, skip=seen).items():
        if upload_id not in seen and catalog.add_upload(paths.catalog_url, upload_row(paths, manifest)):
            where = object_store.url_of(str(paths.remote_landing), remote_key(manifest["stored_path"]))
            restored.append(f"{where}: カタログに復元 / restored to the catalog as {upload_id}")
    return restored


def _manifest_from(paths: Paths, landed: Path, upload: catalog.UploadRow) -> dict[str, Any]:
    return {
        "upload_id": upload.upload_id, "city_code": upload.city_code, "sha256": upload.sha256,
        "original_name": upload.original_name, "size": landed.stat().st_size,
        "stored_path": str(landed.relative_to(paths.home)), "received_at": upload.received_at.isoformat(),
        "source": upload.source,
    }


def copy_read_only(source: Path, target: Path, mode: int = 0o444) -> None:
    """Copy through a temporary file in the same folder and rename: a crash never leaves a partial file under
    the content-addressed name. The stored copy is made read-only."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{TMP_PREFIX}{os.getpid()}-")
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


def landing_leftovers(paths: Paths) -> list[Path]:
    """Temporary files of landings whose process died (a crash between copy and rename)."""
    from kouiki.runlock import pid_alive

    found = []
    for tmp in paths.landing.glob(f"*/{TMP_PREFIX}*") if paths.landing.is_dir() else []:
        pid = tmp.name[len(TMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not pid_alive(int(pid)):
            found.append(tmp)
    return sorted(found)
