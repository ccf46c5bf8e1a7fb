"""A landed file whose bytes no longer match the sha256 in its name (changed or damaged after landing) is
noticed at the start of every run, named in one line, and its upload is refused, never read."""

from __future__ import annotations

import os
from pathlib import Path

from intake.landing import land_file
from kouiki import catalog
from kouiki.publication import ReleaseIndex, publication
from kouiki.settings import Paths
from recovery.start import CHANGED_CODE, recover_files

DEMO = Path(__file__).resolve().parent.parent / "demo" / "uploads"


def test_a_changed_landed_file_is_refused_at_the_start_of_a_run(kouiki_home: Path) -> None:
    paths = Paths(kouiki_home).ensure()
    changed = land_file(paths, "222127", DEMO / "222127" / "yaizu_222127_aed.csv")
    intact = land_file(paths, "222127", DEMO / "222127" / "yaizu_222127_evacuation_space.csv")
    os.chmod(changed.path, 0o644)   # landed files are read-only: someone had to mean it
    with changed.path.open("ab") as fh:
        fh.write("222127,999,静岡県,焼津市,偽のAED\n".encode())

    _repaired, problems = recover_files(paths)

    assert len(problems) == 1
    line = problems[0]
    assert "\n" not in line and str(changed.path) in line and changed.upload_id in line
    assert "kouiki upload rerun 222127" in line
    refused = catalog.get_upload(paths.catalog_url, changed.upload_id)
    assert refused is not None and refused.status == "unreadable"
    assert (refused.detail or {})["error"]["code"] == CHANGED_CODE
    state = publication(refused, ReleaseIndex(paths.releases))
    assert state.state == "unreadable" and "変わっています" in state.reasons[0].title_ja
    untouched = catalog.get_upload(paths.catalog_url, intact.upload_id)
    assert untouched is not None and untouched.status == "landed"
    again = recover_files(paths)[1]   # named again at every start until restored; still refused
    assert len(again) == 1 and str(changed.path) in again[0]
    assert catalog.get_upload(paths.catalog_url, changed.upload_id).status == "unreadable"  # type: ignore[union-attr]


def test_a_processed_upload_changed_later_is_named_at_the_start(kouiki_home: Path) -> None:
    """Its rows came from the original bytes (nothing published changes); the file needs restoring."""
    paths = Paths(kouiki_home).ensure()
    landed = land_file(paths, "222127", DEMO / "222127" / "yaizu_222127_aed.csv")
    catalog.set_upload_status(paths.catalog_url, landed.upload_id, "accepted")
    assert recover_files(paths)[1] == []
    os.chmod(landed.path, 0o644)
    landed.path.write_bytes(landed.path.read_bytes().replace("焼津".encode(), "焼律".encode(), 1))
    problems = recover_files(paths)[1]
    assert len(problems) == 1 and str(landed.path) in problems[0] and "\n" not in problems[0]
    assert catalog.get_upload(paths.catalog_url, landed.upload_id).status == "accepted"  # type: ignore[union-attr]


def test_restored_from_a_backup_it_is_used_again(kouiki_home: Path) -> None:
    paths = Paths(kouiki_home).ensure()
    source = DEMO / "132195" / "komae_132195_aed.csv"
    landed = land_file(paths, "132195", source)
    os.chmod(landed.path, 0o644)
    landed.path.write_bytes(source.read_bytes()[:-10])
    assert len(recover_files(paths)[1]) == 1
    landed.path.write_bytes(source.read_bytes())                  # the office restores it
    catalog.set_upload_status(paths.catalog_url, landed.upload_id, "landed")   # kouiki upload rerun 132195
    assert recover_files(paths)[1] == []
    again = catalog.get_upload(paths.catalog_url, landed.upload_id)
    assert again is not None and again.status == "landed"
