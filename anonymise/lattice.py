"""Optimal full-domain generalisation over the lattice of hierarchy levels, with local suppression.

A lattice node gives one generalisation level per quasi-identifier. Every QI is encoded once as
integer code columns (one per level), so evaluating a node is one polars group-by on the chosen
level columns. A node *satisfies* the privacy model when the records of the equivalence classes that
break it (smaller than k, not l-diverse, not t-close) number at most the suppression limit; those
records are then suppressed.

Search (in the spirit of ARX's Flash): walk the nodes bottom-up; from each untagged node follow a
greedy path upwards and binary-search it, using monotonicity to tag without evaluating: if a node
satisfies, so do all its generalisations; if it fails, so do all its specialisations. k-anonymity
and distinct l-diversity with suppression are monotone; entropy l-diversity and t-closeness are only
when no suppression is allowed, so for them the tagging uses the k part alone and every remaining
candidate is checked.

Information loss is ARX's "Loss" metric (Iyengar's loss metric, LM): a cell generalised to a label
covering c of the hierarchy's L leaves loses (c − 1)/(L − 1), a suppressed record loses 1 in every
QI, averaged over all QI cells (0 = untouched, 1 = everything suppressed). With suppression it is
not monotone, so the optimum is found among the satisfying nodes in increasing order of a monotone
lower bound (the loss without suppression), stopping once the bound exceeds the best loss found.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from anonymise.hierarchy import EncodedAttribute, Hierarchy

_TIE = 1e-9  # losses closer than this are equal; ties go to the lower node, then the lexicographically smaller


@dataclass(frozen=True)
class PrivacyModel:
    """k-anonymity, optionally l-diversity (distinct or entropy) and t-closeness, with a suppression limit."""

    k: int
    l: int | None = None  # noqa: E741 - the model's own name
    l_variant: str = "distinct"
    t: float | None = None
    max_suppression: float = 0.0  # share of records that may be suppressed, 0 … 1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("k must be ≥ 1")
        if self.l is not None and self.l < 1:
            raise ValueError("l must be ≥ 1")
        if self.l_variant not in ("distinct", "entropy"):
            raise ValueError("l_variant must be 'distinct' or 'entropy'")
        if self.t is not None and not 0 <= self.t <= 1:
            raise ValueError("t must be in [0, 1]")
        if not 0 <= self.max_suppression <= 1:
            raise ValueError("max_suppression is a share of records in [0, 1]")

    def suppression_limit(self, records: int) -> int:
        return math.floor(self.max_suppression * records + 1e-9)

    @property
    def monotone(self) -> bool:
        """True when satisfying the whole model (with suppression) is monotone in the lattice."""
        only_monotone_parts = self.t is None and (self.l is None or self.l_variant == "distinct")
        return only_monotone_parts or self.max_suppression == 0

    @property
    def needs_sensitive(self) -> bool:
        return self.l is not None or self.t is not None


@dataclass(frozen=True)
class EncodedTable:
    """The quasi-identifiers as code columns q{i}_{level} and the sensitive attributes as codes s{j}."""

    quasi_identifiers: tuple[str, ...]
    attributes: tuple[EncodedAttribute, ...]
    sensitive: tuple[str, ...]
    sensitive_ordered: tuple[bool, ...]
    sensitive_global: tuple[np.ndarray, ...]  # overall distribution of each sensitive attribute
    frame: pl.DataFrame
    level_loss_sums: tuple[np.ndarray, ...]  # per QI and level: summed Loss of all records

    @property
    def records(self) -> int:
        return self.frame.height

    @property
    def heights(self) -> tuple[int, ...]:
        return tuple(attribute.height for attribute in self.attributes)

    def level_columns(self, levels: Sequence[int]) -> list[str]:
        return [f"q{index}_{level}" for index, level in enumerate(levels)]


@dataclass(frozen=True)
class NodeEvaluation:
    """What one lattice node gives: classes, records to suppress, and the information loss."""

    levels: tuple[int, ...]
    classes: int  # equivalence classes before suppression
    suppressed: int  # records in classes that break the model
    small_class_records: int  # records in classes smaller than k
    satisfies: bool
    satisfies_k: bool
    loss: float  # ARX Loss, suppressed records counted as fully generalised
    loss_lower_bound: float  # ARX Loss with nothing suppressed


@dataclass
class SearchResult:
    best: NodeEvaluation | None
    lattice_size: int
    evaluations: dict[tuple[int, ...], NodeEvaluation] = field(default_factory=dict)
    pruned: bool = True


def encode_table(
    table: pl.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    sensitive: Sequence[str] = (),
    sensitive_order: Mapping[str, Sequence[str]] | None = None,
) -> EncodedTable:
    """Encode each QI at every hierarchy level and each sensitive attribute, once."""
    if not hierarchies:
        raise ValueError("at least one quasi-identifier is needed")
    order = dict(sensitive_order or {})
    quasi = tuple(hierarchies)
    attributes = tuple(hierarchies[name].encode(table[name]) for name in quasi)
    columns: dict[str, np.ndarray] = {}
    for index, attribute in enumerate(attributes):
        for level, codes in enumerate(attribute.codes):
            columns[f"q{index}_{level}"] = codes
    globals_, ordered = [], []
    for index, name in enumerate(sensitive):
        codes, distribution = _encode_sensitive(table[name], order.get(name))
        columns[f"s{index}"] = codes
        globals_.append(distribution)
        ordered.append(name in order)
    sums = tuple(
        np.array([float(attribute.loss[level][attribute.codes[level]].sum()) for level in range(attribute.height)])
        for attribute in attributes
    )
    return EncodedTable(
        quasi, attributes, tuple(sensitive), tuple(ordered), tuple(globals_), pl.DataFrame(columns), sums
    )


def _encode_sensitive(values: pl.Series, order: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    text = values.cast(pl.String).fill_null("")
    categories = list(order) if order else sorted(text.unique().to_list())
    unknown = set(text.unique().to_list()) - set(categories)
    if unknown:
        raise ValueError(f"{values.name}: values outside the declared order: {sorted(unknown)[:5]}")
    lookup = pl.DataFrame({"v": categories, "code": np.arange(len(categories), dtype=np.uint32)})
    codes = pl.DataFrame({"v": text}).join(lookup, on="v", how="left", maintain_order="left")["code"].to_numpy()
    counts = np.bincount(codes, minlength=len(categories)).astype(np.float64)
    return codes, counts / max(counts.sum(), 1.0)


def class_table(encoded: EncodedTable, levels: Sequence[int], model: PrivacyModel) -> pl.DataFrame:
    """One row per equivalence class: codes, size, whether it breaks the model, per-record Loss."""
    columns = encoded.level_columns(levels)
    aggregations = [pl.len().alias("size")]
    distinct = model.l is not None and model.l_variant == "distinct"
    if distinct:
        aggregations += [pl.col(f"s{j}").n_unique().alias(f"distinct{j}") for j in range(len(encoded.sensitive))]
    classes = encoded.frame.group_by(columns).agg(aggregations)
    bad = pl.col("size") < model.k
    if distinct:
        for j in range(len(encoded.sensitive)):
            bad = bad | (pl.col(f"distinct{j}") < model.l)
    if (model.l is not None and model.l_variant == "entropy") or model.t is not None:
        for j in range(len(encoded.sensitive)):
            classes, breaks = _distribution_checks(encoded, classes, columns, j, model)
            bad = bad | breaks
    classes = classes.with_columns(bad.alias("bad"))
    record_loss = np.zeros(classes.height)
    for index, (column, level) in enumerate(zip(columns, levels, strict=True)):
        record_loss += encoded.attributes[index].loss[level][classes[column].to_numpy()]
    return classes.with_columns(pl.Series("loss", record_loss))


def _distribution_checks(
    encoded: EncodedTable, classes: pl.DataFrame, columns: list[str], j: int, model: PrivacyModel
) -> tuple[pl.DataFrame, pl.Expr]:
    """Entropy l-diversity and t-closeness of sensitive attribute j, per class."""
    sensitive = f"s{j}"
    counts = encoded.frame.group_by([*columns, sensitive]).len()
    breaks = pl.lit(False)
    if model.l is not None and model.l_variant == "entropy":
        shares = counts.with_columns((pl.col("len") / pl.col("len").sum().over(columns)).alias("share"))
        entropy = shares.group_by(columns).agg((-(pl.col("share") * pl.col("share").log())).sum().alias(f"entropy{j}"))
        classes = classes.join(entropy, on=columns, how="left")
        breaks = breaks | (pl.col(f"entropy{j}") < math.log(model.l) - 1e-12)
    if model.t is not None:
        distance = _class_distances(encoded, counts, columns, j)
        classes = classes.join(distance, on=columns, how="left")
        breaks = breaks | (pl.col(f"distance{j}") > model.t + 1e-12)
    return classes, breaks


def _class_distances(encoded: EncodedTable, counts: pl.DataFrame, columns: list[str], j: int) -> pl.DataFrame:
    """Earth mover's distance of each class's distribution to the whole table's: ordered or equal distance."""
    keys = counts.select(columns).unique(maintain_order=True).with_row_index("class")
    indexed = counts.join(keys, on=columns, how="left")
    target = encoded.sensitive_global[j]
    matrix = np.zeros((keys.height, len(target)))
    np.add.at(matrix, (indexed["class"].to_numpy(), indexed[f"s{j}"].to_numpy()), indexed["len"].to_numpy())
    difference = matrix / matrix.sum(axis=1, keepdims=True) - target[None, :]
    if encoded.sensitive_ordered[j] and len(target) > 1:
        distance = np.abs(np.cumsum(difference, axis=1)[:, :-1]).sum(axis=1) / (len(target) - 1)
    else:
        distance = 0.5 * np.abs(difference).sum(axis=1)
    return keys.drop("class").with_columns(pl.Series(f"distance{j}", distance))


