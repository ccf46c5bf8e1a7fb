"""Small-cell suppression of publication tables: an attacker who solves every row and column by subtraction
(repeatedly, using what earlier steps recovered) must not recover any hidden cell. (The interval attack under
three attacker models is in test_anonymise_counts.py.)"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anonymise.aggregate import (
    PRIMARY,
    PUBLISHED,
    SECONDARY,
    policy_tables,
    publication_table,
    suppress_small_cells,
    with_margins,
)
from anonymise.policy import load_policy
from anonymise.synthetic import generate_care_records

POPULATION = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "122033" / "ichikawa_122033_104_population.csv"


def recover_by_subtraction(extended: np.ndarray, hidden: np.ndarray) -> dict[tuple[int, ...], int]:
    """Every hidden cell an attacker can compute from published cells and margins, line by line, to a fixed
    point. Returns {cell: value} for the recovered hidden cells."""
    known = ~hidden
    values = np.where(known, extended, 0)
    recovered: dict[tuple[int, ...], int] = {}
    progress = True
    while progress:
        progress = False
        for axis in range(extended.ndim):
            moved_known = np.moveaxis(known, axis, -1)
            for line in np.argwhere((~moved_known).sum(axis=-1) == 1):
                line_known = moved_known[tuple(line)]
                if line_known.all():
                    continue  # solved earlier in this pass
                position = int(np.flatnonzero(~line_known)[0])
                line_values = np.moveaxis(values, axis, -1)[tuple(line)]
                others = line_values[:-1].sum() - (line_values[position] if position < len(line_values) - 1 else 0)
                value = others if position == len(line_values) - 1 else line_values[-1] - others
                cell = tuple(np.insert(line, axis, position).tolist())
                values[cell], known[cell] = value, True
                recovered[cell] = int(value)
                progress = True
    return recovered


def assert_protected(extended: np.ndarray, status: np.ndarray) -> None:
    hidden = status != PUBLISHED
    assert recover_by_subtraction(extended, hidden) == {}
    for axis in range(extended.ndim):
        per_line = hidden.sum(axis=axis)
        assert not (per_line == 1).any(), f"a line along axis {axis} has a single hidden cell"


def population_cube(areas_kept: int = 30) -> tuple[list[str], list[str], np.ndarray]:
    """市川市 地域・年齢別人口 (real open data): 町丁 × 5-year age band × sex, the `areas_kept` least populated 町丁
    (the small cells are there; the whole city has hundreds of 町丁, a size for bench/, not for a test)."""
    if not POPULATION.exists():
        pytest.skip("shared samples are not available")
    rows = list(csv.reader(io.StringIO(POPULATION.read_bytes().decode("cp932"))))
    header = rows[0]
    columns = [index for index, name in enumerate(header) if name.endswith(("歳の男性", "歳以上の男性"))]
    bands = [header[index].removesuffix("の男性") for index in columns]
    def population(row: list[str]) -> int:
        return sum(int(row[i] or 0) + int(row[i + 1] or 0) for i in columns)

    kept = sorted(rows[1:], key=population)[:areas_kept]
    areas = [row[4] for row in kept]
    cube = np.array([[[int(row[i] or 0), int(row[i + 1] or 0)] for i in columns] for row in kept], dtype=np.int64)
    return areas, bands, cube


def test_the_attack_recovers_cells_when_only_primary_suppression_is_done() -> None:
    """The attacker is real: with primary suppression alone it finds the true hidden values."""
    _, _, cube = population_cube()
    table = cube.sum(axis=2)
    extended = with_margins(table)
    primary = (extended > 0) & (extended < 3)
    assert primary.any()
    recovered = recover_by_subtraction(extended, primary)
    assert recovered
    assert all(extended[cell] == value for cell, value in recovered.items())


def test_two_way_real_population_table_cannot_be_recovered() -> None:
    _, _, cube = population_cube()
    extended, status, _ = suppress_small_cells(cube.sum(axis=2), min_count=3)
    assert (status == PRIMARY).sum() > 0 and (status == SECONDARY).sum() > 0
    assert ((extended > 0) & (extended < 3) == (status == PRIMARY)).all()
    assert_protected(extended, status)


def test_three_way_real_population_table_cannot_be_recovered() -> None:
    _, _, cube = population_cube(areas_kept=12)
    extended, status, figures = suppress_small_cells(cube, min_count=3)
    assert (status == PRIMARY).sum() > 0 and (status == SECONDARY).sum() > 0, figures
    assert_protected(extended, status)
    # every margin is the sum of its line, so the published totals are the real ones
    assert extended[-1, -1, -1] == cube.sum()


def test_a_lone_small_cell_gets_partners_in_its_row_and_column() -> None:
    counts = np.array([[1, 9, 4, 20], [7, 8, 30, 10], [6, 12, 15, 40]])
    extended, status, figures = suppress_small_cells(counts, min_count=3)
    assert status[0, 0] == PRIMARY and figures["primary"] == 1
    assert (status[0, :] == SECONDARY).any() and (status[:, 0] == SECONDARY).any()
    assert figures["unmet_requirements"] == 0
    assert_protected(extended, status)


def test_zero_cells_are_always_published() -> None:
    """Zeros are shown as 0 (attacker b knows every hidden cell is >= 1), so no zero is ever hidden."""
    counts = np.array([[0, 5, 6], [4, 0, 9], [1, 7, 0]])
    extended, status, _ = suppress_small_cells(counts, min_count=3)
    assert status[2, 0] == PRIMARY
    assert (status[extended == 0] == PUBLISHED).all()


def test_policy_table_from_synthetic_records() -> None:
    records = generate_care_records("132195", 4_000, seed=9)
    policy = load_policy("care_certification")
    tables = policy_tables(records, policy)
    table = tables["町字別_年齢5歳階級別_男女別_認定者数"]
    assert table.dims == ("町字", "年齢", "性別")
    assert table.counts[-1, -1, -1] == records.height
    assert "65～69" in table.labels[1]
    assert table.suppressed_cells > 0
    assert_protected(table.counts, table.status)
    frame = table.to_frame()
    assert frame.height == np.prod(table.counts.shape)
    hidden = frame.filter(pl.col("秘匿") != "")
    assert hidden["件数"].null_count() == hidden.height
    grand = frame.filter((pl.col("町字") == "計") & (pl.col("年齢") == "計") & (pl.col("性別") == "計"))
    assert grand["件数"].item() == records.height


def test_publication_table_counts_match_a_plain_group_by() -> None:
    records = generate_care_records("222127", 3_000, seed=3)
    table = publication_table(records, ["要介護度", "性別"], min_count=3)
    expected = records.group_by(["要介護度", "性別"]).len()
    for care, sex, count in expected.iter_rows():
        index = (table.labels[0].index(care), table.labels[1].index(sex))
        assert table.counts[index] == count
