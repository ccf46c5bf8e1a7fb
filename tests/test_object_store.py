"""KOUIKI_LAKE_URL as the store of record for landing and releases, on a local folder, on fsspec's ``memory://``
and on moto's S3 server on 127.0.0.1 (the whole pipeline: tests/test_object_store_s3.py). Real files: the demo's
狛江市 AED upload landed by ``land_file``, releases written as the publisher writes them (``portal.testing``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_lake_url import BUCKET, s3_endpoint  # noqa: F401  (s3_endpoint: moto's S3 server, a fixture)

from intake.landing import LandedFileChanged, land_file, local_copy, remote_key, restore_uploads
from kouiki import catalog, object_store
from kouiki.settings import Paths
from portal.testing import build_sample_tree
from publish.remote import copy_to_remote, pull_releases
from recovery.start import CHANGED_CODE, refuse_changed_uploads

KOMAE_AED = Path(__file__).resolve().parent.parent / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"


@pytest.fixture(params=["folder", "memory", "s3"])
def lake_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """KOUIKI_LAKE_URL: a local folder, fsspec's memory filesystem, or a prefix in moto's S3 server's bucket."""
    if request.param == "s3":
        request.getfixturevalue("s3_endpoint")
        return f"s3://{BUCKET}/{tmp_path.name}"
    return str(tmp_path / "store") if request.param == "folder" else f"memory://kouiki-{tmp_path.name}"


def home(root: Path, lake_url: str, catalog_url: str | None = None) -> Paths:
    return Paths(root, lake_url=lake_url, catalog=catalog_url or f"sqlite:///{root / 'catalog.sqlite'}").ensure()


def release_files(releases: Path) -> dict[str, bytes]:
    return {p.relative_to(releases).as_posix(): p.read_bytes() for p in sorted(releases.rglob("*")) if p.is_file()}


def test_an_empty_home_gets_the_landed_upload_from_the_url(lake_url: str, tmp_path: Path) -> None:
    first = home(tmp_path / "a", lake_url)
    landed = land_file(first, "132195", KOMAE_AED)
    stored = str(landed.path.relative_to(first.home))
    # a second machine: its own empty home, the same catalog, the same URL
    second = home(tmp_path / "b", lake_url, first.catalog_url)
    assert not (second.home / stored).exists()
    copy = local_copy(second, stored)
    assert copy == second.home / stored and copy.read_bytes() == KOMAE_AED.read_bytes()
    assert (copy.stat().st_mode & 0o777) == 0o444                        # read-only, as landed files are
    assert (copy.parent / f".{landed.sha256}.upload.json").is_file()   # its manifest came with it
    # a rebuilt catalog on a third empty home finds the upload by its manifest at the URL
    third = home(tmp_path / "c", lake_url)
    lines = restore_uploads(third)
    assert len(lines) == 1 and landed.upload_id in lines[0] and lines[0].startswith(
        object_store.url_of(f"{lake_url}/landing", remote_key(stored)))
    restored = catalog.get_upload(third.catalog_url, landed.upload_id)
    assert restored is not None and restored.sha256 == landed.sha256 and restored.stored_path == stored
    assert not list(third.landing.glob("*/*"))                          # nothing fetched until it is read


