"""Acceptance of issue 12: every real file, uploaded as its city would with the shipped defaults, reaches the
lake's published side (``lake.staged``) except rows whose publication would mislead, and nothing is lost.

Each of the 14 files in ../shared/samples (read from the repository's demo copies where they exist, so the
five demo files are the very files ``make run`` publishes) is landed for its city, detected and loaded in one
``load_uploads`` call, as the lake asset does. Per file: the data rows the publisher's SOURCES.md states =
rows published + rows withheld; each withheld row has an error-severity finding naming its line. Overall at
least 95 % of the data rows are published. ``pytest -s`` prints the per-file figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import DEMO

from expectations.registry import default_registry
from intake.inbox import detect_upload
from intake.landing import land_file
from kouiki import catalog, lake
from kouiki.settings import get_paths
from warehouse.load import LoadOutcome, load_uploads

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/samples")

CITY = {"ichikawa": "122033", "yaizu": "222127", "komae": "132195", "takamatsu": "372013"}
# data rows of each file as its publisher's table in shared/samples/SOURCES.md states them (blank rows apart)
SOURCE_ROWS = {
    "ichikawa_122033_101_public_facility.csv": 342,
    "ichikawa_122033_102_cultural_property.csv": 76,
    "ichikawa_122033_103_evacuation_space.csv": 121,
    "ichikawa_122033_104_population.csv": 237,
    "ichikawa_122033_105_preschool.csv": 384,
    "ichikawa_122033_106_open_data_list.csv": 36,
    "ichikawa_122033_107_public_wireless_lan.csv": 45,
    "yaizu_222127_aed.csv": 82,
    "yaizu_222127_public_toilet.csv": 112,
    "yaizu_222127_evacuation_space.csv": 31,
    "yaizu_222127_preschool.csv": 60,
    "yaizu_222127_public_wireless_lan.csv": 17,
    "komae_132195_aed.csv": 57,
    "takamatsu_0012_kindergarten.csv": 70,
}
MIN_PUBLISHED_SHARE = 0.95


def sample_path(name: str) -> Path | None:
    """The repository's copy (demo/uploads/<city>/) when there is one, else ../shared/samples."""
    demo = DEMO / CITY[name.split("_")[0]] / name
    if demo.is_file():
        return demo
    shared = SAMPLES / name
    return shared if shared.is_file() else None


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Land, detect and load every available file, each for its city; per file what reached the lake."""
    home = tmp_path_factory.mktemp("published")
    mp = pytest.MonkeyPatch()
    mp.setenv("KOUIKI_HOME", str(home))
    mp.delenv("KOUIKI_CATALOG_URL", raising=False)
    try:
        paths = get_paths()
        registry = default_registry()
        uploads = []
        for name in SOURCE_ROWS:
            path = sample_path(name)
            if path is None:
                continue
            landed = land_file(paths, CITY[name.split("_")[0]], path)
            upload = catalog.get_upload(paths.catalog_url, landed.upload_id)
            assert upload is not None
            detect_upload(paths, registry, upload)
            uploads.append(catalog.get_upload(paths.catalog_url, landed.upload_id))
        outcomes = load_uploads(paths, registry, [u for u in uploads if u is not None])
        return {u.original_name: _what_reached_the_lake(paths.local_lake, u, o)
                for u, o in zip(uploads, outcomes, strict=True) if u is not None}
    finally:
        mp.undo()


def _what_reached_the_lake(lake_root: Path, upload: catalog.UploadRow, outcome: LoadOutcome) -> dict[str, Any]:
    def area(name: str) -> pl.DataFrame:
        frame = lake.read_partition(lake_root, name, str(outcome.dataset_id), upload.city_code)
        assert frame is not None, f"{upload.original_name}: no lake.{name} partition"
        column = "_upload_id" if "_upload_id" in frame.columns else "upload_id"
        return frame.filter(pl.col(column) == upload.upload_id)

    return {"outcome": outcome, "staged": area("staged"), "quarantine": area("quarantine"),
            "findings": area("findings")}


@pytest.mark.parametrize("name", list(SOURCE_ROWS))
def test_every_row_is_published_or_withheld_with_its_line(name: str, loaded: dict[str, dict[str, Any]]) -> None:
    if name not in loaded:
        pytest.skip(f"{name} is not in the repository and ../shared/samples is absent")
    got = loaded[name]
    outcome: LoadOutcome = got["outcome"]
    published, withheld = got["staged"].height, got["quarantine"].height
    assert outcome.decision in ("accept", "quarantine"), outcome.failures_by_code
    assert outcome.rows == SOURCE_ROWS[name]                        # intake read every data row
    assert SOURCE_ROWS[name] == published + withheld                # nothing lost on the way
    errors = got["findings"].filter((pl.col("severity") == "error") & pl.col("source_line").is_not_null())
    unexplained = set(got["quarantine"]["_source_line"]) - set(errors["source_line"])
    assert not unexplained, f"withheld without an error naming the line: {sorted(unexplained)}"
    # a published row carries no error, and every line is either side exactly once
    assert not set(got["staged"]["_source_line"]) & set(errors["source_line"])
    assert got["staged"]["_source_line"].n_unique() + got["quarantine"]["_source_line"].n_unique() == \
        SOURCE_ROWS[name]


def test_at_least_95_percent_of_the_data_rows_are_published(loaded: dict[str, dict[str, Any]]) -> None:
    rows = published = 0
    print(f"\n{'file':46} {'dataset':20} {'rows':>5} {'published':>9} {'withheld':>8} {'warned':>6}")
    for name, got in loaded.items():
        outcome: LoadOutcome = got["outcome"]
        rows += SOURCE_ROWS[name]
        published += got["staged"].height
        print(f"{name:46} {outcome.dataset_id!s:20} {SOURCE_ROWS[name]:5} {got['staged'].height:9} "
              f"{got['quarantine'].height:8} {outcome.rows_with_warnings:6}")
    print(f"{'total':67} {rows:5} {published:9} {rows - published:8}  ({published / rows:.1%} published)")
    assert len(loaded) == len(SOURCE_ROWS) or not SAMPLES.is_dir()
    assert published / rows >= MIN_PUBLISHED_SHARE


def test_extra_columns_reach_the_lake_as_written(loaded: dict[str, dict[str, Any]]) -> None:
    """Columns without a standard counterpart are kept (named by their header), raw text as the city wrote it."""
    yaizu = loaded["yaizu_222127_aed.csv"]["staged"]               # legacy layout: 都道府県名, 市区町村名
    assert {"都道府県名", "市区町村名"} <= set(yaizu.columns)
    assert set(yaizu["都道府県名"]) == {"静岡県"} and set(yaizu["市区町村名"]) == {"焼津市"}
    if "takamatsu_0012_kindergarten.csv" in loaded:                 # own layout: English names, an unnamed column
        takamatsu = loaded["takamatsu_0012_kindergarten.csv"]["staged"].sort("_source_line")
        assert {"列1", "referenceObject", "location"} <= set(takamatsu.columns)
        first = takamatsu.row(0, named=True)
        assert (first["列1"], first["location"]) == ("1", "34.296244,134.113886")