def evaluate_node(encoded: EncodedTable, levels: Sequence[int], model: PrivacyModel) -> NodeEvaluation:
    """Group by the node's level columns and measure it against the model."""
    classes = class_table(encoded, levels, model)
    size = classes["size"].to_numpy()
    bad = classes["bad"].to_numpy()
    suppressed = int(size[bad].sum())
    small = int(size[size < model.k].sum())
    limit = model.suppression_limit(encoded.records)
    qis = len(levels)
    total = encoded.records * qis
    kept_loss = float((size[~bad] * classes["loss"].to_numpy()[~bad]).sum())
    return NodeEvaluation(
        levels=tuple(levels),
        classes=classes.height,
        suppressed=suppressed,
        small_class_records=small,
        satisfies=suppressed <= limit,
        satisfies_k=small <= limit,
        loss=(kept_loss + suppressed * qis) / total if total else 0.0,
        loss_lower_bound=lower_bound(encoded, levels),
    )


def lower_bound(encoded: EncodedTable, levels: Sequence[int]) -> float:
    """ARX Loss of a node with no record suppressed; never above its real Loss, and monotone upwards."""
    total = encoded.records * len(levels)
    if not total:
        return 0.0
    return float(sum(encoded.level_loss_sums[i][level] for i, level in enumerate(levels))) / total


