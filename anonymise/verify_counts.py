"""Verification of a published count table with small-cell suppression, read back from its file.

Independent of anonymise.aggregate (which builds and suppresses the table): this reads only the published
cells and the 秘匿 labels, as an outsider would, and checks that

- no hidden cell shows a number, and no shown cell is a small count (1 … min_cell − 1);
- every line (one dimension varying, the others fixed, totals "計" included) has 0 or at least 2 hidden cells,
  and a line with nothing hidden adds up to its total (otherwise the margins are not the real ones);
- no hidden cell is determined by the published cells and margins: its unit vector is not in the row space of
  the line equations (linear algebra over all lines at once, which also catches chains of subtractions across
  dimensions), and no line whose hidden cells must add up to 0 hides anything (non-negativity would pin them).

Tables of different cities (the `layer` column) are independent and checked one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from anonymise.reasons import Reason

TOTAL_LABEL = "計"
# Singular values below this count as zero when the null space of the line equations is taken.
RANK_TOLERANCE = 1e-9


@dataclass
class CountVerification:
    passed: bool
    reasons: list[Reason]
    cells: int
    hidden_cells: int
    lines_checked: int
    recoverable_cells: int
    examples: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": [reason.as_dict() for reason in self.reasons],
            "cells": self.cells,
            "hidden_cells": self.hidden_cells,
            "lines_checked": self.lines_checked,
            "recoverable_cells": self.recoverable_cells,
            "examples": self.examples,
        }


def verify_count_table(
    table: Path | pl.DataFrame,
    dims: Sequence[str],
    min_cell: int,
    count_column: str = "件数",
    status_column: str = "秘匿",
    layer: str | None = None,
) -> CountVerification:
    """Verify a long-form count table (one row per cell, totals labelled "計"), e.g. a published CSV."""
    frame = _load(table)
    missing = [c for c in [*dims, count_column, status_column, *([layer] if layer else [])] if c not in frame.columns]
    if missing:
        reason = Reason(
            "missing_column",
            f"集計表に必要な列がありません: {', '.join(missing)}",
            f"The count table lacks columns: {', '.join(missing)}",
        )
        return CountVerification(False, [reason], frame.height, 0, 0, 0)
    frame = frame.with_columns(
        (pl.col(status_column).fill_null("") != "").alias("_hidden"),
        pl.col(count_column).cast(pl.Int64, strict=False).alias("_count"),
        (pl.lit("") if layer is None else pl.col(layer).cast(pl.String)).alias("_layer"),
    )
    reasons = _cell_reasons(frame, min_cell)
    lines, line_reasons = _line_checks(frame, list(dims))
    reasons += line_reasons
    recoverable = _recoverable_cells(frame, list(dims))
    if recoverable:
        reasons.append(
            Reason(
                "hidden_cell_recoverable",
                f"秘匿したセルのうち {len(recoverable)} 個が公表値と合計から計算で求められます。",
                f"{len(recoverable)} hidden cells can be computed from the published cells and totals.",
            )
        )
    return CountVerification(
        passed=not reasons,
        reasons=reasons,
        cells=frame.height,
        hidden_cells=int(frame["_hidden"].sum()),
        lines_checked=lines,
        recoverable_cells=len(recoverable),
        examples=recoverable[:5],
    )


def _load(table: Path | pl.DataFrame) -> pl.DataFrame:
    if isinstance(table, pl.DataFrame):
        return table.with_columns(pl.all().cast(pl.String))
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        # The published bytes as text: an empty cell is a hidden count, nothing is inferred.
        # The path as a literal, not a bound parameter: binding a Python list makes duckdb import pandas (0.7 s).
        literal = "'" + str(table).replace("'", "''") + "'"
        relation = con.execute(f"SELECT * FROM read_csv({literal}, all_varchar = true, header = true)")
        columns = [column[0] for column in relation.description or []]
        rows = relation.fetchall()
    finally:
        con.close()
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row")


def _cell_reasons(frame: pl.DataFrame, min_cell: int) -> list[Reason]:
    reasons = []
    shown_hidden = frame.filter(pl.col("_hidden") & pl.col("_count").is_not_null()).height
    if shown_hidden:
        reasons.append(
            Reason(
                "hidden_value_published",
                f"秘匿としたセル {shown_hidden} 個に数値が載っています。",
                f"{shown_hidden} cells marked as hidden still show a number.",
            )
        )
    small = frame.filter(~pl.col("_hidden") & pl.col("_count").is_between(1, min_cell - 1)).height
    if small:
        reasons.append(
            Reason(
                "small_cell_published",
                f"{min_cell} 未満の小さな度数が {small} 個公表されています（一次秘匿漏れ）。",
                f"{small} published cells are below {min_cell} (missing primary suppression).",
            )
        )
    unreadable = frame.filter(~pl.col("_hidden") & pl.col("_count").is_null()).height
    if unreadable:
        reasons.append(
            Reason(
                "count_missing",
                f"秘匿でないのに度数が空のセルが {unreadable} 個あります。",
                f"{unreadable} cells are neither hidden nor show a count.",
            )
        )
    return reasons


def _line_checks(frame: pl.DataFrame, dims: list[str]) -> tuple[int, list[Reason]]:
    """Lines along each dimension: hidden cells per line, and the sums of lines with nothing hidden."""
    lines, single, unbalanced = 0, 0, 0
    for dim in dims:
        fixed = ["_layer", *[other for other in dims if other != dim]]
        per_line = frame.group_by(fixed).agg(
            pl.col("_hidden").sum().alias("hidden"),
            pl.col("_count").filter(pl.col(dim) != TOTAL_LABEL).sum().alias("interior"),
            pl.col("_count").filter(pl.col(dim) == TOTAL_LABEL).first().alias("total"),
        )
        lines += per_line.height
        single += per_line.filter(pl.col("hidden") == 1).height
        unbalanced += per_line.filter((pl.col("hidden") == 0) & (pl.col("interior") != pl.col("total"))).height
    reasons = []
    if single:
        reasons.append(
            Reason(
                "single_hidden_in_line",
                f"秘匿セルが1個だけの行・列が {single} 本あります（合計から引き算で分かります）。",
                f"{single} lines have exactly one hidden cell (recoverable by subtraction from the total).",
            )
        )
    if unbalanced:
        reasons.append(
            Reason(
                "totals_do_not_add_up",
                f"合計と内訳が一致しない行・列が {unbalanced} 本あります。",
                f"{unbalanced} fully published lines do not add up to their totals.",
            )
        )
    return lines, reasons


def _recoverable_cells(frame: pl.DataFrame, dims: list[str]) -> list[dict[str, str]]:
    recovered: list[dict[str, str]] = []
    for _, layer in frame.group_by("_layer", maintain_order=True):
        recovered += _recoverable_in_layer(layer, dims)
    return recovered


def _recoverable_in_layer(layer: pl.DataFrame, dims: list[str]) -> list[dict[str, str]]:
    """Hidden cells whose value follows from the line equations (or from a line forced to 0)."""
    cells = layer.with_row_index("_row")
    hidden = cells.filter(pl.col("_hidden")).with_row_index("_unknown")
    if hidden.height == 0:
        return []
    blocks, pinned = [], set()
    offset = 0
    for dim in dims:
        fixed = [other for other in dims if other != dim]
        line_id = pl.struct(fixed).rank("dense") - 1 if fixed else pl.lit(0, dtype=pl.UInt32)
        lined = cells.with_columns(line_id.cast(pl.Int64).alias("_line"), (pl.col(dim) == TOTAL_LABEL).alias("_total"))
        terms = lined.filter(pl.col("_hidden")).join(hidden.select("_row", "_unknown"), on="_row")
        terms = terms.with_columns(pl.when(pl.col("_total")).then(-1.0).otherwise(1.0).alias("_sign"))
        blocks.append((terms["_line"].to_numpy() + offset, terms["_unknown"].to_numpy(), terms["_sign"].to_numpy()))
        offset += lined["_line"].n_unique()
        pinned |= _zero_lines(lined, hidden)
    rows = np.concatenate([block[0] for block in blocks])
    matrix = np.zeros((offset, hidden.height))
    np.add.at(matrix, (rows, np.concatenate([b[1] for b in blocks])), np.concatenate([b[2] for b in blocks]))
    matrix = matrix[np.abs(matrix).sum(axis=1) > 0]
    determined = _determined_columns(matrix) | pinned
    labels = hidden.select(dims).rows()
    return [dict(zip(dims, labels[unknown], strict=True)) for unknown in sorted(determined)]


def _zero_lines(lined: pl.DataFrame, hidden: pl.DataFrame) -> set[int]:
    """Hidden interior cells of lines whose published total equals their published interior: all are 0."""
    per_line = lined.group_by("_line").agg(
        pl.col("_count").filter(~pl.col("_total") & ~pl.col("_hidden")).sum().alias("known"),
        pl.col("_count").filter(pl.col("_total") & ~pl.col("_hidden")).first().alias("total"),
        (pl.col("_hidden") & ~pl.col("_total")).sum().alias("hidden_interior"),
    )
    zero = per_line.filter((pl.col("hidden_interior") > 0) & (pl.col("total") == pl.col("known")))["_line"]
    rows = lined.filter(pl.col("_line").is_in(zero.implode()) & pl.col("_hidden") & ~pl.col("_total"))["_row"]
    return set(hidden.filter(pl.col("_row").is_in(rows.implode()))["_unknown"].to_list())


def _determined_columns(matrix: np.ndarray) -> set[int]:
    """Unknowns fixed by the equations (rows of `matrix`): those with a zero entry in every null-space vector."""
    unknowns = matrix.shape[1]
    if matrix.shape[0] == 0:
        return set()
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    rank = int((singular > RANK_TOLERANCE * max(1.0, float(singular.max(initial=0.0)))).sum())
    null_space = vt[rank:]
    if null_space.shape[0] == 0:
        return set(range(unknowns))
    return {int(c) for c in np.flatnonzero(np.abs(null_space).max(axis=0) < 1e-8)}
