"""Documents kept beside a release but never inside it: the 加工方法等情報 and the extract log."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anonymise.policy import Policy


def write_processing_information(information: dict[str, Any], path: Path, release_path: Path) -> Path:
    """Write the 加工方法等情報 as JSON, readable by its owner only (0400, like the personal files), refusing any
    place inside the release's own folder (which is what gets published). An existing document is never
    overwritten: it records what was done."""
    release_dir = release_path.resolve().parent
    target = path.resolve()
    if target == release_path.resolve() or release_dir in target.parents:
        raise ValueError(
            "加工方法等情報を公開フォルダに置くことはできません / "
            "the anonymisation method information must not be "
            f"written next to the release ({release_dir})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(information, ensure_ascii=False, indent=2, default=str)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(target, 0o400)  # whatever the umask
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_log_record(
    requested_by: str,
    policy: Policy,
    release_path: Path,
    records_released: int,
    verification_passed: bool,
    purpose: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One extract-log entry: who asked, when, under which policy (and its exact text), which release."""
    return {
        "requested_by": requested_by,
        "requested_at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "purpose": purpose,
        "policy": policy.name,
        "policy_sha256": policy.sha256,
        "release": release_path.name,
        "release_sha256": file_sha256(release_path) if release_path.is_file() else None,
        "records_released": records_released,
        "verification_passed": verification_passed,
    }


def append_extract_log(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to the extract log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def blocked_log_record(
    requested_by: str,
    policy: Policy,
    dataset_id: str,
    reasons: list[dict[str, str]],
    at: datetime | None = None,
) -> dict[str, Any]:
    """An extract-log entry for a release that verification (or the privacy model) stopped: nothing was provided."""
    return {
        "requested_by": requested_by,
        "requested_at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "policy": policy.name,
        "policy_sha256": policy.sha256,
        "dataset_id": dataset_id,
        "release": None,
        "records_released": 0,
        "verification_passed": False,
        "blocked_reasons": reasons,
    }
