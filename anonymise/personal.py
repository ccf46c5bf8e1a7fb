"""Personal files (個人情報を含むファイル): received, stored and read apart from everything public.

    private/inbox/<city>/<policy>/<file>.csv        where a city's personal file arrives (never inbox/<city>/,
                                                     which the public intake picks up)
    private/personal/<city>/<sha256>.csv            the stored bytes, content-addressed and read-only
    private/personal/<city>/<sha256>.json           what they are: policy, original name, received, synthetic?

Nothing here is recorded in the public catalog, so no public table or release metadata can name a personal file.
For the demo, `write_synthetic_demo_file` puts a synthetic 要介護認定 list (no real person) into the inbox, with
planted canary records whose values verification must never find in a release.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from anonymise.documents import file_sha256
from anonymise.policy import Policy, PolicyError
from anonymise.synthetic import generate_care_records
from intake.landing import copy_read_only

SYNTHETIC_NOTICE = (
    "合成デモデータです。実在の人物の情報ではありません。 / Synthetic demo data: these records describe no real person."
)
# Planted in the synthetic demo file; a release containing any of these values has leaked a deleted column.
DEMO_CANARIES: tuple[dict[str, str], ...] = (
    {"氏名": "検証　漏洩一郎", "氏名カナ": "ケンショウ　ロウエイイチロウ", "個人番号": "123456789018"},
    {"氏名": "検証　漏洩花子", "氏名カナ": "ケンショウ　ロウエイハナコ", "個人番号": "548836529885"},
    {"氏名": "試験　秘匿太郎", "氏名カナ": "シケン　ヒトクタロウ", "個人番号": "983205673214"},
)
_SIDE_CAR = ".meta.json"


@dataclass(frozen=True)
class PersonalFile:
    """One stored personal file and what is known about it (all of it private)."""

    city_code: str
    policy: str
    sha256: str
    path: Path
    original_name: str
    received_at: str
    synthetic: bool
    canaries: tuple[dict[str, str], ...]
    source_mtime: float = 0.0  # orders two files received in the same second

    def canary_values(self) -> list[str]:
        return sorted({str(value) for canary in self.canaries for value in canary.values()})


def personal_inbox(private_root: Path, city_code: str, policy_name: str) -> Path:
    """Where a city's personal file for `policy_name` arrives."""
    return private_root / "inbox" / city_code / policy_name


def personal_store(private_root: Path, city_code: str) -> Path:
    return private_root / "personal" / city_code


def write_synthetic_demo_file(
    private_root: Path, city_code: str, policy_name: str, rows: int, seed: int | None = None
) -> Path | None:
    """Put a synthetic 要介護認定 list into the city's private inbox unless a file is already there.

    The file name and a side-car note say it is synthetic; the note also lists the planted canaries."""
    inbox = personal_inbox(private_root, city_code, policy_name)
    if _inbox_files(inbox):
        return None
    seed = int(city_code) if seed is None else seed
    records = generate_care_records(city_code, rows, seed=seed, canaries=[dict(c) for c in DEMO_CANARIES])
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / f"{policy_name}_{city_code}_SYNTHETIC_DEMO.csv"
    records.write_csv(target)
    note = {"synthetic": True, "notice": SYNTHETIC_NOTICE, "seed": seed, "rows": rows, "canaries": DEMO_CANARIES}
    (inbox / (target.name + _SIDE_CAR)).write_text(json.dumps(note, ensure_ascii=False, indent=2), encoding="utf-8")
    return target


def land_personal_files(private_root: Path, city_code: str, policy_name: str) -> list[PersonalFile]:
    """Store every CSV of the city's private inbox for `policy_name` (idempotent); returns what was stored."""
    landed = []
    for source in _inbox_files(personal_inbox(private_root, city_code, policy_name)):
        landed.append(_land(private_root, city_code, policy_name, source))
    return landed


def current_personal_file(private_root: Path, city_code: str, policy_name: str) -> PersonalFile | None:
    """The newest stored file of the city for `policy_name` (the one an extract is made from)."""
    store = personal_store(private_root, city_code)
    files = [_read_manifest(path) for path in store.glob("*.json")] if store.is_dir() else []
    files = [file for file in files if file.policy == policy_name]
    return max(files, key=lambda file: (file.received_at, file.source_mtime, file.sha256), default=None)


