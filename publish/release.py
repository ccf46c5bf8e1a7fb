"""Publishing: numbered, immutable releases of each region-wide dataset, made "latest" atomically.

    releases/<dataset>/<n>/<dataset>.csv            UTF-8
    releases/<dataset>/<n>/<dataset>_excel.csv      UTF-8 with BOM (opens correctly in Excel)
    releases/<dataset>/<n>/<dataset>.parquet
    releases/<dataset>/<n>/<dataset>.json, <dataset>.geojson (when the dataset has coordinates)
    releases/<dataset>/<n>/changes.json             rows added / removed / changed since the previous release
    releases/<dataset>/<n>/cities/<code>_<dataset>.csv   each member city's part
    releases/<dataset>/<n>/metadata.json            source uploads, row counts, checksums, licence, conformance
    releases/<dataset>/latest.json                  pointer to the newest complete release

A release is written into a hidden temporary folder and renamed into place only when every file is written;
``latest.json`` is replaced after that, then the catalog row is inserted. A crash at any point leaves the
previous release the complete latest, and the next publication first completes or removes what a crash left
(``publish.recover``).
A run whose data equals the latest release's publishes nothing (idempotent).

With ``KOUIKI_LAKE_URL`` set, ``<url>/releases`` is the store of record (``publish.remote``): a publication first
takes the releases there that the home lacks (so numbers continue and "nothing changed" compares with the last
release published from any machine), then copies the new release (``metadata.json`` last) and ``latest.json``
after it; every publication checks the copy, so one a crash or a network failure interrupted is completed by the
next run, even when nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from kouiki import catalog
from kouiki.crashpoints import crash_point
from kouiki.model import Dataset
from kouiki.sql import literal, quote
from publish.changes import compare
from publish.conformance import release_conformance
from publish.formats import write_geojson, write_json
from publish.recover import ReleaseStateError as ReleaseStateError
from publish.recover import read_json_file, recover_dataset, write_pointer
from publish.remote import copy_to_remote, pull_releases

LICENCES = {
    "CC-BY-4.0": {"title": "クリエイティブ・コモンズ 表示 4.0 国際 (CC BY 4.0)",
                  "url": "https://creativecommons.org/licenses/by/4.0/deed.ja"},
    "PDL-1.0": {"title": "公共データ利用規約（第1.0版） (PDL1.0)",
                "url": "https://www.digital.go.jp/resources/open_data/public_data_license_v1.0"},
}
BOM = b"\xef\xbb\xbf"
_log = logging.getLogger("kouiki.publish")

# A cell starting with one of these would run as a formula in a spreadsheet (CSV injection).
FORMULA_PREFIX = r"^[=+\-@\t\r]"


@dataclass(frozen=True)
class ReleaseResult:
    dataset_id: str
    number: int
    path: Path
    rows: int
    published: bool          # False when the data equals the latest release


class PublishError(RuntimeError):
    pass


def latest_release(releases_root: Path, dataset_id: str) -> dict[str, Any] | None:
    """The dataset's latest.json; :class:`ReleaseStateError` (one line naming the file) when it does not read."""
    pointer = releases_root / dataset_id / "latest.json"
    if not pointer.exists():
        return None
    return read_json_file(pointer)


def _next_number(dataset_root: Path) -> int:
    numbers = [int(p.name) for p in dataset_root.iterdir() if p.is_dir() and p.name.isdigit()] \
        if dataset_root.exists() else []
    return max(numbers, default=0) + 1


