"""The anonymiser: optimal generalisation (lattice.py), then local suppression, then the released table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from anonymise.hierarchy import Hierarchy
from anonymise.lattice import (
    EncodedTable,
    NodeEvaluation,
    PrivacyModel,
    SearchResult,
    class_table,
    encode_table,
    evaluate_node,
    search_lattice,
)
from anonymise.reasons import Reason

LOSS_METRIC = "ARX Loss (Iyengar loss metric LM; suppressed records count as fully generalised)"


@dataclass
class AnonymisationOutcome:
    """The released table (None when the model cannot be met) and what was done to get it."""

    release: pl.DataFrame | None
    levels: dict[str, int]
    level_names: dict[str, str]
    evaluation: NodeEvaluation | None
    search: SearchResult | None
    metrics: dict[str, Any]
    model: PrivacyModel
    failure: Reason | None = None
    suppressed_rows: list[int] | None = None  # 0-based positions in the input table of the suppressed records
    release_rows: list[int] | None = None  # the input position of each released row, in release order (private)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.release is not None


def anonymise_table(
    table: pl.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    model: PrivacyModel,
    sensitive: Sequence[str] = (),
    keep: Sequence[str] = (),
    sensitive_order: Mapping[str, Sequence[str]] | None = None,
    prune: bool = True,
    prefer_levels: Mapping[str, int] | None = None,
) -> AnonymisationOutcome:
    """Generalise the QIs to the least-loss lattice node that meets `model`, suppress the rest, and release
    only the QIs, the sensitive attributes and the `keep` columns (every other column is dropped).

    `prefer_levels` (the levels of an earlier release) is used instead of the search whenever it still meets
    the model: releases that keep their generalisation can be compared class by class (differencing)."""
    if model.needs_sensitive and not sensitive:
        raise ValueError("l-diversity / t-closeness need at least one sensitive attribute")
    if table.height == 0:
        reason = Reason("empty_input", "入力が0件です。", "The input has no records.")
        return AnonymisationOutcome(None, {}, {}, None, None, {}, model, reason)
    encoded = encode_table(table, hierarchies, sensitive, sensitive_order)
    search = _preferred(encoded, model, prefer_levels) or search_lattice(encoded, model, prune=prune)
    if search.best is None:
        return AnonymisationOutcome(None, {}, {}, None, search, {}, model, _too_strong(encoded, model))
    best = search.best
    classes = class_table(encoded, best.levels, model)
    suppressed_rows = _suppressed_rows(encoded, classes, best.levels)
    release = _release(table, hierarchies, best.levels, suppressed_rows, [*sensitive, *keep])
    levels = dict(zip(encoded.quasi_identifiers, best.levels, strict=True))
    names = {qi: hierarchies[qi].level_names[level] for qi, level in levels.items()}
    metrics = outcome_metrics(encoded, classes, best)
    suppressed = np.flatnonzero(suppressed_rows).tolist()
    kept = np.flatnonzero(~suppressed_rows).tolist()
    return AnonymisationOutcome(release, levels, names, best, search, metrics, model, suppressed_rows=suppressed,
                                release_rows=kept)


def shuffled(table: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The rows in a seeded random order: nothing of the source's order (by name, by number) survives."""
    return table[shuffle_order(table.height, seed)]


def shuffle_order(rows: int, seed: int) -> np.ndarray:
    """The permutation `shuffled` applies (row i of the result is row order[i] of the input)."""
    return np.random.default_rng(seed).permutation(rows)


def _preferred(
    encoded: EncodedTable, model: PrivacyModel, prefer_levels: Mapping[str, int] | None
) -> SearchResult | None:
    """The preferred node as the search result when it is a node of this lattice and meets the model."""
    if not prefer_levels or set(prefer_levels) != set(encoded.quasi_identifiers):
        return None
    levels = [int(prefer_levels[qi]) for qi in encoded.quasi_identifiers]
    if any(not 0 <= level < height for level, height in zip(levels, encoded.heights, strict=True)):
        return None
    evaluation = evaluate_node(encoded, levels, model)
    if not evaluation.satisfies:
        return None
    size = int(np.prod(encoded.heights))
    return SearchResult(evaluation, size, {evaluation.levels: evaluation})


def _suppressed_rows(encoded: EncodedTable, classes: pl.DataFrame, levels: Sequence[int]) -> np.ndarray:
    columns = encoded.level_columns(levels)
    flags = encoded.frame.select(columns).join(
        classes.select([*columns, "bad"]), on=columns, how="left", maintain_order="left"
    )
    return flags["bad"].to_numpy()


def _release(
    table: pl.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    levels: Sequence[int],
    suppressed_rows: np.ndarray,
    other_columns: Sequence[str],
) -> pl.DataFrame:
    published = set(hierarchies) | set(other_columns)
    kept = table.filter(pl.Series(~suppressed_rows))
    generalised = [hierarchies[qi].generalise(kept[qi], level) for qi, level in zip(hierarchies, levels, strict=True)]
    return kept.with_columns(generalised).select([name for name in table.columns if name in published])


def outcome_metrics(encoded: EncodedTable, classes: pl.DataFrame, best: NodeEvaluation) -> dict[str, Any]:
    """Loss, generalisation intensity, discernibility and class sizes of the chosen node after suppression."""
    records = encoded.records
    kept = classes.filter(~pl.col("bad"))
    sizes = kept["size"].to_numpy()
    heights = encoded.heights
    intensity = float(np.mean([level / (height - 1) for level, height in zip(best.levels, heights, strict=True)]))
    kept_records = records - best.suppressed
    return {
        "loss_metric": LOSS_METRIC,
        "loss": best.loss,
        "loss_generalisation_only": best.loss_lower_bound,
        "generalisation_intensity": (kept_records * intensity + best.suppressed) / records,
        "discernibility": int((sizes.astype(np.int64) ** 2).sum()) + best.suppressed * records,
        "records_in": records,
        "records_released": kept_records,
        "records_suppressed": best.suppressed,
        "suppressed_share": best.suppressed / records,
        "equivalence_classes": {
            "count": int(kept.height),
            "min_size": int(sizes.min()) if len(sizes) else 0,
            "avg_size": float(sizes.mean()) if len(sizes) else 0.0,
            "max_size": int(sizes.max()) if len(sizes) else 0,
        },
    }


def _too_strong(encoded: EncodedTable, model: PrivacyModel) -> Reason:
    top = evaluate_node(encoded, [height - 1 for height in encoded.heights], model)
    records = encoded.records
    limit = model.suppression_limit(records)
    parameters = f"k={model.k}" + (f", l={model.l} ({model.l_variant})" if model.l else "")
    parameters += f", t={model.t}" if model.t is not None else ""
    return Reason(
        "model_not_achievable",
        f"{parameters} を最大削除率 {model.max_suppression:.1%}（{limit}件）以内で"
        "満たす加工が見つかりません。"
        f"全項目を最も粗くしても {top.suppressed}件（{top.suppressed / records:.1%}）の削除が必要です。"
        "公開は行いません。k・l を下げるか、データを増やしてください。",
        f"No transformation meets {parameters} within the suppression limit of {model.max_suppression:.1%} "
        f"({limit} records): even the most general one would suppress {top.suppressed} of {records} records "
        f"({top.suppressed / records:.1%}). Nothing is released.",
    )
