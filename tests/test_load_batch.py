"""Loading several uploads in one batch gives each upload exactly what loading it alone gives."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from expectations.registry import default_registry
from intake.inbox import detect_upload
from intake.landing import land_file
from kouiki import catalog, lake
from kouiki.settings import get_paths
from warehouse.load import LoadOutcome, load_uploads

DEMO = Path(__file__).resolve().parent.parent / "demo" / "uploads"


def _land(tmp: Path, city: str, name: str, text: str) -> catalog.UploadRow:
    paths = get_paths()
    source = tmp / name
    source.write_text(text, encoding="utf-8")
    landed = land_file(paths, city, source)
    upload = catalog.get_upload(paths.catalog_url, landed.upload_id)
    assert upload is not None
    detect_upload(paths, default_registry(), upload)
    fresh = catalog.get_upload(paths.catalog_url, landed.upload_id)
    assert fresh is not None and fresh.dataset_id == "aed"
    return fresh


def _summary(o: LoadOutcome) -> tuple[str, int, int, dict[str, int]]:
    return (o.decision, o.rows_accepted, o.rows_quarantined, o.failures_by_code)


def test_batch_equals_one_by_one(kouiki_home: Path, tmp_path: Path) -> None:
    komae = (DEMO / "132195" / "komae_132195_aed.csv").read_text(encoding="utf-8")
    yaizu = (DEMO / "222127" / "yaizu_222127_aed.csv").read_text(encoding="utf-8")
    lines = yaizu.splitlines(keepends=True)
    # a second upload whose record NO "0000000001" repeats inside the file (a real unique-error) — the same
    # NO in another city's upload is not a duplicate
    duplicated = "".join([*lines, lines[1]])
    ups = [_land(tmp_path, "132195", "komae_132195_aed.csv", komae),
           _land(tmp_path, "222127", "222127_aed.csv", duplicated)]
    paths = get_paths()
    batch = load_uploads(paths, default_registry(), ups)
    komae_alone = lake.read_partition(paths.lake, "staged", "aed", "132195")
    assert komae_alone is not None
    # 電話番号 なし is a warning: the row is published, its phone cell empty
    assert _summary(batch[0]) == ("accept", 57, 0, {"format-error": 1})
    yz = batch[1]
    assert yz.failures_by_code == {"unique-error": 2}
    assert yz.rows == 83 and yz.rows_quarantined == 2
    q = lake.read_partition(paths.lake, "quarantine", "aed", "222127")
    assert q is not None
    assert sorted(q["_source_line"].to_list()) == [2, 84]          # the first data line and its copy
    nashi = komae_alone.filter(pl.col("_source_line") == 57)
    assert nashi.height == 1 and nashi["電話番号"].to_list() == [None]
    # the same uploads loaded one at a time decide identically
    for up in ups:
        catalog.set_upload_status(paths.catalog_url, up.upload_id, "landed")
    single = [load_uploads(paths, default_registry(), [u])[0] for u in ups]
    assert [_summary(o) for o in single] == [_summary(o) for o in batch]
