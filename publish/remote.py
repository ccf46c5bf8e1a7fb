"""Releases at ``<KOUIKI_LAKE_URL>/releases``: the store of record when the URL is set; the home's
``releases/`` folder is then a working copy that the portal, the publisher and recovery read.

    <url>/releases/<dataset>/<n>/…              the files of release n, ``metadata.json`` last
    <url>/releases/<dataset>/latest.json        written after the release it points to is all there

:func:`copy_to_remote` (after every publication) copies each complete local release the URL lacks, then
``latest.json``: a reader of the URL that finds ``latest.json`` finds its release whole, and one that finds a
release's ``metadata.json`` finds every file it lists (a PUT makes an object appear whole or not at all).

:func:`pull_releases` brings the URL's releases into a home that lacks them (a portal on another machine, a
publisher elsewhere, a rebuilt home): each release is fetched into ``.incomplete-<n>-<pid>/`` (removed by
``publish.recover`` if the process dies), every file checked against the sha256 its ``metadata.json`` lists, and
renamed into place only then; the home's ``latest.json`` moves last, and never backwards. An object that does not
match is refused, one line naming it, and its release is not taken.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kouiki import object_store
from kouiki.object_store import ObjectChanged
from publish.recover import ReleaseStateError, read_json_file, release_folders, write_pointer

DATASET_ID = re.compile(r"^[a-z][a-z0-9_]*$")
RELEASE_NUMBER = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass
class Pulled:
    """Releases taken from the URL (``pulled``) and objects refused or unreadable (``problems``), one line each."""

    pulled: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def copy_to_remote(releases_root: Path, dataset_id: str, remote_root: str) -> int:
    """Copy every complete release of the dataset (up to the home's latest) that ``<remote_root>/<dataset>/``
    lacks, oldest first, each with ``metadata.json`` last, then ``latest.json``. Files already there are kept (a
    release never changes), so a copy a crash or a network failure interrupted is completed by the next call.
    Returns the files copied."""
    pointer = releases_root / dataset_id / "latest.json"
    if not pointer.is_file():
        return 0
    latest = int(read_json_file(pointer)["number"])
    there = set(object_store.keys(remote_root, f"{dataset_id}/*/metadata.json"))
    copied = 0
    for number in release_folders(releases_root / dataset_id):
        if number <= latest and f"{dataset_id}/{number}/metadata.json" not in there:
            copied += object_store.put_tree(remote_root, f"{dataset_id}/{number}",
                                            releases_root / dataset_id / str(number), last="metadata.json")
    object_store.put_bytes(remote_root, f"{dataset_id}/latest.json", pointer.read_bytes())
    return copied


def pull_releases(remote_root: str, releases_root: Path, dataset_ids: list[str] | None = None) -> Pulled:
    """Fetch into ``releases_root`` the releases at ``remote_root`` it lacks (of ``dataset_ids``, or all), then
    point each dataset's ``latest.json`` where the URL's does (see the module doc)."""
    result = Pulled()
    for key in object_store.keys(remote_root, "*/latest.json"):
        dataset_id = key.split("/", 1)[0]
        if DATASET_ID.match(dataset_id) and (dataset_ids is None or dataset_id in dataset_ids):
            _pull_dataset(remote_root, releases_root / dataset_id, result)
    return result


def _pull_dataset(remote_root: str, dataset_root: Path, result: Pulled) -> None:
    dataset_id = dataset_root.name
    data = object_store.read_bytes(remote_root, f"{dataset_id}/latest.json")
    pointer = _json_object(data)
    number = pointer.get("number") if pointer else None
    if not isinstance(number, int) or number < 1:
        result.problems.append(f"{object_store.url_of(remote_root, f'{dataset_id}/latest.json')}: 読めません / "
                               "unreadable (no release number) — 公開し直してください / publish again")
        return
    local_pointer = dataset_root / "latest.json"
    if local_pointer.is_file() and local_pointer.read_bytes() == data:
        return                      # the usual case: nothing new (one listing and one small GET per dataset)
    local = set(release_folders(dataset_root))
    for key in object_store.keys(remote_root, f"{dataset_id}/*/metadata.json"):
        text = key.split("/")[1]
        if RELEASE_NUMBER.match(text) and int(text) <= number and int(text) not in local:
            try:
                _pull_release(remote_root, dataset_root, int(text))
            except (ObjectChanged, ValueError) as exc:
                result.problems.append(str(exc))
                continue
            result.pulled.append(f"{object_store.url_of(remote_root, f'{dataset_id}/{text}')}: 取得 / fetched into "
                                 f"{dataset_root / text}")
    if (dataset_root / str(number)).is_dir() and number >= _local_number(local_pointer) and data is not None:
        write_pointer(dataset_root, data)      # the URL's pointer, byte for byte


def _pull_release(remote_root: str, dataset_root: Path, number: int) -> None:
    """One release into ``.incomplete-<n>-<pid>/``, checked, then renamed to ``<n>/``."""
    prefix = f"{dataset_root.name}/{number}"
    meta = _json_object(object_store.read_bytes(remote_root, f"{prefix}/metadata.json"))
    if meta is None or not isinstance(meta.get("files"), list):
        raise ValueError(f"{object_store.url_of(remote_root, f'{prefix}/metadata.json')}: 読めません / unreadable "
                         "— この版は取得しません / this release is not fetched")
    listed = {str(f.get("path")): str(f.get("sha256")) for f in meta["files"] if isinstance(f, dict)}
    present = set(object_store.files_under(remote_root, prefix))
    work = dataset_root / f".incomplete-{number}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        for rel in sorted(set(listed) | present | {"metadata.json"}):
            _fetch_one(remote_root, prefix, rel, work, listed.get(rel))
        try:
            os.rename(work, dataset_root / str(number))
        except OSError:
            if not (dataset_root / str(number)).is_dir():   # else another process took it first: the same bytes
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch_one(remote_root: str, prefix: str, rel: str, work: Path, sha256: str | None) -> None:
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or ".." in parts:
        raise ValueError(f"{object_store.url_of(remote_root, f'{prefix}/{rel}')}: 使えない名前 / a name that would "
                         "leave the release folder — この版は取得しません / this release is not fetched")
    if not object_store.fetch_file(remote_root, f"{prefix}/{rel}", work.joinpath(*parts), sha256=sha256,
                                   tmp_prefix=".fetch-"):
        raise ValueError(f"{object_store.url_of(remote_root, f'{prefix}/{rel}')}: metadata.json にあるのに"
                         "見つかりません / listed in metadata.json but missing — この版は取得しません / this "
                         "release is not fetched")


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    try:
        doc = json.loads((data or b"").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _local_number(pointer: Path) -> int:
    try:
        number = read_json_file(pointer).get("number") if pointer.is_file() else 0
    except ReleaseStateError:
        return 0
    return number if isinstance(number, int) else 0
