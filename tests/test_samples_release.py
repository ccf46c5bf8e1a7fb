"""End to end (issue 12): the 14 real files, each in its city's inbox, through the main job (``run_main``: intake,
GE validation, lake, generated models, releases) with the shipped defaults; every file's published rows are read
back from the public releases (``rows_by_city`` of each release's metadata, the city's part files).

It takes minutes (14 uploads, 9 datasets, every model and release), so it runs on request:
``KOUIKI_SAMPLES_E2E=1 .venv/bin/pytest -q -s tests/test_samples_release.py``. The same per-file balance is
checked fast, at the lake, by tests/test_samples_published.py.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from test_samples_published import CITY, MIN_PUBLISHED_SHARE, SOURCE_ROWS, sample_path

from kouiki import catalog, lake

NAMES = {"122033": "市川市", "222127": "焼津市", "132195": "狛江市", "372013": "高松市"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KOUIKI_SAMPLES_E2E") != "1",
                       reason="minutes long: set KOUIKI_SAMPLES_E2E=1 to run the 14 real files end to end"),
]


def test_real_files_reach_the_public_releases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import instance_for_test

    from kouiki.settings import get_paths
    from pipelines.main_run import run_main

    files = {name: sample_path(name) for name in SOURCE_ROWS}
    if any(path is None for path in files.values()):
        pytest.skip("../shared/samples is absent")
    members = tmp_path / "members.yaml"
    entries = []
    for code, name in NAMES.items():
        inbox = tmp_path / "inbox" / code
        inbox.mkdir(parents=True)
        for file, path in files.items():
            if CITY[file.split("_")[0]] == code and path is not None:
                (inbox / file).write_bytes(path.read_bytes())
        entries.append(f'  - code: "{code}"\n    name: {name}\n    inbox: {inbox}\n')
    members.write_text("members:\n" + "".join(entries), encoding="utf-8")
    monkeypatch.setenv("KOUIKI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    monkeypatch.setenv("KOUIKI_MEMBERS", str(members))
    monkeypatch.delenv("KOUIKI_CATALOG_URL", raising=False)
    with instance_for_test() as instance:
        outcome = run_main(instance=instance)
    assert outcome.region_ok
    paths = get_paths()
    uploads = {u.original_name: u for u in catalog.list_uploads(paths.catalog_url)}
    assert set(uploads) == set(SOURCE_ROWS)
    rows = published = 0
    for file, upload in sorted(uploads.items()):
        dataset = str(upload.dataset_id)
        release = outcome.releases[dataset]
        folder = paths.releases / dataset / str(release["number"])
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        assert upload.upload_id in {u["upload_id"] for u in metadata["source_uploads"]}
        in_release = metadata["rows_by_city"].get(upload.city_code, 0)
        # the city's part of the release holds exactly those rows (one file per city and dataset here)
        with (folder / "cities" / f"{upload.city_code}_{dataset}.csv").open(encoding="utf-8") as fh:
            assert sum(1 for _ in csv.DictReader(fh)) == in_release
        quarantine = lake.read_partition(paths.lake, "quarantine", dataset, upload.city_code)
        withheld = 0 if quarantine is None else quarantine.height
        assert in_release + withheld == SOURCE_ROWS[file], file
        rows += SOURCE_ROWS[file]
        published += in_release
        print(f"{file:46} {dataset:20} {SOURCE_ROWS[file]:5} in release {in_release:5} withheld {withheld:3}")
    print(f"total {rows} rows, {published} in the releases ({published / rows:.1%})")
    assert published / rows >= MIN_PUBLISHED_SHARE
