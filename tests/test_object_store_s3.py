"""KOUIKI_LAKE_URL on an S3-compatible server (moto's server mode on 127.0.0.1, as tests/test_lake_url.py) as the
store of record: the demo pipeline runs once in home A; then machines with an *empty* ``KOUIKI_HOME`` and the
same catalog URL and KOUIKI_LAKE_URL work from the bucket alone:

1. a portal on home B serves every release file, byte for byte the files of home A, over real HTTP;
2. a worker on home C ingests an upload that exists only at ``<url>/landing`` (A's copy deleted) and the
   releases hold the same rows (nothing new published: the same content);
3. (tests/test_object_store.py) tampered objects are refused, one line naming the object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from test_lake_url import BUCKET, Run, bucket_keys, run_demo, s3_endpoint  # noqa: F401  (s3_endpoint: a fixture)

from kouiki import catalog
from kouiki.catalog import UploadStatus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, str]]:
    request.getfixturevalue("s3_endpoint")
    root = tmp_path_factory.mktemp("first")
    url = f"s3://{BUCKET}/{root.name}"
    yield run_demo(root, lake_url=url), url


def environment(mp: pytest.MonkeyPatch, home: Path, run: Run, url: str) -> None:
    mp.setenv("KOUIKI_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.setenv("KOUIKI_CATALOG_URL", run.paths.catalog_url)       # the shared catalog
    mp.setenv("KOUIKI_LAKE_URL", url)


def test_a_portal_with_an_empty_home_serves_the_same_files(first: tuple[Run, str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.app import create_app
    from portal.settings import PortalSettings
    from portal.testing import serve

    run, url = first
    environment(monkeypatch, tmp_path / "portal-home", run, url)
    releases = run.paths.releases
    served = 0
    with serve(create_app(PortalSettings.from_env())) as base, httpx.Client(base_url=base, timeout=30) as http:
        for pointer in sorted(releases.glob("*/latest.json")):
            dataset_id = pointer.parent.name
            number = json.loads(pointer.read_text(encoding="utf-8"))["number"]
            meta = json.loads((pointer.parent / str(number) / "metadata.json").read_text(encoding="utf-8"))
            for entry in meta["files"]:
                answer = http.get(f"/download/{dataset_id}/{number}/{entry['path']}")
                assert answer.status_code == 200, entry["path"]
                assert answer.content == (pointer.parent / str(number) / entry["path"]).read_bytes(), entry["path"]
                served += 1
            page = http.get(f"/dataset/{dataset_id}")
            assert page.status_code == 200 and meta["title"]["ja"] in page.text
            package = http.get("/api/3/action/package_show", params={"id": dataset_id}).json()
            assert package["success"] and len(package["result"]["resources"]) == len(meta["files"])
    # every listed file of both releases: region CSV, CSV for Excel, Parquet, JSON, GeoJSON, changes.json, and
    # two files per city (aed: 2 cities → 10 files; evacuation_space: 1 city → 8)
    assert set(run.releases) == {"aed", "evacuation_space"} and served == 10 + 8
    # the portal's home holds the same tree as the office's, latest.json included, and nothing else of it
    portal_home = tmp_path / "portal-home" / "releases"
    assert sorted(p.relative_to(portal_home).as_posix() for p in portal_home.rglob("*") if p.is_file()) == \
        sorted(p.relative_to(releases).as_posix() for p in releases.rglob("*") if p.is_file())
    assert not (tmp_path / "portal-home" / "landing").exists() or not any(
        (tmp_path / "portal-home" / "landing").iterdir())


def test_a_worker_with_an_empty_home_ingests_an_upload_only_on_the_url(first: tuple[Run, str], tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import instance_for_test

    from pipelines.main_run import run_main

    run, url = first
    uploads = catalog.list_uploads(run.paths.catalog_url, city_code="132195")
    (komae,) = [u for u in uploads if u.dataset_id == "aed"]
    assert komae.status in (UploadStatus.ACCEPTED, UploadStatus.QUARANTINED)
    # as `kouiki upload rerun 132195` does: back to landed; and the office's copy is gone
    catalog.set_upload_status(run.paths.catalog_url, komae.upload_id, UploadStatus.LANDED)
    office_copy = run.paths.home / komae.stored_path
    office_copy.chmod(0o644)
    office_copy.unlink()
    assert f"{run.paths.home.parent.name}/{komae.stored_path}" in bucket_keys(run.paths.home.parent.name)
    before = dict(run.releases)
    members = tmp_path / "members.yaml"       # the worker's inboxes are empty: nothing lands there
    (tmp_path / "inbox").mkdir()
    members.write_text("members:\n"
                       f"  - {{code: \"132195\", name: 狛江市, inbox: {tmp_path}/inbox, datasets: [aed]}}\n"
                       f"  - {{code: \"222127\", name: 焼津市, inbox: {tmp_path}/inbox, datasets: [aed, "
                       "evacuation_space]}\n", encoding="utf-8")
    worker = tmp_path / "worker-home"
    environment(monkeypatch, worker, run, url)
    monkeypatch.setenv("KOUIKI_MEMBERS", str(members))
    with instance_for_test() as instance:
        outcome = run_main(instance=instance)
    assert outcome.region_ok and all(c.run_ok for c in outcome.cities)
    again = catalog.get_upload(run.paths.catalog_url, komae.upload_id)
    assert again is not None and again.status == komae.status            # read again, the same decision
    fetched = worker / komae.stored_path
    assert fetched.read_bytes() == (Path(__file__).resolve().parent.parent / "demo" / "uploads" / "132195" /
                                    "komae_132195_aed.csv").read_bytes()
    # the same releases: the worker took them from the bucket, found the same content, published nothing new
    for dataset_id, rows in before.items():
        pointer = json.loads((worker / "releases" / dataset_id / "latest.json").read_text(encoding="utf-8"))
        office = json.loads((run.paths.releases / dataset_id / "latest.json").read_text(encoding="utf-8"))
        assert pointer == office, dataset_id
        worker_rows = pl.read_parquet(worker / "releases" / dataset_id / str(pointer["number"]) /
                                      f"{dataset_id}.parquet")
        assert worker_rows.equals(rows), dataset_id
    assert before["aed"].height == 57 + 82