def public_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of the columns the public sees: provenance columns (``_…``) stay internal."""
    rows = con.execute(f"DESCRIBE {table}").fetchall()
    return [(r[0], r[1]) for r in rows if not r[0].startswith("_")]


def _select_for_csv(columns: list[tuple[str, str]]) -> str:
    parts = []
    for name, typ in columns:
        q = quote(name)
        if typ == "VARCHAR":
            parts.append(f"CASE WHEN regexp_matches({q}, '{FORMULA_PREFIX}') THEN '''' || {q} ELSE {q} END AS {q}")
        else:
            parts.append(q)
    return ", ".join(parts)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_bom_copy(src: Path, dst: Path) -> None:
    with dst.open("wb") as out, src.open("rb") as fh:
        out.write(BOM)
        shutil.copyfileobj(fh, out, 1 << 20)


def _export(con: duckdb.DuckDBPyConnection, table: str, columns: list[tuple[str, str]], where: str,
            folder: Path, stem: str) -> dict[str, Path]:
    csv_path = folder / f"{stem}.csv"
    csv_sql = f"SELECT {_select_for_csv(columns)} FROM {table} {where}"
    con.execute(f"COPY ({csv_sql}) TO {literal(str(csv_path))} (FORMAT csv, HEADER true)")
    bom_path = folder / f"{stem}_excel.csv"
    _write_bom_copy(csv_path, bom_path)
    files = {"csv": csv_path, "csv_bom": bom_path}
    return files


def _export_cities(con: duckdb.DuckDBPyConnection, table: str, columns: list[tuple[str, str]], folder: Path,
                   dataset_id: str) -> list[Path]:
    """Each city's part as CSV and CSV with BOM, written by one partitioned COPY (one query, not one per
    city: with every municipality of Japan as a member that is 1,741 queries saved)."""
    scratch = folder / ".by-city"
    threads = con.execute("SELECT current_setting('threads')").fetchone()
    # one thread: exactly one file per city, rows in the table's order (several threads split partitions)
    con.execute("SET threads = 1")
    try:
        con.execute(f"COPY (SELECT {_select_for_csv(columns)}, _city_code FROM {table}) TO {literal(str(scratch))} "
                    "(FORMAT csv, HEADER true, PARTITION_BY (_city_code), WRITE_PARTITION_COLUMNS false)")
    finally:
        con.execute(f"SET threads = {int(threads[0]) if threads else 2}")
    written: list[Path] = []
    for city_dir in sorted(scratch.glob("_city_code=*")):
        parts = list(city_dir.glob("*.csv"))
        if len(parts) != 1:   # DuckDB writes one file per partition unless told otherwise; never merge silently
            raise PublishError(f"{city_dir}: expected one CSV, found {len(parts)}")
        part = parts[0]
        code = city_dir.name.split("=", 1)[1]
        csv_path = folder / f"{code}_{dataset_id}.csv"
        part.rename(csv_path)
        bom_path = folder / f"{code}_{dataset_id}_excel.csv"
        _write_bom_copy(csv_path, bom_path)
        written += [csv_path, bom_path]
    shutil.rmtree(scratch)
    return written


def publish_dataset(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    table: str,
    releases_root: Path,
    catalog_url: str,
    *,
    licence: str = "CC-BY-4.0",
    fail_after_files: int | None = None,
    personal: bool = False,
    inspect: Callable[[Path], None] | None = None,
    remote_root: str | None = None,
) -> ReleaseResult:
    """Publish ``table`` (a conformed model) as the next release of ``dataset`` unless nothing changed.

    ``fail_after_files`` injects a crash after that many files are written (for the atomicity test).
    ``personal`` (an anonymised extract of personal data): changes.json gives totals, never row keys or hashes.
    ``inspect`` is called on the complete release folder before it is renamed into place; raising stops the
    publication (the previous release stays latest).
    ``remote_root`` (``Paths.remote_releases``): the releases at ``KOUIKI_LAKE_URL``, taken first and written after.
    """
    if licence not in LICENCES:
        raise PublishError(f"unknown licence {licence!r}; choose one of {', '.join(LICENCES)}")
    dataset_root = releases_root / dataset.id
    dataset_root.mkdir(parents=True, exist_ok=True)
    if remote_root is not None:
        pulled = pull_releases(remote_root, releases_root, [dataset.id])
        for line in pulled.pulled + pulled.problems:
            _log.warning(line)
    recover_committed(dataset_root, catalog_url)
    number = _next_number(dataset_root)
    work = dataset_root / f".incomplete-{number}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "cities").mkdir(parents=True)
    try:
        result = _publish_into(con, dataset, table, dataset_root, work, number, catalog_url, licence,
                               fail_after_files, personal, inspect)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if remote_root is not None:
        copy_to_remote(releases_root, dataset.id, remote_root)
    return result


def recover_committed(dataset_root: Path, catalog_url: str) -> None:
    """Finish or undo what a crashed publication left (``publish.recover``), saying what in the log."""
    recovery = recover_dataset(dataset_root, catalog_url)
    for line in recovery.repaired + recovery.problems:
        _log.warning(line)


def _publish_into(con: duckdb.DuckDBPyConnection, dataset: Dataset, table: str, dataset_root: Path,
                  work: Path, number: int, catalog_url: str, licence: str,
                  fail_after_files: int | None, personal: bool = False,
                  inspect: Callable[[Path], None] | None = None) -> ReleaseResult:
    columns = public_columns(con, table)
    written: list[Path] = []

    def wrote(*paths: Path) -> None:
        written.extend(paths)
        if fail_after_files is not None and len(written) >= fail_after_files:
            raise PublishError(f"injected failure after {len(written)} files")

    region = _export(con, table, columns, "", work, dataset.id)
    content_hash = _sha256(region["csv"])
    previous = latest_release(dataset_root.parent, dataset.id)
    rows_row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    rows = int(rows_row[0]) if rows_row else 0
    if previous and previous.get("content_hash") == content_hash:
        return ReleaseResult(dataset.id, int(previous["number"]), dataset_root / str(previous["number"]),
                             rows, published=False)
    wrote(*region.values())
    parquet_path = work / f"{dataset.id}.parquet"
    names = ", ".join(quote(n) for n, _ in columns)
    con.execute(f"COPY (SELECT {names} FROM {table}) TO {literal(str(parquet_path))} "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)")  # small groups: fast paging in the portal
    wrote(parquet_path)
    public_names = [n for n, _ in columns]
    wrote(write_json(con, table, public_names, work / f"{dataset.id}.json"))
    if dataset.lat_column in public_names and dataset.lon_column in public_names:
        wrote(write_geojson(con, table, public_names, str(dataset.lat_column), str(dataset.lon_column),
                            work / f"{dataset.id}.geojson"))
    changes = compare(
        con, table, public_names,
        dataset_root / str(previous["number"]) / f"{dataset.id}.parquet" if previous else None,
        int(previous["number"]) if previous else None,
        code_column=dataset.code_column, id_column=dataset.id_column, personal=personal,
    )
    (work / "changes.json").write_text(json.dumps(changes, ensure_ascii=False, indent=2), encoding="utf-8")
    wrote(work / "changes.json")
    per_city = con.execute(f"SELECT _city_code, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()
    for city_file in _export_cities(con, table, columns, work / "cities", dataset.id):
        wrote(city_file)
    uploads = {str(r[0]): int(r[1]) for r in con.execute(   # rows per source upload: the city's status page
        f"SELECT _upload_id, count(*) FROM {table} WHERE _upload_id IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()}
    meta = _metadata(dataset, number, content_hash, rows, dict(per_city), uploads, work, written, licence,
                     catalog_url, public_names)
    meta["changes"] = {k: changes[k] for k in ("previous_release", "added", "removed", "changed")}
    meta["conformance"] = release_conformance(con, dataset, table)   # per standard column (publish/conformance.py)
    (work / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    if inspect is not None:
        inspect(work)
    _fsync_tree(work)
    return _commit(dataset, work, dataset_root / str(number), meta, catalog_url)


def _commit(dataset: Dataset, work: Path, final: Path, meta: dict[str, Any], catalog_url: str) -> ReleaseResult:
    """The commit point is the rename; latest.json and the catalog row follow, and ``recover_dataset``
    completes them if a crash comes between (so every order of crash leaves one consistent state)."""
    crash_point("publish.files_written")
    os.rename(work, final)
    _fsync_dir(final.parent)
    crash_point("publish.renamed")
    number, rows, content_hash = int(meta["release"]), int(meta["rows"]), str(meta["content_hash"])
    write_pointer(final.parent, {"dataset_id": dataset.id, "number": number, "content_hash": content_hash,
                                 "published_at": meta["published_at"], "rows": rows})
    crash_point("publish.latest_written")
    catalog.record_release(catalog_url, dataset.id, number, content_hash, rows, str(final),
                           published_at=datetime.fromisoformat(meta["published_at"]))
    crash_point("publish.recorded")
    return ReleaseResult(dataset.id, number, final, rows, published=True)


def _metadata(dataset: Dataset, number: int, content_hash: str, rows: int, per_city: dict[str, int],
              upload_ids: dict[str, int], work: Path, written: list[Path], licence: str, catalog_url: str,
              columns: list[str]) -> dict[str, Any]:
    sources = []
    for uid, uid_rows in upload_ids.items():
        up = catalog.get_upload(catalog_url, uid)
        if up:
            sources.append({"upload_id": uid, "city_code": up.city_code, "file": up.original_name,
                            "sha256": up.sha256, "received_at": up.received_at.isoformat(), "rows": uid_rows})
    return {
        "dataset_id": dataset.id,
        "title": {"ja": dataset.name_ja, "en": dataset.name_en},
        "schema_version": dataset.version,
        "release": number,
        "published_at": catalog.now().isoformat(),
        "licence": {"id": licence, **LICENCES[licence]},
        "rows": rows,
        "rows_by_city": per_city,
        "content_hash": content_hash,
        "columns": columns,
        "source_uploads": sources,
        "files": [
            {"path": str(p.relative_to(work)), "bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in written
        ],
    }


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
