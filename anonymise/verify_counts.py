"""Independent audit of a published count table with small-cell suppression: the interval attack, run here.

Independent of anonymise.aggregate and anonymise.protection (which build and suppress the table): this reads the
published cells as an outsider would (a number, or the mark 秘匿), rebuilds the table's additive equations from
the labels alone (every line, totals "計" included, sums to its total), and for every hidden cell computes the
smallest and largest value it can take in a whole-number table that satisfies them, under three attackers:

    a  hidden cells are >= 0
    b  hidden cells are >= 1 (zeros are published as 0)
    c  the attacker somehow knows which hidden cells are primary (1 … min_cell-1) and which secondary (>= min_cell)

The labels for attacker c come from the private table of true counts staged beside the published one (never
published); the audit checks that it agrees with every published cell and every total. The release is blocked
when any hidden cell is pinned to one value, or any primary cell's interval does not reach its protection levels
(a: down to `lower`, up to `upper`; b: up to `upper`; c: all of [1, min_cell-1]), or anything but one mark is
published. Zeros are published as 0 except inside a line whose total is small (1 … min_cell-1), where every
cell is hidden: a hidden cell inside such a line may be 0 for attackers b and c (with the private counts the audit
knows exactly which lines are small, more than an outsider; without them it assumes any line with a hidden total
may be). A hidden zero elsewhere, or a 0 published inside a small line, breaks that rule and blocks. A cell that
the labels alone pin (what the rule prevents) blocks like any other pinned cell; how many of the pinned cells
the labels alone would pin is reported (`pinned_by_labels_alone`).

Over time, a new table is audited with every earlier release of the same table: the change of a cell between
two releases lies in [new_min - old_max, new_max - old_min]; when that interval excludes 0 and lies within
±(min_cell-1), the releases together prove that between 1 and min_cell-1 people entered or left that cell, and
the new release is held.

Tables of different cities (the `layer` column) are independent and audited one by one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
from scipy import sparse

from anonymise.lp import INTEGRAL, WarmLP
from anonymise.reasons import Reason
from kouiki.sql import literal

TOTAL_LABEL = "計"
HIDDEN_MARK = "秘匿"
MODELS = ("a", "b", "c")
# Objective tilt that picks another vertex of an LP's optimal face (far below one count over the whole table).
TILT = 1e-7
MODEL_NAMES = {
    "a": "非負のみ / non-negativity",
    "b": "秘匿セル≥1 / hidden cells >= 1",
    "c": "一次・二次の別を知る / knows primary vs secondary",
}


@dataclass(frozen=True)
class AuditSettings:
    min_cell: int
    upper: int  # a primary cell's interval must reach at least this (default min_cell)
    lower: int = 0  # … and, for attacker a, down to this


@dataclass
class CountVerification:
    passed: bool
    reasons: list[Reason]
    cells: int
    hidden_cells: int
    figures: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": [reason.as_dict() for reason in self.reasons],
            "cells": self.cells,
            "hidden_cells": self.hidden_cells,
            **self.figures,
            "examples": self.examples,
        }


@dataclass
class Intervals:
    """Per hidden cell of one layer: its row in the layer, and [low, high] under each model (inf if unbounded)."""

    rows: np.ndarray
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    attacks: dict[str, _Attack] = field(default_factory=dict)


def verify_count_table(
    table: Path | pl.DataFrame,
    dims: Sequence[str],
    settings: AuditSettings,
    truth: Path | pl.DataFrame | None = None,
    earlier: Sequence[tuple[str, Path | pl.DataFrame]] = (),
    count_column: str = "件数",
    status_column: str = "秘匿",
    layer: str | None = None,
) -> CountVerification:
    """Audit a long-form count table (one row per cell, totals labelled "計"), e.g. a published CSV.

    `truth`: the same cells with their true counts (private), for the labels attacker c knows; without it,
    attacker c is not run and the verdict says so. `earlier`: (name, table) of every earlier release."""
    started = time.perf_counter()
    keys = [*([layer] if layer else []), *dims]
    frame = _load(table)
    missing = [c for c in [*keys, count_column, status_column] if c not in frame.columns]
    if missing:
        return _missing(frame, missing)
    cells = _cells(frame, keys, count_column, status_column, layer)
    reasons = _cell_reasons(cells, settings.min_cell)
    true_counts, truth_reasons = _true_counts(cells, truth, keys, count_column)
    reasons += truth_reasons
    audit = _Audit(settings, list(dims))
    per_layer = {}
    for name, part in cells.group_by("_layer", maintain_order=True):
        per_layer[str(name[0])] = audit.layer(part, true_counts)
    reasons += audit.reasons()
    history = _history(cells, per_layer, earlier, keys, count_column, status_column, layer, audit)
    reasons += history.pop("reasons")
    figures = {
        **audit.figures(),
        "over_time": history,
        "labels_known": true_counts is not None,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return CountVerification(
        passed=not reasons,
        reasons=reasons,
        cells=cells.height,
        hidden_cells=int(cells["_hidden"].sum()),
        figures=figures,
        examples=audit.examples[:5],
    )


def attack_intervals(
    table: Path | pl.DataFrame,
    dims: Sequence[str],
    model: str,
    min_cell: int = 3,
    truth: Path | pl.DataFrame | None = None,
    count_column: str = "件数",
    status_column: str = "秘匿",
) -> pl.DataFrame:
    """Every hidden cell of a one-layer table with its exact interval [low, high] under `model` (c needs `truth`):
    what an attacker learns, cell by cell."""
    cells = _cells(_load(table), list(dims), count_column, status_column, None).with_row_index("_row")
    hidden = cells.filter(pl.col("_hidden"))["_row"].to_numpy()
    labels, true_counts = None, None
    if truth is not None:
        true_counts, problems = _true_counts(cells.drop("_row"), truth, list(dims), count_column)
        if true_counts is None:
            raise ValueError(problems[0].en)
        labels = true_counts[hidden]
    equations, rhs = _equations(cells, list(dims), hidden)
    zero_possible = _may_be_zero(cells, list(dims), true_counts, min_cell)[hidden]
    attack = _Attack(equations, rhs, _bounds(model, labels, min_cell, zero_possible), labels)
    for unknown in range(hidden.size):
        attack.exact(unknown, 1.0)
        attack.exact(unknown, -1.0)
    low, high = attack.interval()
    return cells[hidden].select(*dims).with_columns(pl.Series("low", low), pl.Series("high", high))


def _missing(frame: pl.DataFrame, missing: list[str]) -> CountVerification:
    reason = Reason(
        "missing_column",
        f"集計表に必要な列がありません: {', '.join(missing)}",
        f"The count table lacks columns: {', '.join(missing)}",
    )
    return CountVerification(False, [reason], frame.height, 0)


def _load(table: Path | pl.DataFrame) -> pl.DataFrame:
    if isinstance(table, pl.DataFrame):
        return table.with_columns(pl.all().cast(pl.String))
    if table.suffix == ".parquet":  # the private true counts
        return pl.read_parquet(table).with_columns(pl.all().cast(pl.String))
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        # The published bytes as text: an empty cell is a hidden count, nothing is inferred.
        # The path as a literal, not a bound parameter: binding a Python list makes duckdb import pandas (0.7 s).
        relation = con.execute(f"SELECT * FROM read_csv({literal(str(table))}, all_varchar = true, header = true)")
        columns = [column[0] for column in relation.description or []]
        rows = relation.fetchall()
    finally:
        con.close()
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row")


def _cells(
    frame: pl.DataFrame, keys: list[str], count_column: str, status_column: str, layer: str | None
) -> pl.DataFrame:
    return frame.with_row_index("_position").with_columns(
        (pl.col(status_column).fill_null("") != "").alias("_hidden"),
        pl.col(status_column).fill_null("").alias("_mark"),
        pl.col(count_column).cast(pl.Int64, strict=False).alias("_count"),
        (pl.lit("") if layer is None else pl.col(layer).cast(pl.String)).alias("_layer"),
        pl.concat_str([pl.col(key).fill_null("") for key in keys], separator="\x1f").alias("_key"),
    )


def _cell_reasons(cells: pl.DataFrame, min_cell: int) -> list[Reason]:
    checks = [
        (
            cells.filter(pl.col("_hidden") & pl.col("_count").is_not_null()).height,
            "hidden_value_published",
            "秘匿としたセル {n} 個に数値が載っています。",
            "{n} cells marked as hidden still show a number.",
        ),
        (
            cells.filter(~pl.col("_hidden") & pl.col("_count").is_between(1, min_cell - 1)).height,
            "small_cell_published",
            f"{min_cell} 未満の小さな度数が {{n}} 個公表されています（一次秘匿漏れ）。",
            f"{{n}} published cells are below {min_cell} (missing primary suppression).",
        ),
        (
            cells.filter(~pl.col("_hidden") & pl.col("_count").is_null()).height,
            "count_missing",
            "秘匿でないのに度数が空のセルが {n} 個あります。",
            "{n} cells are neither hidden nor show a count.",
        ),
        (
            cells.filter(pl.col("_hidden") & (pl.col("_mark") != HIDDEN_MARK)).height,
            "suppression_labels_published",
            f"秘匿セル {{n}} 個に「{HIDDEN_MARK}」以外の印があります（一次・二次の別は攻撃の手がかりです）。",
            f"{{n}} hidden cells carry a mark other than '{HIDDEN_MARK}' (primary/secondary labels help an attacker).",
        ),
    ]
    return [Reason(code, ja.format(n=n), en.format(n=n)) for n, code, ja, en in checks if n]


def _true_counts(
    cells: pl.DataFrame, truth: Path | pl.DataFrame | None, keys: list[str], count_column: str
) -> tuple[np.ndarray | None, list[Reason]]:
    """The true count of every published cell (in the published table's row order), checked against it."""
    if truth is None:
        return None, []
    true_frame = _load(truth)
    missing = [c for c in [*keys, count_column] if c not in true_frame.columns]
    if missing:
        return None, [
            Reason(
                "truth_unreadable",
                f"真の集計表に列がありません: {missing}",
                f"The table of true counts lacks columns {missing}",
            )
        ]
    true_frame = true_frame.select(
        pl.concat_str([pl.col(key).fill_null("") for key in keys], separator="\x1f").alias("_key"),
        pl.col(count_column).cast(pl.Int64, strict=False).alias("_true"),
    )
    joined = cells.select("_key", "_count", "_hidden").join(true_frame, on="_key", how="left", maintain_order="left")
    disagree = joined.filter(
        pl.col("_true").is_null() | (pl.col("_true") < 0) | (~pl.col("_hidden") & (pl.col("_true") != pl.col("_count")))
    ).height
    if disagree or true_frame.height != cells.height:
        return None, [
            Reason(
                "truth_mismatch",
                f"非公開の真の集計表が公表表と {disagree} セルで一致しません。",
                f"The private table of true counts disagrees with the published table in {disagree} cells.",
            )
        ]
    return joined["_true"].to_numpy(), []


class _Audit:
    """The interval attack on each layer, and the verdict's counters."""

    def __init__(self, settings: AuditSettings, dims: list[str]) -> None:
        self.settings = settings
        self.dims = dims
        self.primary = self.secondary = self.unbalanced = 0
        self.hidden_zero = self.zeros_hidden_by_rule = self.zero_shown_in_small_line = 0
        self.pinned = dict.fromkeys(MODELS, 0)
        self.below = dict.fromkeys(MODELS, 0)
        self.pinned_by_labels = 0
        self.widths: list[float] = []
        self.models_run: set[str] = set()
        self.examples: list[dict[str, Any]] = []

    def layer(self, part: pl.DataFrame, true_counts: np.ndarray | None) -> Intervals:
        part = part.with_row_index("_row")
        hidden = part.filter(pl.col("_hidden"))["_row"].to_numpy()
        truth = None if true_counts is None else true_counts[part["_position"].to_numpy()]
        equations, rhs = _equations(part, self.dims, hidden)
        if truth is not None:
            self._check_balance(part, truth)
        labels = None if truth is None else truth[hidden]
        inside_small = _may_be_zero(part, self.dims, truth, self.settings.min_cell)
        zero_possible = inside_small[hidden]
        models = MODELS if labels is not None else ("a", "b")
        self.models_run |= set(models)
        intervals = Intervals(hidden, {}, {})
        if labels is not None:
            self.primary += int(((labels >= 1) & (labels < self.settings.min_cell)).sum())
            self.secondary += int((labels >= self.settings.min_cell).sum())
            self.hidden_zero += int(((labels == 0) & ~zero_possible).sum())
            self.zeros_hidden_by_rule += int(((labels == 0) & zero_possible).sum())
            shown = ~part["_hidden"].to_numpy()
            # a zero inside a line whose total is a published 0 is shown by that total anyway
            shown_zero_total = _inside_lines(part, self.dims, shown & (truth == 0))
            self.zero_shown_in_small_line += int((shown & inside_small & (truth == 0) & ~shown_zero_total).sum())
        for model in models:
            attack = _Attack(equations, rhs, _bounds(model, labels, self.settings.min_cell, zero_possible), labels)
            attack.require(*self._needs(attack.size, model, labels))
            intervals.attacks[model] = attack
            low, high = attack.interval()
            intervals.low[model], intervals.high[model] = low, high
            self._judge(part, hidden, model, low, high, labels, truth, inside_small)
        return intervals

    def _check_balance(self, part: pl.DataFrame, truth: np.ndarray) -> None:
        """The true counts must satisfy every line: otherwise the published totals are not the real ones."""
        everything = np.arange(part.height)
        equations, rhs = _equations(part.with_columns(pl.lit(value=True).alias("_hidden")), self.dims, everything)
        self.unbalanced += int((np.abs(equations @ truth - rhs) > 0).sum())

    def _needs(self, size: int, model: str, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """How far each hidden cell's interval must reach: a primary cell its protection, any cell two values."""
        need_low, need_high = np.full(size, -np.inf), np.full(size, np.inf)
        if labels is not None:
            primary = labels < self.settings.min_cell  # with the zeros hidden in small lines, labelled alike
            need_low[primary], need_high[primary] = _required(model, self.settings)
        return need_low, need_high

    def _judge(
        self,
        part: pl.DataFrame,
        hidden: np.ndarray,
        model: str,
        low: np.ndarray,
        high: np.ndarray,
        labels: np.ndarray | None,
        truth: np.ndarray | None,
        inside_small: np.ndarray,
    ) -> None:
        settings = self.settings
        pinned = low == high
        if model == "c" and pinned.any() and truth is not None:  # blocks all the same; says why
            by_labels = _pinned_by_labels_alone(
                part, self.dims, truth, np.flatnonzero(pinned), hidden, settings, inside_small
            )
            self.pinned_by_labels += int(by_labels.sum())
        self.pinned[model] += int(pinned.sum())
        below = np.zeros(hidden.size, dtype=bool)
        if labels is not None:
            primary = labels < settings.min_cell  # primary, and the zeros hidden with them (same label)
            need_low, need_high = _required(model, settings)
            below = primary & ((low > need_low) | (high < need_high))
            if model == "a":
                self.widths += list((high - low)[primary])
        self.below[model] += int(below.sum())
        for position in np.flatnonzero(pinned | below)[: 5 - len(self.examples)]:
            row = part.row(int(hidden[position]), named=True)
            self.examples.append(
                {
                    "model": model,
                    "cell": {dim: row[dim] for dim in self.dims},
                    "interval": [_number(low[position]), _number(high[position])],
                }
            )

    def reasons(self) -> list[Reason]:
        reasons = []
        for model in sorted(self.models_run):
            if self.pinned[model]:
                reasons.append(
                    Reason(
                        "hidden_cell_pinned",
                        f"攻撃者{model}（{MODEL_NAMES[model]}）は秘匿セル {self.pinned[model]} 個の値を特定できます。",
                        f"Attacker {model} ({MODEL_NAMES[model]}) pins {self.pinned[model]} hidden cells exactly.",
                    )
                )
            if self.below[model]:
                reasons.append(
                    Reason(
                        "primary_cell_below_protection",
                        f"攻撃者{model}（{MODEL_NAMES[model]}）は一次秘匿セル {self.below[model]} 個について保護水準"
                        "より狭い範囲を示せます。",
                        f"Attacker {model} ({MODEL_NAMES[model]}) narrows {self.below[model]} primary cells below "
                        "their protection level.",
                    )
                )
        if "c" not in self.models_run:
            reasons.append(
                Reason(
                    "truth_missing",
                    "真の集計表がないため、一次・二次の別を知る攻撃者の検証ができません。",
                    "Without the private table of true counts the labels-known attacker cannot be run.",
                )
            )
        if self.unbalanced:
            reasons.append(
                Reason(
                    "totals_do_not_add_up",
                    f"合計と内訳が一致しない行・列が {self.unbalanced} 本あります。",
                    f"{self.unbalanced} lines of the true table do not add up to their totals.",
                )
            )
        if self.hidden_zero:
            reasons.append(
                Reason(
                    "zero_cell_hidden",
                    f"合計が小さい行・列の外で 0 のセル {self.hidden_zero} 個が秘匿されています"
                    "（0 は公表する約束です）。",
                    f"{self.hidden_zero} zero cells outside small lines are hidden (zeros are published by rule).",
                )
            )
        if self.zero_shown_in_small_line:
            reasons.append(
                Reason(
                    "zero_published_in_small_line",
                    f"合計が小さい行・列の 0 が {self.zero_shown_in_small_line} 個公表されています（その行・列は 0 も"
                    "含めすべて秘匿する約束です。0 が見えると残りの秘匿セルが 1 以上と分かります）。",
                    f"{self.zero_shown_in_small_line} zeros are published inside lines whose total is small "
                    "(every cell of such a line is hidden by rule: a visible 0 tells that the other hidden cells "
                    "are >= 1).",
                )
            )
        return reasons

    def figures(self) -> dict[str, Any]:
        return {
            "min_cell": self.settings.min_cell,
            "protection": {"upper": self.settings.upper, "lower": self.settings.lower},
            "primary_cells": self.primary,
            "secondary_cells": self.secondary,
            "pinned": {model: self.pinned[model] for model in sorted(self.models_run)},
            "below_protection": {model: self.below[model] for model in sorted(self.models_run)},
            "pinned_by_labels_alone": self.pinned_by_labels,
            "zeros_hidden_in_small_lines": self.zeros_hidden_by_rule,
            "min_primary_interval_width": _number(min(self.widths)) if self.widths else None,
        }


def _required(model: str, settings: AuditSettings) -> tuple[float, float]:
    """The interval a primary cell's feasible interval must include, under each attacker."""
    if model == "a":
        return settings.lower, settings.upper
    if model == "b":
        return np.inf, settings.upper  # no lower target: b already knows the cell is >= 1
    return 1, min(settings.upper, settings.min_cell - 1)


def _equations(part: pl.DataFrame, dims: list[str], hidden: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Every line of the layer (one dimension varies, totals included): Σ interior − total = 0, with the published
    cells moved to the right-hand side. Columns are the hidden cells in the order of `hidden`."""
    column_of = np.full(part.height, -1)
    column_of[hidden] = np.arange(hidden.size)
    rows, cols, values, rhs = [], [], [], []
    line_offset = 0
    for dim in dims:
        others = [other for other in dims if other != dim]
        lined = part.select(
            "_row",
            "_count",
            "_hidden",
            ((pl.struct(others).rank("dense") - 1) if others else pl.lit(0)).cast(pl.Int64).alias("_line"),
            pl.when(pl.col(dim) == TOTAL_LABEL).then(-1).otherwise(1).alias("_sign"),
        )
        line_ids = lined["_line"].to_numpy()
        lines = int(line_ids.max(initial=0)) + 1
        line = line_ids + line_offset
        sign = lined["_sign"].to_numpy().astype(float)
        is_hidden = lined["_hidden"].to_numpy()
        row_index = lined["_row"].to_numpy()
        rows.append(line[is_hidden])
        cols.append(column_of[row_index[is_hidden]])
        values.append(sign[is_hidden])
        known = np.zeros(lines)
        shown = ~is_hidden
        np.add.at(known, line[shown] - line_offset, sign[shown] * lined["_count"].fill_null(0).to_numpy()[shown])
        rhs.append(-known)
        line_offset += lines
    matrix = sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(line_offset, hidden.size)
    )
    return matrix, np.concatenate(rhs)


def _bounds(
    model: str, labels: np.ndarray | None, min_cell: int, zero_possible: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """What each attacker knows of every hidden cell a priori. `zero_possible`: inside a small line (may be 0)."""
    size = zero_possible.size
    low = np.full(size, 0.0 if model == "a" else 1.0)
    high = np.full(size, np.inf)
    if model == "c" and labels is not None:
        small = labels < min_cell  # primary, or a zero hidden by the small-line rule: both labelled primary
        low[~small] = min_cell
        high[small] = min_cell - 1
        low[zero_possible & small] = 0.0
    else:
        low[zero_possible] = 0.0
    return low, high


def _may_be_zero(part: pl.DataFrame, dims: list[str], truth: np.ndarray | None, min_cell: int) -> np.ndarray:
    """Per row of `part`: the cell lies (not as the total) in a line whose total is hidden as small, where every
    cell is hidden and may be 0. Small: hidden with a true count below min_cell (primary, or a zero hidden by the
    rule); without the true counts (an outsider): any hidden total."""
    small = part["_hidden"].to_numpy()
    if truth is not None:
        small = small & (truth < min_cell)
    return _inside_lines(part, dims, small)


def _inside_lines(part: pl.DataFrame, dims: list[str], totals: np.ndarray) -> np.ndarray:
    """Per row of `part`: the cell lies, not as the total, in a line whose total is marked in `totals`."""
    frame = part.select(dims).with_columns(pl.Series("_small", totals), pl.int_range(pl.len()).alias("_i"))
    inside = np.zeros(part.height, dtype=bool)
    for dim in dims:
        others = [other for other in dims if other != dim]
        line_totals = frame.filter(pl.col(dim) == TOTAL_LABEL).select(
            *others, pl.col("_small").alias("_total_small")
        )
        children = frame.filter(pl.col(dim) != TOTAL_LABEL)
        if others:
            children = children.join(line_totals, on=others, how="left")
        else:
            children = children.with_columns(pl.lit(bool(line_totals["_total_small"].any())).alias("_total_small"))
        rows = children.filter(pl.col("_total_small").fill_null(value=False))["_i"].to_numpy()
        inside[rows] = True
    return inside


class _Attack:
    """The interval attack on one system: an unknown's min and max over the whole-number solutions of
    equations·x = rhs within bounds, computed where the verdict needs it.

    The interval kept per unknown is spanned by whole-number tables actually found — the truth (`known`) and every
    integral LP optimum — so it is what an attacker certainly cannot exclude. `exact` makes one bound the attack's
    true bound: a warm-started LP; when its vertex is fractional and no table found reaches the rounded bound, a
    MILP. `require` solves only the bounds whose certain value does not already meet a requirement, so most
    cells cost no LP of their own (one LP's table widens every cell's interval)."""

    def __init__(
        self,
        equations: sparse.csr_matrix,
        rhs: np.ndarray,
        bounds: tuple[np.ndarray, np.ndarray],
        known: np.ndarray | None = None,
    ) -> None:
        size = equations.shape[1]
        self.size = size
        self.low = np.full(size, np.inf) if known is None else known.astype(float)
        self.high = np.full(size, -np.inf) if known is None else known.astype(float)
        self.exact_low, self.exact_high = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
        self.program = WarmLP(equations, rhs, rhs, bounds[0], bounds[1], costs_change=True) if size else None
        self.solves = 0

    def require(self, need_low: np.ndarray, need_high: np.ndarray) -> None:
        """Exact bounds wherever the certain interval is pinned, above `need_low` or below `need_high`."""
        for unknown in range(self.size):
            if self.low[unknown] > need_low[unknown]:
                self.exact(unknown, 1.0)
            if self.high[unknown] < need_high[unknown]:
                self.exact(unknown, -1.0)
            for direction in (1.0, -1.0):
                if self.low[unknown] >= self.high[unknown]:
                    self.exact(unknown, direction)

    def exact(self, unknown: int, direction: float) -> None:
        done = self.exact_low if direction > 0 else self.exact_high
        if done[unknown] or self.program is None:
            return
        done[unknown] = True
        cost = np.zeros(self.size)
        cost[unknown] = direction
        self.program.set_cost(cost)
        self.solves += 1
        solution = self.program.solve(integral=False)
        if solution is None:
            if self.program.unbounded:
                (self.low if direction > 0 else self.high)[unknown] = -direction * np.inf
            return
        if np.abs(solution - np.round(solution)).max() <= INTEGRAL:
            self._found(np.round(solution))
            return
        value = solution[unknown]
        bound = np.ceil(value - INTEGRAL) if direction > 0 else np.floor(value + INTEGRAL)
        if (self.low if direction > 0 else self.high)[unknown] == bound:
            return  # a whole-number table found earlier reaches the LP bound
        # Another vertex of the optimal face is often whole: a tiny tilt of the objective finds it (cheap LP);
        # otherwise the MILP.
        tilt = np.random.default_rng(unknown).random(self.size) * TILT
        self.program.set_cost(cost + tilt)
        tilted = self.program.solve(integral=False)
        whole = tilted is not None and np.abs(tilted - np.round(tilted)).max() <= INTEGRAL
        if whole and tilted is not None and round(tilted[unknown]) == bound:
            self._found(np.round(tilted))
            return
        self.program.set_cost(cost)
        integral = self.program.solve_integral()
        if integral is not None:
            self._found(np.round(integral))

    def _found(self, table: np.ndarray) -> None:
        self.low = np.minimum(self.low, table)
        self.high = np.maximum(self.high, table)

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        return self.low, self.high


def _pinned_by_labels_alone(
    part: pl.DataFrame,
    dims: list[str],
    truth: np.ndarray,
    pinned: np.ndarray,
    hidden: np.ndarray,
    settings: AuditSettings,
    inside_small: np.ndarray,
) -> np.ndarray:
    """Which of the `pinned` hidden cells (positions in `hidden`) attacker c would pin even if every non-zero cell of
    the table were hidden: only the labels (small or not) and the published zeros pin them."""
    shown_zero = (truth == 0) & ~inside_small
    everything = np.flatnonzero(~shown_zero)
    all_hidden = part.with_columns(pl.Series("_hidden", ~shown_zero))
    equations, rhs = _equations(all_hidden, dims, everything)
    labels = truth[everything]
    low, high = _bounds("c", labels, settings.min_cell, inside_small[everything])
    program = WarmLP(equations, rhs, rhs, low, high)
    column = {int(row): index for index, row in enumerate(everything)}
    result = np.zeros(pinned.size, dtype=bool)
    for position, cell in enumerate(pinned):
        unknown = column[int(hidden[cell])]
        values = []
        for direction in (1.0, -1.0):
            cost = np.zeros(everything.size)
            cost[unknown] = direction
            program.set_cost(cost)
            solution = program.solve()
            values.append(None if solution is None else round(float(solution[unknown])))
        result[position] = values[0] is not None and values[0] == values[1]
    return result


CATEGORIES_CHANGED = "categories_changed_between_releases"


def _history(
    cells: pl.DataFrame,
    per_layer: dict[str, Intervals],
    earlier: Sequence[tuple[str, Path | pl.DataFrame]],
    keys: list[str],
    count_column: str,
    status_column: str,
    layer: str | None,
    audit: _Audit,
) -> dict[str, Any]:
    """Each earlier release against this one: cells whose change is proven to be 1 … min_cell-1 people."""
    new = _cell_intervals(cells, per_layer)
    compared, findings, regrouped = [], [], []
    for name, table in earlier:
        frame = _load(table)
        old_cells = _cells(frame, keys, count_column, status_column, layer)
        unmatched = _unmatched_cells(cells, old_cells)
        if unmatched:   # merged or new categories: these cells cannot be compared, so nothing proves them safe
            regrouped.append((name, unmatched))
        old_layers = {}
        for layer_name, part in old_cells.group_by("_layer", maintain_order=True):
            old_layers[str(layer_name[0])] = audit_without_labels(part, audit.dims)
        old = _cell_intervals(old_cells, old_layers)
        small = _small_changes(new, old, audit.settings.min_cell)
        if small.height:  # what is flagged on certain intervals is checked again on exact ones
            _make_exact(small, per_layer, "")
            _make_exact(small, old_layers, "_old")
            new, old = _cell_intervals(cells, per_layer), _cell_intervals(old_cells, old_layers)
            small = _small_changes(new, old, audit.settings.min_cell)
        compared.append({"release": name, "cells_with_small_change": small.height})
        if small.height:
            findings.append((name, small))
    reasons = []
    if findings:
        total = sum(small.height for _, small in findings)
        names = ", ".join(name for name, _ in findings)
        reasons.append(
            Reason(
                "small_change_between_releases",
                f"前回までの公表（{names}）との差から、{total} セルで {audit.settings.min_cell} 人未満の増減が"
                "分かってしまいます。変化がたまるまで公表を保留します（事務局の判断で公表する場合は理由を記録）。",
                f"Together with earlier releases ({names}) the table proves that 1 to {audit.settings.min_cell - 1} "
                f"people entered or left {total} cells: the release is held until more changes accumulate (or the "
                "office decides, with its reason).",
            )
        )
    if regrouped:
        total = sum(n for _, n in regrouped)
        names = ", ".join(name for name, _ in regrouped)
        reasons.append(
            Reason(
                CATEGORIES_CHANGED,
                f"前回までの公表（{names}）とカテゴリの区分が異なるセルが {total} 個あります（統合・新設）。"
                "区分の違う表どうしの差から人数が分かるおそれがあるため、公表を保留します"
                "（事務局の判断で公表する場合は理由を記録）。",
                f"{total} cells are grouped differently from earlier releases ({names}) (merged or new categories): "
                "the difference of tables grouped differently can reveal people, so the release is held (or the "
                "office decides, with its reason).",
            )
        )
    return {"releases_compared": compared, "reasons": reasons}


def _unmatched_cells(new: pl.DataFrame, old: pl.DataFrame) -> int:
    """Cells whose key is in one release and not the other (categories merged, split or added between them)."""
    new_keys, old_keys = set(new["_key"].to_list()), set(old["_key"].to_list())
    return len(new_keys ^ old_keys)


def audit_without_labels(part: pl.DataFrame, dims: list[str]) -> Intervals:
    """Attackers a and b on one layer of a published table (no labels needed)."""
    part = part.with_row_index("_row")
    hidden = part.filter(pl.col("_hidden"))["_row"].to_numpy()
    equations, rhs = _equations(part, dims, hidden)
    zero_possible = _may_be_zero(part, dims, None, 0)[hidden]
    intervals = Intervals(hidden, {}, {})
    for model in ("a", "b"):
        attack = _Attack(equations, rhs, _bounds(model, None, 0, zero_possible))
        attack.require(np.full(hidden.size, -np.inf), np.full(hidden.size, np.inf))
        intervals.attacks[model] = attack
        intervals.low[model], intervals.high[model] = attack.interval()
    return intervals


def _cell_intervals(cells: pl.DataFrame, per_layer: dict[str, Intervals]) -> pl.DataFrame:
    """Every cell's key with its interval under attackers a and b (a published cell: its value, twice)."""
    frames = []
    for name, part in cells.group_by("_layer", maintain_order=True):
        part = part.with_row_index("_row")
        intervals = per_layer[str(name[0])]
        unknown = np.full(part.height, -1)
        unknown[intervals.rows] = np.arange(intervals.rows.size)
        columns: dict[str, Any] = {"_key": part["_key"], "_layer": part["_layer"], "_unknown": unknown}
        for model in ("a", "b"):
            low, high = intervals.attacks[model].interval() if model in intervals.attacks else (None, None)
            for bound, found in (("low", low), ("high", high)):
                values = part["_count"].cast(pl.Float64).fill_null(np.nan).to_numpy().copy()
                if found is not None:
                    values[intervals.rows] = found
                columns[f"{bound}_{model}"] = values
        frames.append(pl.DataFrame(columns))
    return pl.concat(frames) if frames else pl.DataFrame()


def _make_exact(flagged: pl.DataFrame, per_layer: dict[str, Intervals], suffix: str) -> None:
    """Exact bounds (both ways, attackers a and b) for the flagged cells that are hidden in these releases."""
    for layer_name, unknown in flagged.select(f"_layer{suffix}", f"_unknown{suffix}").iter_rows():
        if unknown < 0:
            continue
        attacks = per_layer[str(layer_name)].attacks
        for attack in (attacks[model] for model in ("a", "b") if model in attacks):
            attack.exact(int(unknown), 1.0)
            attack.exact(int(unknown), -1.0)


def _small_changes(new: pl.DataFrame, old: pl.DataFrame, min_cell: int) -> pl.DataFrame:
    """Cells (by key) where, under attacker a or b, the change new - old is proven non-zero and below min_cell."""
    joined = new.join(old, on="_key", suffix="_old")
    proven = pl.lit(value=False)
    for model in ("a", "b"):
        change_low = pl.col(f"low_{model}") - pl.col(f"high_{model}_old")
        change_high = pl.col(f"high_{model}") - pl.col(f"low_{model}_old")
        rise = (change_low >= 1) & (change_high <= min_cell - 1)
        fall = (change_high <= -1) & (change_low >= -(min_cell - 1))
        proven = proven | rise | fall
    return joined.filter(proven)


def _number(value: float) -> float | int | None:
    if np.isnan(value):
        return None
    return int(value) if np.isfinite(value) else float(value)
