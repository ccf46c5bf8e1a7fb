"""Bringing a dataset's releases back to one consistent state after a crash, and checking them.

A release is committed in this order (``publish.release``): files written into ``.incomplete-<n>-<pid>/`` and
synced; the folder renamed to ``<n>/``; ``latest.json`` replaced; the catalog row inserted. A crash can stop it
between any two steps, so at the start of every publication (and of ``kouiki run``, and in ``kouiki doctor``):

- ``.incomplete-*`` folders of dead processes and ``.latest.json.tmp`` are removed (never public);
- every complete release folder (its ``metadata.json`` reads and lists files that exist with their sizes) is
  recorded: ``latest.json`` points to the highest complete one, and a missing catalog row is re-added from its
  ``metadata.json``. The folder rename is the commit point: a folder that exists was meant to be published.
- a ``latest.json`` or ``metadata.json`` that does not read is one line naming the file; ``latest.json`` is
  rebuilt from the folders, a broken ``metadata.json`` keeps its release out of ``latest.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kouiki import catalog
from kouiki.errors import ConfigError
from kouiki.runlock import pid_alive

INCOMPLETE = re.compile(r"^\.incomplete-(?P<number>\d+)-(?P<pid>\d+)$")


class ReleaseStateError(ConfigError):
    """A release file that does not read (one line naming the file)."""

    problem_code = "release-state-error"


@dataclass
class Recovery:
    """What recovery did (``repaired``) and what it could not fix (``problems``), one line each."""

    repaired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or :class:`ReleaseStateError` naming the file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseStateError(f"{path}: 読めません / unreadable ({_reason(exc)})") from exc
    if not isinstance(doc, dict):
        raise ReleaseStateError(f"{path}: JSON オブジェクトではありません / not a JSON object")
    return doc


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"JSON line {exc.lineno} column {exc.colno}: {exc.msg}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def release_folders(dataset_root: Path) -> list[int]:
    if not dataset_root.is_dir():
        return []
    return sorted(int(p.name) for p in dataset_root.iterdir() if p.is_dir() and p.name.isdigit())


def release_metadata(dataset_root: Path, number: int) -> dict[str, Any]:
    """The release's metadata.json if the release is complete (every listed file there with its size)."""
    folder = dataset_root / str(number)
    meta = read_json_file(folder / "metadata.json")
    for key in ("content_hash", "rows", "published_at", "files"):
        if key not in meta:
            raise ReleaseStateError(f"{folder / 'metadata.json'}: '{key}' がありません / missing '{key}'")
    for entry in meta["files"]:
        path = folder / str(entry.get("path", ""))
        if not path.is_file() or path.stat().st_size != entry.get("bytes"):
            raise ReleaseStateError(f"{path}: 欠けているか大きさが違います / missing or not the size metadata.json "
                                    "lists")
    return meta


def recover_dataset(dataset_root: Path, catalog_url: str | None) -> Recovery:
    """Make one dataset's releases consistent (see the module doc); safe to run at any time under the
    warehouse pool or the run lock (``.incomplete-*`` folders of live processes are left alone)."""
    result = Recovery()
    if not dataset_root.is_dir():
        return result
    _remove_leftovers(dataset_root, result)
    complete: dict[int, dict[str, Any]] = {}
    for number in release_folders(dataset_root):
        try:
            complete[number] = release_metadata(dataset_root, number)
        except ReleaseStateError as exc:
            result.problems.append(f"{exc} — kouiki doctor で確認してください / check it with kouiki doctor")
    if complete:
        _repair_latest(dataset_root, max(complete), complete[max(complete)], result)
    if catalog_url:
        _repair_catalog(dataset_root, complete, catalog_url, result)
    return result