def _preference(evaluation: NodeEvaluation) -> tuple[float, int, tuple[int, ...]]:
    return (round(evaluation.loss, 12), sum(evaluation.levels), evaluation.levels)


def search_lattice(encoded: EncodedTable, model: PrivacyModel, prune: bool = True) -> SearchResult:
    """The satisfying node with the least Loss (ties: lower, then lexicographically smaller), or None."""
    nodes = np.array(list(itertools.product(*(range(height) for height in encoded.heights))), dtype=np.int64)
    result = SearchResult(best=None, lattice_size=len(nodes), pruned=prune)

    def evaluate(index: int) -> NodeEvaluation:
        levels = tuple(int(level) for level in nodes[index])
        if levels not in result.evaluations:
            result.evaluations[levels] = evaluate_node(encoded, levels, model)
        return result.evaluations[levels]

    if not prune:
        satisfying = [evaluate(index) for index in range(len(nodes))]
        result.best = min((e for e in satisfying if e.satisfies), key=_preference, default=None)
        return result
    passing = _classify(nodes, encoded, model, evaluate)
    bounds = np.array([lower_bound(encoded, node) for node in nodes])
    candidates = sorted(np.flatnonzero(passing), key=lambda i: (bounds[i], int(nodes[i].sum()), tuple(nodes[i])))
    for index in candidates:
        if result.best is not None and bounds[index] > result.best.loss + _TIE:
            break
        evaluation = evaluate(int(index))
        if evaluation.satisfies and (result.best is None or _preference(evaluation) < _preference(result.best)):
            result.best = evaluation
    return result


_UNKNOWN, _PASS, _FAIL = 0, 1, 2


def _classify(
    nodes: np.ndarray,
    encoded: EncodedTable,
    model: PrivacyModel,
    evaluate: Callable[[int], NodeEvaluation],
) -> np.ndarray:
    """Tag every node pass/fail for the monotone criterion, evaluating as few as monotonicity allows."""
    state = np.zeros(len(nodes), dtype=np.int8)
    position = {tuple(node): index for index, node in enumerate(nodes.tolist())}
    heights = np.array(encoded.heights)
    bounds = np.array([lower_bound(encoded, node) for node in nodes])

    def passes(index: int) -> bool:
        evaluation = evaluate(index)
        return evaluation.satisfies if model.monotone else evaluation.satisfies_k

    for start in np.lexsort((*nodes.T[::-1], nodes.sum(axis=1))):
        if state[start] != _UNKNOWN:
            continue
        path = _greedy_path(int(start), nodes, heights, state, position, bounds)
        low, high = 0, len(path) - 1
        while low <= high:
            middle = (low + high) // 2
            node = path[middle]
            verdict = state[node] == _PASS if state[node] != _UNKNOWN else passes(node)
            if verdict:
                state[(nodes >= nodes[node]).all(axis=1)] = _PASS
                high = middle - 1
            else:
                state[(nodes <= nodes[node]).all(axis=1)] = _FAIL
                low = middle + 1
    return state == _PASS


def _greedy_path(
    start: int,
    nodes: np.ndarray,
    heights: np.ndarray,
    state: np.ndarray,
    position: dict[tuple[int, ...], int],
    bounds: np.ndarray,
) -> list[int]:
    """From `start` upwards through untagged nodes, each step to the successor with the least lower bound."""
    path = [start]
    current = nodes[start]
    while True:
        successors = []
        for qi in range(len(current)):
            if current[qi] + 1 < heights[qi]:
                step = current.copy()
                step[qi] += 1
                index = position[tuple(step.tolist())]
                if state[index] == _UNKNOWN:
                    successors.append(index)
        if not successors:
            return path
        chosen = min(successors, key=lambda index: (bounds[index], tuple(nodes[index].tolist())))
        path.append(chosen)
        current = nodes[chosen]