def stored_personal_file(private_root: Path, city_code: str, sha256: str) -> PersonalFile:
    """A stored file by its sha256 (raises FileNotFoundError when it is not in the city's store)."""
    return _read_manifest(personal_store(private_root, city_code) / f"{sha256}.json")


def read_personal_records(file: PersonalFile, policy: Policy) -> pl.DataFrame:
    """The records as text, with the columns the policy computes on typed: birth dates as dates, interval
    quasi-identifiers and top-coded / rounded columns as numbers. Identifiers stay text (leading zeros)."""
    table = read_personal_text(file)
    casts: list[pl.Expr] = []
    for rule in policy.quasi_identifiers:
        if rule.derive:
            casts.append(_as_date(rule.source_column))
        elif rule.hierarchy["kind"] == "interval" and rule.column in table.columns:
            casts.append(_as_number(table, rule.column))
    # kept columns are numbers only where the policy top-codes or rounds them; others stay text as sent
    casts += [
        _as_number(table, keep.column)
        for keep in policy.keep
        if keep.column in table.columns and (keep.top_at or keep.top_percentile or keep.rounding)
    ]
    try:
        return table.with_columns(casts)
    except pl.exceptions.PolarsError as error:
        raise PolicyError(
            f"{file.original_name}: 日付・数値の列を読めません / cannot read a date or number column: {error}",
            code="policy-input-error",
        ) from error


def read_personal_text(file: PersonalFile) -> pl.DataFrame:
    """Every column as text (UTF-8 with or without BOM, else CP932; delimiter ',' or ';'), as verification
    compares published cells with it; nothing here shares code with the anonymiser."""
    raw = file.path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp932")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return pl.read_csv(text.encode("utf-8"), separator=delimiter, infer_schema=False)


def _as_date(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().str.to_date("%Y-%m-%d", strict=True)


def _as_number(table: pl.DataFrame, column: str) -> pl.Expr:
    text = table[column].str.strip_chars().str.replace_all(",", "")
    integral = text.drop_nulls().str.contains(r"^-?\d+$").all()
    dtype = pl.Int64 if integral else pl.Float64
    return pl.col(column).str.strip_chars().str.replace_all(",", "").cast(dtype, strict=True)


def _inbox_files(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() == ".csv" and p.name[0] != ".")


def _land(private_root: Path, city_code: str, policy_name: str, source: Path) -> PersonalFile:
    sha = file_sha256(source)
    store = personal_store(private_root, city_code)
    target = store / f"{sha}.csv"
    manifest = store / f"{sha}.json"
    if not target.exists():
        _copy_read_only(source, target)
    if not manifest.exists():
        note = _side_car(source)
        entry = {
            "city_code": city_code,
            "policy": policy_name,
            "sha256": sha,
            "original_name": source.name,
            "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source_mtime": source.stat().st_mtime,
            "synthetic": bool(note.get("synthetic", False)),
            "canaries": note.get("canaries", []),
        }
        manifest.write_text(json.dumps(entry, ensure_ascii=False, indent=2), encoding="utf-8")
        os.chmod(manifest, 0o444)
    return _read_manifest(manifest)


def _side_car(source: Path) -> dict[str, Any]:
    note = source.with_name(source.name + _SIDE_CAR)
    return json.loads(note.read_text(encoding="utf-8")) if note.is_file() else {}


def _read_manifest(path: Path) -> PersonalFile:
    entry = json.loads(path.read_text(encoding="utf-8"))
    return PersonalFile(
        city_code=entry["city_code"],
        policy=entry["policy"],
        sha256=entry["sha256"],
        path=path.with_suffix(".csv"),
        original_name=entry["original_name"],
        received_at=entry["received_at"],
        synthetic=bool(entry.get("synthetic")),
        canaries=tuple(dict(c) for c in entry.get("canaries", [])),
        source_mtime=float(entry.get("source_mtime", 0.0)),
    )


def _copy_read_only(source: Path, target: Path) -> None:
    """Personal files are readable by their owner only."""
    copy_read_only(source, target, mode=0o400)
