"""Picking up a city's files: land everything new in its inbox folders and say which dataset each file is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from expectations.registry import Registry
from intake.headers import header_score
from intake.landing import Landed, LandedFileChanged, changed_detail, land_file, local_copy
from intake.process import choose_for_city
from intake.read import read_file
from kouiki import catalog
from kouiki.catalog import UploadStatus
from kouiki.members import Member
from kouiki.problems import IntakeError
from kouiki.settings import Paths


@dataclass(frozen=True)
class Pickup:
    landed: list[Landed]
    new: int
    detected: dict[str, str]          # upload id → dataset id (or "unreadable")


def inbox_folders(paths: Paths, member: Member) -> list[Path]:
    folders = [paths.inbox / member.code]
    if member.inbox is not None:
        folders.append(member.inbox)
    return [f for f in folders if f.is_dir()]


def pick_up(paths: Paths, member: Member, registry: Registry) -> Pickup:
    """Land every file in the member's inbox folders (idempotent) and detect the dataset of new uploads."""
    landed: list[Landed] = []
    for folder in inbox_folders(paths, member):
        for file in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            landed.append(land_file(paths, member.code, file))
    detected = {}
    for up in catalog.list_uploads(paths.catalog_url, city_code=member.code):
        if up.status == UploadStatus.LANDED and up.dataset_id is None:
            detected[up.upload_id] = detect_upload(paths, registry, up)
    return Pickup(landed=landed, new=sum(1 for x in landed if x.is_new), detected=detected)


def detect_upload(paths: Paths, registry: Registry, upload: catalog.UploadRow,
                  dataset_hint: str | None = None) -> str:
    """Record which dataset and variant an upload is; an unreadable file is marked with its error."""
    try:
        raw = read_file(local_copy(paths, upload.stored_path), original_name=upload.original_name,
                        header_scorer=lambda h: header_score(h, registry))
        match = choose_for_city(raw, registry, upload.city_code, dataset_hint=dataset_hint,
                                file_name=upload.original_name)
    except IntakeError as err:
        catalog.set_upload_status(paths.catalog_url, upload.upload_id, UploadStatus.UNREADABLE,
                                  detail={"error": err.to_dict()})
        return UploadStatus.UNREADABLE
    except LandedFileChanged:   # its copy at KOUIKI_LAKE_URL is not what the city sent: never read
        catalog.set_upload_status(paths.catalog_url, upload.upload_id, UploadStatus.UNREADABLE,
                                  detail=changed_detail())
        return UploadStatus.UNREADABLE
    catalog.set_upload_status(
        paths.catalog_url, upload.upload_id, UploadStatus.LANDED, dataset_id=match.dataset_id, variant=match.variant,
        detail={"detection": {"score": round(match.score, 3), "unmatched": match.unmatched,
                              "missing": match.missing, "encoding": raw.encoding, "format": raw.format}},
    )
    return match.dataset_id
