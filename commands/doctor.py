"""``kouiki doctor``: check a kouiki home for what crashes, full disks and hands can leave, and repair what
can be repaired (``--repair``). One line per problem: the file, what is wrong, what to do.

Checked: the catalog (SQLite ``PRAGMA integrity_check``), every landed file's sha256 against its name and its
manifest, every release's files against the checksums of its metadata.json, releases against the catalog and
``latest.json``, leftovers of interrupted writes, Dagster runs whose process is gone and pool slots held by
finished runs. With ``KOUIKI_LAKE_URL`` set, the uploads and releases there count as the home's (an upload whose
file is only there is not missing; releases there that the home lacks are fetched by ``--repair``).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import make_url

from intake.landing import (
    landed_exists,
    landed_files,
    landing_leftovers,
    manifest_path,
    read_manifest,
    remote_upload_ids,
    sha256_of,
)
from kouiki import catalog, lake, object_store
from kouiki.settings import Paths
from publish.recover import (
    INCOMPLETE,
    ReleaseStateError,
    read_json_file,
    release_folders,
    release_metadata,
    verify_checksums,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance


RESTORE = "バックアップから戻してください / restore it from a backup"
REPUBLISH = ("バックアップから戻すか、この版を削除して再公開してください / restore it from a backup, or remove this "
             "release and publish again")


@dataclass(frozen=True)
class Problem:
    file: str
    what: str
    fix: str
    repairable: bool = False

    def line(self) -> str:
        mark = "修復可 / repairable with --repair" if self.repairable else self.fix
        return f"{self.file}: {self.what} — {mark}"


@dataclass
class Report:
    problems: list[Problem]
    repaired: list[str]


def check(paths: Paths, instance: DagsterInstance | None = None) -> list[Problem]:
    """Every problem found, repairable ones marked."""
    problems = check_catalog(paths)
    catalog_ok = not any(p.file == str(sqlite_file(paths)) for p in problems)
    problems += check_landing(paths, catalog_ok)
    problems += check_releases(paths, catalog_ok)
    problems += check_remote_releases(paths)
    problems += check_leftovers(paths)
    if instance is not None:
        problems += check_runs(instance)
    return problems


def sqlite_file(paths: Paths) -> Path | None:
    url = make_url(catalog.sqlalchemy_url(paths.catalog_url))
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def check_catalog(paths: Paths) -> list[Problem]:
    db = sqlite_file(paths)
    if db is None or not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        rows = [str(exc)]
    if rows == ["ok"]:
        return []
    return [Problem(str(db), f"カタログが壊れています / the catalog is corrupt ({'; '.join(rows[:3])})",
                    "退避して受付領域と公開フォルダから作り直します / it is moved aside and rebuilt from landing and "
                    "releases", repairable=True)]


def check_landing(paths: Paths, catalog_ok: bool) -> list[Problem]:
    problems = []
    files = landed_files(paths)
    known = {u.upload_id: u for u in catalog.list_uploads(paths.catalog_url)} if catalog_ok else {}
    for landed in files:
        sha = landed.name.split(".", 1)[0]
        if sha256_of(landed) != sha:
            problems.append(Problem(str(landed), "内容が名前の sha256 と一致しません（改ざん・破損）/ content does "
                                    "not match the sha256 in its name (tampered or damaged)",
                                    RESTORE))
        manifest = manifest_path(landed)
        if not manifest.exists() and f"{landed.parent.name}-{sha[:16]}" in known:
            problems.append(Problem(str(manifest), "マニフェストがありません / manifest missing", "", repairable=True))
        elif not manifest.exists():
            problems.append(Problem(str(landed), "受付が途中で中断されました（記録なし）/ a landing interrupted before "
                                    "it was recorded", "同じファイルをもう一度登録してください / upload or drop the "
                                    "same file again"))
        elif read_manifest(manifest) is None:
            problems.append(Problem(str(manifest), "マニフェストが読めません / manifest unreadable",
                                    "削除すると --repair で作り直します / delete it and run --repair"))
    if catalog_ok:
        landed_ids = {f"{f.parent.name}-{f.name[:16]}" for f in files if manifest_path(f).exists()}
        landed_ids |= set(remote_upload_ids(paths))     # KOUIKI_LAKE_URL: the uploads landed anywhere
        missing = sorted(set(landed_ids) - set(known))
        if missing:
            problems.append(Problem(str(paths.landing),
                                    f"カタログにない受付ファイル {len(missing)} 件 / {len(missing)} landed upload(s) "
                                    f"missing from the catalog ({', '.join(missing[:3])}…)", "", repairable=True))
        for up in known.values():
            if not landed_exists(paths, up.stored_path):      # in the home or at KOUIKI_LAKE_URL
                problems.append(Problem(str(paths.home / up.stored_path), f"アップロード {up.upload_id} の原本が"
                                        f"ありません / the landed file of upload {up.upload_id} is missing",
                                        "バックアップから戻してください / restore it from a backup"))
    return problems


def check_releases(paths: Paths, catalog_ok: bool) -> list[Problem]:
    problems: list[Problem] = []
    if not paths.releases.is_dir():
        return problems
    for dataset_root in sorted(p for p in paths.releases.iterdir() if p.is_dir() and not p.name.startswith(".")):
        complete = []
        for number in release_folders(dataset_root):
            wrong = verify_checksums(dataset_root, number)
            problems += [Problem(line.split(": ", 1)[0], line.split(": ", 1)[-1], REPUBLISH) for line in wrong]
            try:
                release_metadata(dataset_root, number)
                complete.append(number)
            except ReleaseStateError:
                pass
        problems += _check_pointer(dataset_root, complete)
        if catalog_ok:
            recorded = catalog.release_numbers(paths.catalog_url, dataset_root.name)
            for number in sorted(set(complete) - recorded):
                problems.append(Problem(str(dataset_root / str(number)), "カタログに記録されていない版 / release not "
                                        "in the catalog", "", repairable=True))
            for number in sorted(recorded - set(release_folders(dataset_root))):
                problems.append(Problem(str(dataset_root / str(number)),
                                        "カタログにあるが公開フォルダがありません / in the catalog, folder missing",
                                        RESTORE))
    return problems


def check_remote_releases(paths: Paths) -> list[Problem]:
    """With ``KOUIKI_LAKE_URL``: releases there that this home lacks (``--repair`` fetches them, checked against
    their metadata.json), and a ``latest.json`` there pointing at a release that is not all there."""
    remote = paths.remote_releases
    if remote is None:
        return []
    problems = []
    complete = set(object_store.keys(remote, "*/*/metadata.json"))
    for pointer in object_store.keys(remote, "*/latest.json"):
        dataset_id = pointer.split("/", 1)[0]
        for key in sorted(k for k in complete if k.startswith(f"{dataset_id}/")):
            folder = key.split("/")[1]
            if folder.isdigit() and not (paths.releases / dataset_id / folder).is_dir():
                problems.append(Problem(object_store.url_of(remote, f"{dataset_id}/{folder}"),
                                        "この家にない版 / a release this home lacks", "", repairable=True))
        try:
            number: object = json.loads(object_store.read_bytes(remote, pointer) or b"").get("number")
        except (ValueError, AttributeError):
            number = None
        if f"{dataset_id}/{number}/metadata.json" not in complete:
            problems.append(Problem(object_store.url_of(remote, pointer), f"版 {number} を指していますがその版が"
                                    f"ありません / points to release {number}, which is not all there",
                                    "公開し直してください / publish again"))
    return problems


def _check_pointer(dataset_root: Path, complete: list[int]) -> list[Problem]:
    pointer = dataset_root / "latest.json"
    try:
        current = read_json_file(pointer) if pointer.exists() else None
    except ReleaseStateError as exc:
        return [Problem(str(pointer), str(exc).split(": ", 1)[-1], RESTORE, repairable=bool(complete))]
    if not complete:
        return []
    if current is None:
        return [Problem(str(pointer), "ありません / missing", "", repairable=True)]
    if current.get("number") != max(complete):
        return [Problem(str(pointer), f"版 {current.get('number')} を指していますが最新の完全な版は {max(complete)} / "
                        f"points to release {current.get('number')}, newest complete is {max(complete)}", "",
                        repairable=True)]
    return []


def check_leftovers(paths: Paths) -> list[Problem]:
    from kouiki.runlock import pid_alive

    found = [*lake.leftovers(paths.lake), *map(str, landing_leftovers(paths))]
    if paths.releases.is_dir():
        for folder in sorted(paths.releases.glob("*/.incomplete-*")):
            match = INCOMPLETE.match(folder.name)
            if match and not pid_alive(int(match["pid"])):
                found.append(str(folder))
    return [Problem(f, "中断された書き込みの残り / leftover of an interrupted write", "", repairable=True)
            for f in found]


def check_runs(instance: DagsterInstance) -> list[Problem]:
    from recovery.start import dead_runs, held_slots

    problems = [Problem(f"Dagster run {run_id}", f"実行中のままですがプロセス (pid {pid}) がありません / "
                        f"marked started but its process (pid {pid}) is gone", "", repairable=True)
                for run_id, pid in dead_runs(instance)]
    problems += [Problem(f"Dagster run {run_id}", "終了済みの実行が pool の枠を保持しています / a finished run holds "
                         "pool slots (later runs would wait for ever)", "", repairable=True)
                 for run_id in held_slots(instance)]
    return problems


def repair(paths: Paths, instance: DagsterInstance | None) -> list[str]:
    """Repair what can be: a corrupt SQLite catalog is moved aside and rebuilt; then the start-of-run
    recovery (leftovers, catalog from landing + releases, latest.json, dead runs and pool slots)."""
    from recovery.start import free_dead_runs, recover_files

    repaired = []
    if check_catalog(paths):
        repaired.append(move_catalog_aside(paths))
    done, _problems = recover_files(paths)
    repaired += done
    if instance is not None:
        repaired += free_dead_runs(instance)
    return repaired


def move_catalog_aside(paths: Paths) -> str:
    db = sqlite_file(paths)
    assert db is not None
    catalog.forget_engines()
    stamp = catalog.now().strftime("%Y%m%dT%H%M%S")
    aside = db.with_name(f"{db.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{db}{suffix}")
        if part.exists():
            shutil.move(part, Path(f"{aside}{suffix}"))
    return (f"{db}: 壊れたカタログを {aside.name} に退避し作り直しました / moved the corrupt catalog to "
            f"{aside.name} and rebuilt it")


def doctor(paths: Paths, instance: DagsterInstance | None, *, fix: bool) -> Report:
    repaired = repair(paths, instance) if fix else []
    return Report(problems=check(paths, instance), repaired=repaired)


def lock_free(paths: Paths) -> int | None:
    """The run lock if no run holds it (repairs must not race a run)."""
    from kouiki.runlock import try_run_lock

    return try_run_lock(paths.home)


def release_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