def recover_releases(releases_root: Path, catalog_url: str | None) -> Recovery:
    total = Recovery()
    if not releases_root.is_dir():
        return total
    for dataset_root in sorted(p for p in releases_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        one = recover_dataset(dataset_root, catalog_url)
        total.repaired += one.repaired
        total.problems += one.problems
    return total


def _remove_leftovers(dataset_root: Path, result: Recovery) -> None:
    for path in sorted(dataset_root.iterdir()):
        match = INCOMPLETE.match(path.name)
        if match and not pid_alive(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            result.repaired.append(f"{path}: 中断された公開の残りを削除 / removed an interrupted release")
        elif path.name == ".latest.json.tmp":
            path.unlink(missing_ok=True)
            result.repaired.append(f"{path}: 削除 / removed")


def _repair_latest(dataset_root: Path, number: int, meta: dict[str, Any], result: Recovery) -> None:
    pointer_path = dataset_root / "latest.json"
    wanted = pointer_for(dataset_root.name, number, meta)
    try:
        current = read_json_file(pointer_path) if pointer_path.exists() else None
    except ReleaseStateError as exc:
        result.repaired.append(f"{exc} — 版 {number} から作り直しました / rebuilt from release {number}")
        current = None
    if current is not None and current.get("number") == number and current.get("content_hash") == wanted[
            "content_hash"]:
        return
    if current is not None:
        result.repaired.append(f"{pointer_path}: 版 {current.get('number')} → {number} "
                               "(記録されていなかった完全な版 / a complete release not pointed to)")
    elif not pointer_path.exists():
        result.repaired.append(f"{pointer_path}: 版 {number} を指すよう作成 / created for release {number}")
    write_pointer(dataset_root, wanted)


def pointer_for(dataset_id: str, number: int, meta: dict[str, Any]) -> dict[str, Any]:
    return {"dataset_id": dataset_id, "number": number, "content_hash": meta["content_hash"],
            "published_at": meta["published_at"], "rows": meta["rows"]}


def write_pointer(dataset_root: Path, pointer: dict[str, Any] | bytes) -> None:
    """Replace latest.json atomically (written beside it, synced, renamed); ``bytes``: exactly these (a copy of
    the one at ``KOUIKI_LAKE_URL``, ``publish.remote``)."""
    tmp = dataset_root / ".latest.json.tmp"
    data = pointer if isinstance(pointer, bytes) else json.dumps(pointer, ensure_ascii=False, indent=2).encode()
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, dataset_root / "latest.json")


def _repair_catalog(dataset_root: Path, complete: dict[int, dict[str, Any]], catalog_url: str,
                    result: Recovery) -> None:
    recorded = catalog.release_numbers(catalog_url, dataset_root.name)
    for number, meta in sorted(complete.items()):
        if number in recorded:
            continue
        catalog.record_release(catalog_url, dataset_root.name, number, str(meta["content_hash"]), int(meta["rows"]),
                               str(dataset_root / str(number)), published_at=_when(meta["published_at"]))
        result.repaired.append(f"{dataset_root / str(number)}: カタログに記録 / recorded in the catalog")
    for number in sorted(recorded - set(complete)):
        if not (dataset_root / str(number)).exists():
            result.problems.append(f"{dataset_root / str(number)}: カタログにあるが公開フォルダがありません / in the "
                                   "catalog but the release folder is missing: restore it from a backup")


def _when(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return catalog.now()


def verify_checksums(dataset_root: Path, number: int) -> list[str]:
    """Files of a release whose sha256 is not the one in its metadata.json (one line each)."""
    folder = dataset_root / str(number)
    try:
        meta = read_json_file(folder / "metadata.json")
    except ReleaseStateError as exc:
        return [str(exc)]
    wrong = []
    for entry in meta.get("files") or []:
        path = folder / str(entry.get("path", ""))
        if not path.is_file():
            wrong.append(f"{path}: ありません / missing")
        elif _sha256(path) != entry.get("sha256"):
            wrong.append(f"{path}: sha256 が metadata.json と違います / sha256 differs from metadata.json")
    return wrong


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
