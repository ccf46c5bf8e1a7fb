"""Count tables for publication with small-cell suppression (秘匿処理).

Primary suppression hides the cells below the policy's threshold (1 … min_cell − 1), margins included; zeros
are published, except inside a line whose total is small, where every cell is hidden (zeros too, so that the
labels alone never pin a cell: see anonymise.protection). Secondary
suppression (anonymise.protection) then hides the cheapest further cells so that, under every attacker model, each
primary cell's feasible interval reaches its protection levels and no hidden cell is pinned. Every hidden cell is
published with the same mark 秘匿: primary and secondary are never told apart.

The tables are counted on the records the extract releases (after its local suppression), never on the whole
source: the count table minus the extract's own counts is then zero, and says nothing about the suppressed
records (anonymise.release_check checks that the totals agree).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from anonymise.hierarchy import Hierarchy
from anonymise.policy import Policy
from anonymise.process import PolicyOutcome, prepare_records
from anonymise.protection import (
    HIDDEN_ZERO,
    PRIMARY,
    PUBLISHED,
    SECONDARY,
    ProtectionResult,
    ProtectionSpec,
    primary_status,
    protect,
    protection_spec,
)

TOTAL = "計"
HIDDEN_MARK = "秘匿"
STATUS_LABELS = {PUBLISHED: "", PRIMARY: HIDDEN_MARK, SECONDARY: HIDDEN_MARK, HIDDEN_ZERO: HIDDEN_MARK}
__all__ = [
    "HIDDEN_ZERO",
    "PRIMARY",
    "PUBLISHED",
    "SECONDARY",
    "SuppressedTable",
    "publication_table",
    "suppress_small_cells",
]


@dataclass
class SuppressedTable:
    """Counts with margins (the last index of every axis is the total) and each cell's suppression status."""

    dims: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]  # categories per dimension, totals not included
    counts: np.ndarray
    status: np.ndarray
    protection: dict = field(default_factory=dict)  # figures of the secondary suppression (anonymise.protection)

    def to_frame(self, count_column: str = "件数") -> pl.DataFrame:
        """Long form: one row per cell incl. totals ("計"); hidden counts are null and marked 秘匿 (one mark)."""
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

    def truth_frame(self, count_column: str = "件数") -> pl.DataFrame:
        """The same cells with every true count (private: staged for the audit, never published)."""
        frame = self.to_frame(count_column)
        return frame.with_columns(pl.Series(count_column, self.counts.ravel(), dtype=pl.Int64)).drop("秘匿")

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
    counts: np.ndarray, min_count: int = 3, spec: ProtectionSpec | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Primary and secondary suppression of an N-D count array: (counts with margins, status, figures)."""
    extended, status, result = _suppress(counts, min_count, spec)
    return extended, status, result.figures()


def _suppress(
    counts: np.ndarray, min_count: int, spec: ProtectionSpec | None
) -> tuple[np.ndarray, np.ndarray, ProtectionResult]:
    extended = with_margins(counts)
    status = primary_status(extended, min_count)
    result = protect(extended, status, spec or ProtectionSpec(min_count, upper=min_count))
    return extended, status, result


def publication_table(
    records: pl.DataFrame,
    dims: Sequence[str],
    min_count: int = 3,
    categories: Mapping[str, Sequence[str]] | None = None,
    spec: ProtectionSpec | None = None,
) -> SuppressedTable:
    """Counts of `records` by `dims`, with margins, primary and secondary suppression.

    When no suppression can protect some cell (its requirement has no witness: the labels, the published zeros
    and the small totals leave it no room, typical of a very sparse table), the category of that cell with the
    fewest records is merged with its smaller neighbour (global recoding, τ-Argus's first remedy) and the table
    is suppressed again, until every requirement is met or no dimension has three categories left (then the
    audit blocks the table). The merges are listed in the table's figures (`merged_categories`)."""
    labels, counts = count_array(records, dims, categories)
    extended, status, result = _suppress(counts, min_count, spec)
    merged: list[dict[str, Any]] = []
    while result.unmet:
        merge = _merge_for(labels, extended, result.unmet[0].cell)
        if merge is None:
            break
        axis, first = merge
        merged.append({"dimension": dims[axis], "categories": list(labels[axis][first : first + 2])})
        labels, counts = _merge_categories(labels, counts, axis, first)
        extended, status, result = _suppress(counts, min_count, spec)
    figures = result.figures()
    if merged:
        figures["merged_categories"] = merged
    return SuppressedTable(tuple(dims), labels, extended, status, figures)


def _merge_for(labels: tuple[tuple[str, ...], ...], extended: np.ndarray, cell: int) -> tuple[int, int] | None:
    """(axis, first of the two adjacent categories to merge) for an unprotectable cell: along the dimension where
    the cell's category has the fewest records (dimensions of three categories or more), with the neighbour that
    has fewer records. None when no dimension can be merged."""
    index = np.unravel_index(cell, extended.shape)
    choices: list[tuple[int, int, int]] = []
    for axis, at in enumerate(index):
        position = int(at)
        size = len(labels[axis])
        if position >= size or size < 3:  # a total, or merging would remove the dimension
            continue
        margin = extended.sum(axis=tuple(other for other in range(extended.ndim) if other != axis))[:size]
        neighbours = [other for other in (position - 1, position + 1) if 0 <= other < size]
        partner = min(neighbours, key=lambda other: int(margin[other]))
        choices.append((int(margin[position]), axis, min(position, partner)))
    if not choices:
        return None
    _, axis, first = min(choices)
    return axis, first


def _merge_categories(
    labels: tuple[tuple[str, ...], ...], counts: np.ndarray, axis: int, first: int
) -> tuple[tuple[tuple[str, ...], ...], np.ndarray]:
    """Categories `first` and `first + 1` of `axis` become one, labelled "A・B" (counts added)."""
    pair = np.take(counts, [first, first + 1], axis=axis).sum(axis=axis, keepdims=True)
    merged_counts = np.concatenate(
        [
            np.take(counts, range(first), axis=axis),
            pair,
            np.take(counts, range(first + 2, counts.shape[axis]), axis=axis),
        ],
        axis=axis,
    )
    axis_labels = labels[axis]
    merged_labels = (*axis_labels[:first], f"{axis_labels[first]}・{axis_labels[first + 1]}", *axis_labels[first + 2 :])
    return (*labels[:axis], merged_labels, *labels[axis + 1 :]), merged_counts


def policy_tables(records: pl.DataFrame, policy: Policy) -> dict[str, SuppressedTable]:
    """The aggregate tables a policy lists, counted on all of `records` (prepared as for the extract).

    For publication beside an extract use `released_tables`: counted on the released records only."""
    prepared = prepare_records(records, policy)
    return _tables(prepared.table, prepared.hierarchies, policy)


def released_tables(outcome: PolicyOutcome) -> dict[str, SuppressedTable]:
    """The policy's aggregate tables counted on the records its extract releases (none of the suppressed ones)."""
    return _tables(released_records(outcome), outcome.prepared.hierarchies, outcome.policy)


def released_records(outcome: PolicyOutcome) -> pl.DataFrame:
    """The prepared (ungeneralised) records whose equivalence class the extract releases.

    Local suppression removes whole classes, so a record is released exactly when its generalised
    quasi-identifiers appear in the release."""
    release = outcome.release
    if release is None:
        raise ValueError("the extract was not released: no count table is made beside it")
    prepared = outcome.prepared
    levels = outcome.outcome.levels
    keys = [f"_class_{qi}" for qi in levels]
    generalised = prepared.table.with_columns(
        prepared.hierarchies[qi].generalise(prepared.table[qi], level).alias(key)
        for (qi, level), key in zip(levels.items(), keys, strict=True)
    )
    classes = release.select(pl.col(qi).alias(key) for qi, key in zip(levels, keys, strict=True)).unique()
    kept = generalised.join(classes, on=keys, how="semi", nulls_equal=True).drop(keys)
    if kept.height != release.height:
        raise ValueError(
            f"集計表の対象を匿名加工データと揃えられません / cannot align the count table with the extract: "
            f"{kept.height} records match {release.height} released"
        )
    return kept


def _tables(table: pl.DataFrame, hierarchies: Mapping[str, Hierarchy], policy: Policy) -> dict[str, SuppressedTable]:
    spec = protection_spec(policy)
    tables = {}
    for aggregate in policy.aggregate_tables:
        columns, categories = [], {}
        for dim, level in aggregate.dims.items():
            hierarchy = hierarchies[dim]
            columns.append(hierarchy.generalise(table[dim], level))
            categories[dim] = hierarchy.level_labels(level)
        frame = pl.DataFrame(columns)
        tables[aggregate.name] = publication_table(frame, list(aggregate.dims), policy.min_cell, categories, spec)
    return tables
