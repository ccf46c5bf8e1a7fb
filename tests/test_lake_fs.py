"""The lake layout through fsspec: the same functions work on a local folder and on another filesystem."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from kouiki import lake

ROWS = pl.DataFrame({"名称": ["狛江市役所", "中央公民館"], "_city_code": ["132195", "132195"]})


@pytest.mark.parametrize("root_kind", ["local", "memory"])
def test_write_replace_read(tmp_path: Path, root_kind: str) -> None:
    root: Path | str = tmp_path / "lake" if root_kind == "local" else f"memory://kouiki-test-{tmp_path.name}/lake"
    assert not lake.has_data(root, "staged", "aed")
    lake.write_partition(ROWS, root, "staged", "aed", "132195")
    assert lake.partition_exists(root, "staged", "aed", "132195")
    assert lake.has_data(root, "staged", "aed")
    lake.write_partition(ROWS.head(1), root, "staged", "aed", "132195")      # replaces, never appends
    back = lake.read_partition(root, "staged", "aed", "132195")
    assert back is not None and back.to_dicts() == ROWS.head(1).to_dicts()
    assert lake.read_partition(root, "staged", "aed", "222127") is None
    with pytest.raises(ValueError, match="unknown lake area"):
        lake.partition_dir(root, "landing", "aed", "132195")


def test_local_layout_is_hive_partitioned_for_duckdb(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    lake.write_partition(ROWS, root, "staged", "aed", "132195")
    lake.write_partition(ROWS.head(1).with_columns(pl.lit("222127").alias("_city_code")), root, "staged", "aed",
                         "222127")
    assert sorted(p.name for p in (root / "staged" / "aed").iterdir()) == ["city=132195", "city=222127"]
    assert not list((root / "staged" / "aed").rglob(".tmp-*"))
    counts = duckdb.sql(
        f"SELECT city, count(*) FROM read_parquet('{lake.dataset_glob(root, 'staged', 'aed')}', "
        # city codes are text (011002 keeps its zero): never let the reader cast partition values
        "hive_partitioning=true, hive_types_autocast=false) GROUP BY 1 ORDER BY 1").fetchall()
    assert counts == [("132195", 2), ("222127", 1)]
