"""Count tables for publication with small-cell suppression (秘匿処理).

Primary suppression hides cells below the policy's threshold (1 … min_cell − 1; zeros are published
unless asked otherwise). Secondary suppression then makes sure no hidden cell can be recovered by
subtraction from the published totals: in every line of the table *with its margins* (each row, each
column, and the rows/columns of the margin tables themselves) the number of hidden cells is 0 or at
least 2. A line with exactly one hidden cell gets one more, the smallest non-zero interior cell
first, and this repeats until nothing changes. The same rule over every axis of an N-way table with
all its margins is the 2-D rule applied to each 2-D slice with its margins.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from anonymise.policy import Policy
from anonymise.process import prepare_records

TOTAL = "計"
PUBLISHED, PRIMARY, SECONDARY = 0, 1, 2
STATUS_LABELS = {PUBLISHED: "", PRIMARY: "一次秘匿", SECONDARY: "二次秘匿"}


@dataclass
class SuppressedTable:
    """Counts with margins (the last index of every axis is the total) and each cell's suppression status."""

    dims: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]  # categories per dimension, totals not included
    counts: np.ndarray
    status: np.ndarray

    def to_frame(self, count_column: str = "件数") -> pl.DataFrame:
        """Long form: one row per cell incl. totals ("計"); hidden counts are null; 秘匿 names the reason."""
        rows: dict[str, list] = {dim: [] for dim in self.dims}
        rows[count_column], rows["秘匿"] = [], []
        for index in itertools.product(*(range(size) for size in self.counts.shape)):
            for axis, position in enumerate(index):
                labels = self.labels[axis]
                rows[self.dims[axis]].append(labels[position] if position < len(labels) else TOTAL)
            status = int(self.status[index])
            rows[count_column].append(None if status else int(self.counts[index]))
            rows["秘匿"].append(STATUS_LABELS[status])
        return pl.DataFrame(rows, schema_overrides={count_column: pl.Int64})

    @property
    def suppressed_cells(self) -> int:
        return int((self.status != PUBLISHED).sum())


def count_array(
    records: pl.DataFrame, dims: Sequence[str], categories: Mapping[str, Sequence[str]] | None = None
) -> tuple[tuple[tuple[str, ...], ...], np.ndarray]:
    """Counts by `dims` as an N-D array (no margins), with every category of `categories` present."""
    chosen = dict(categories or {})
    labels = tuple(
        tuple(chosen[dim]) if dim in chosen else tuple(sorted(records[dim].cast(pl.String).unique().to_list()))
        for dim in dims
    )
    counts = np.zeros([len(axis_labels) for axis_labels in labels], dtype=np.int64)
    grouped = records.select([pl.col(dim).cast(pl.String) for dim in dims]).group_by(list(dims)).len()
    positions = [{label: index for index, label in enumerate(axis_labels)} for axis_labels in labels]
    for row in grouped.iter_rows():
        counts[tuple(positions[axis][row[axis]] for axis in range(len(dims)))] += row[-1]
    return labels, counts


def with_margins(counts: np.ndarray) -> np.ndarray:
    """The array extended by a total at the end of every axis (totals of totals included)."""
    extended = counts
    for axis in range(counts.ndim):
        extended = np.concatenate([extended, extended.sum(axis=axis, keepdims=True)], axis=axis)
    return extended


def suppress_small_cells(
    counts: np.ndarray, min_count: int = 3, suppress_zero: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Primary and secondary suppression of an N-D count array; returns (counts with margins, status)."""
    extended = with_margins(counts)
    low = 0 if suppress_zero else 1
    status = np.where((extended >= low) & (extended < min_count), PRIMARY, PUBLISHED).astype(np.int8)
    _secondary(extended, status)
    return extended, status


def _secondary(extended: np.ndarray, status: np.ndarray) -> None:
    changed = True
    while changed:
        changed = False
        for axis in range(extended.ndim):
            hidden_per_line = (status != PUBLISHED).sum(axis=axis)
            for line in np.argwhere(hidden_per_line == 1):
                selector = _line(axis, tuple(int(i) for i in line))
                if (status[selector] != PUBLISHED).sum() != 1:
                    continue  # an earlier choice in this pass already fixed it
                position = _cheapest_partner(extended, status, axis, selector)
                cell = (*selector[:axis], position, *selector[axis + 1 :])
                status[cell] = SECONDARY
                changed = True


def _line(axis: int, others: tuple[int, ...]) -> tuple:
    return (*others[:axis], slice(None), *others[axis:])


def _cheapest_partner(extended: np.ndarray, status: np.ndarray, axis: int, selector: tuple) -> int:
    """The cell of the line to hide as well: non-zero before zero, interior before the total, smallest count,
    then the one that also completes a pair on another axis."""
    values = extended[selector]
    hidden = status[selector] != PUBLISHED
    total_index = len(values) - 1
    best: tuple | None = None
    chosen = -1
    for position in range(len(values)):
        if hidden[position]:
            continue
        cell = (*selector[:axis], position, *selector[axis + 1 :])
        key = (
            values[position] == 0,
            position == total_index,
            int(values[position]),
            -_pairs_completed(status, cell, axis),
        )
        if best is None or key < best:
            best, chosen = key, position
    return chosen


def _pairs_completed(status: np.ndarray, cell: tuple, skip_axis: int) -> int:
    """How many other lines through `cell` currently have exactly one hidden cell."""
    completed = 0
    for axis in range(status.ndim):
        if axis == skip_axis:
            continue
        others = cell[:axis] + cell[axis + 1 :]
        if (status[_line(axis, others)] != PUBLISHED).sum() == 1:
            completed += 1
    return completed


def publication_table(
    records: pl.DataFrame,
    dims: Sequence[str],
    min_count: int = 3,
    categories: Mapping[str, Sequence[str]] | None = None,
    suppress_zero: bool = False,
) -> SuppressedTable:
    """Counts of `records` by `dims`, with margins, primary and secondary suppression."""
    labels, counts = count_array(records, dims, categories)
    extended, status = suppress_small_cells(counts, min_count, suppress_zero)
    return SuppressedTable(tuple(dims), labels, extended, status)


def policy_tables(records: pl.DataFrame, policy: Policy) -> dict[str, SuppressedTable]:
    """The aggregate tables a policy lists, each dimension generalised to its level, counted on the source."""
    prepared = prepare_records(records, policy)
    tables = {}
    for spec in policy.aggregate_tables:
        columns, categories = [], {}
        for dim, level in spec.dims.items():
            hierarchy = prepared.hierarchies[dim]
            columns.append(hierarchy.generalise(prepared.table[dim], level))
            categories[dim] = hierarchy.level_labels(level)
        tables[spec.name] = publication_table(pl.DataFrame(columns), list(spec.dims), policy.min_cell, categories)
    return tables