def test_a_tampered_landed_object_is_refused_naming_it(lake_url: str, tmp_path: Path) -> None:
    first = home(tmp_path / "a", lake_url)
    landed = land_file(first, "132195", KOMAE_AED)
    stored = str(landed.path.relative_to(first.home))
    object_store.put_bytes(f"{lake_url}/landing", remote_key(stored), KOMAE_AED.read_bytes().replace(b"1", b"7"))
    second = home(tmp_path / "b", lake_url, first.catalog_url)
    with pytest.raises(LandedFileChanged) as raised:
        local_copy(second, stored)
    where = object_store.url_of(f"{lake_url}/landing", remote_key(stored))
    assert str(raised.value).startswith(f"{where}: ") and "\n" not in str(raised.value)
    assert not [p for p in second.landing.rglob("*") if p.is_file()]   # no file, no temporary file, no manifest
    # the lake step's check refuses the upload with that line and never reads it
    upload = catalog.get_upload(first.catalog_url, landed.upload_id)
    assert upload is not None
    lines = refuse_changed_uploads(second, [upload])
    assert len(lines) == 1 and lines[0].startswith(f"{where}: ") and landed.upload_id in lines[0]
    refused = catalog.get_upload(first.catalog_url, landed.upload_id)
    assert refused is not None and refused.status == "unreadable"
    assert (refused.detail or {})["error"]["code"] == CHANGED_CODE


def test_releases_pushed_to_the_url_come_back_byte_for_byte(lake_url: str, tmp_path: Path) -> None:
    source = tmp_path / "a" / "releases"
    build_sample_tree(source)                  # evacuation_space releases 1 and 2, aed release 1
    remote = f"{lake_url}/releases"
    assert copy_to_remote(source, "evacuation_space", remote) > 0 and copy_to_remote(source, "aed", remote) > 0
    assert copy_to_remote(source, "aed", remote) == 0                   # a release is copied once
    keys = object_store.files_under(remote, "evacuation_space")
    assert {k.split("/")[0] for k in keys} == {"1", "2", "latest.json"}   # every release, not only the latest
    target = tmp_path / "b" / "releases"
    pulled = pull_releases(remote, target)
    assert pulled.problems == [] and len(pulled.pulled) == 3
    assert release_files(target) == release_files(source)               # latest.json included, byte for byte
    assert pull_releases(remote, target).pulled == []                   # nothing new: nothing fetched


def test_a_tampered_release_object_is_refused_and_latest_stays(lake_url: str, tmp_path: Path) -> None:
    source = tmp_path / "a" / "releases"
    build_sample_tree(source)
    remote = f"{lake_url}/releases"
    copy_to_remote(source, "evacuation_space", remote)
    # release 2's CSV changed at the URL after it was published
    object_store.put_bytes(remote, "evacuation_space/2/evacuation_space.csv", b"\xe5\x90\x8d\xe7\xa7\xb0\nforged\n")
    target = tmp_path / "b" / "releases"
    pulled = pull_releases(remote, target)
    where = object_store.url_of(remote, "evacuation_space/2/evacuation_space.csv")
    assert [line.split(": ", 1)[0] for line in pulled.problems] == [where]
    assert all("\n" not in line for line in pulled.problems)
    # release 1 is taken; release 2 is not, and latest.json is not moved to it
    assert sorted(p.name for p in (target / "evacuation_space").iterdir()) == ["1"]
    assert not [p for p in target.rglob(".*")]                          # no half-fetched folder left


def test_latest_json_at_the_url_is_written_after_its_release(lake_url: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy interrupted half-way leaves ``latest.json`` at the URL where it was; the next copy completes it."""
    source = tmp_path / "a" / "releases"
    build_sample_tree(source)
    remote = f"{lake_url}/releases"
    real_put_file = object_store.put_file
    written: list[str] = []

    def failing_put_file(root: str, key: str, path: Path) -> bool:
        if len(written) == 3:
            raise OSError("network down")
        written.append(key)
        return real_put_file(root, key, path)

    monkeypatch.setattr(object_store, "put_file", failing_put_file)
    with pytest.raises(OSError):
        copy_to_remote(source, "evacuation_space", remote)
    assert not object_store.exists(remote, "evacuation_space/latest.json")
    assert not object_store.exists(remote, "evacuation_space/1/metadata.json")      # metadata.json comes last
    assert pull_releases(remote, tmp_path / "b" / "releases").pulled == []          # nothing to take yet
    monkeypatch.setattr(object_store, "put_file", real_put_file)
    copy_to_remote(source, "evacuation_space", remote)
    pointer = json.loads(object_store.read_bytes(remote, "evacuation_space/latest.json") or b"")
    assert pointer["number"] == 2


def test_doctor_counts_the_url_and_repair_fetches_what_the_home_lacks(lake_url: str, tmp_path: Path) -> None:
    """``kouiki doctor`` on an empty home sharing the catalog and the URL: an upload whose file is only at the URL
    is not "missing"; releases there that the home lacks are listed, and ``--repair`` fetches them (and records
    them in a catalog that lacks them)."""
    from commands.doctor import doctor

    first = home(tmp_path / "a", lake_url)
    land_file(first, "132195", KOMAE_AED)
    build_sample_tree(first.releases)
    for dataset_id in ("aed", "evacuation_space"):
        copy_to_remote(first.releases, dataset_id, f"{lake_url}/releases")
    empty = home(tmp_path / "b", lake_url, first.catalog_url)
    found = [p.line() for p in doctor(empty, None, fix=False).problems]
    remote = f"{lake_url}/releases"
    assert sorted(found) == sorted(
        f"{object_store.url_of(remote, release)}: この家にない版 / a release this home lacks — 修復可 / repairable "
        "with --repair" for release in ("aed/1", "evacuation_space/1", "evacuation_space/2"))
    report = doctor(empty, None, fix=True)
    assert report.problems == []
    assert release_files(empty.releases) == release_files(first.releases)
    assert catalog.release_numbers(first.catalog_url, "evacuation_space") == {1, 2}   # recorded from the copies


def test_a_manifest_at_the_url_naming_another_path_is_not_restored(lake_url: str, tmp_path: Path) -> None:
    """A manifest decides where its file is written in a home: one that points outside its own place (a forged
    or damaged object) is left out of a rebuilt catalog, so nothing is ever fetched there."""
    first = home(tmp_path / "a", lake_url)
    landed = land_file(first, "132195", KOMAE_AED)
    key = f"132195/.{landed.sha256}.upload.json"
    manifest = json.loads(object_store.read_bytes(f"{lake_url}/landing", key) or b"")
    object_store.put_bytes(f"{lake_url}/landing", key, json.dumps(
        manifest | {"stored_path": "landing/132195/../../../outside.csv"}).encode())
    empty = home(tmp_path / "b", lake_url)
    assert restore_uploads(empty) == []
    assert catalog.get_upload(empty.catalog_url, landed.upload_id) is None


@pytest.mark.parametrize("kind", ["folder", "memory"])
def test_anonymisation_steps_judge_against_every_earlier_release_at_the_url(kind: str, tmp_path: Path) -> None:
    """A worker with an empty home (a daemon or Celery step on another machine) takes the earlier releases from
    the URL before staging or checking an extract; a changed one stops the step instead of shortening the history
    the differencing check compares with."""
    from assets.anonymise import earlier_releases_here

    url = str(tmp_path / "store") if kind == "folder" else f"memory://kouiki-anon-{tmp_path.name}"
    office = home(tmp_path / "office", url)
    build_sample_tree(office.releases)
    for dataset_id in ("evacuation_space", "aed"):
        copy_to_remote(office.releases, dataset_id, f"{url}/releases")
    worker = home(tmp_path / "worker", url)
    assert not list(worker.releases.iterdir())
    earlier_releases_here(worker)
    assert release_files(worker.releases) == release_files(office.releases)
    # release 1 of aed changed at the URL: a third worker's step stops, naming the object
    object_store.put_bytes(f"{url}/releases", "aed/1/aed.csv", b"forged\n")
    third = home(tmp_path / "third", url)
    with pytest.raises(RuntimeError, match=r"aed/1/aed\.csv"):
        earlier_releases_here(third)
    # no URL: nothing to take, nothing read
    earlier_releases_here(Paths(tmp_path / "alone", lake_url="").ensure())
