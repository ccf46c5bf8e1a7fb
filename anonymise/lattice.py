"""Optimal full-domain generalisation over the lattice of hierarchy levels, with record suppression.

A lattice node gives one generalisation level per quasi-identifier. A node *satisfies* the privacy model
when the records of the equivalence classes that break it (smaller than k, not l-diverse, not t-close)
number at most the suppression limit; those records are then suppressed (ARX's record suppression).
Among the satisfying nodes the search returns the one with the least loss under the chosen quality
model (quality.py: ARX's Precision, Loss or non-uniform entropy).

Evaluating a node: the records are collapsed once into the distinct combinations of leaf codes and
sensitive codes with their counts (`RowTable`). A node's table is *rolled up* from the smallest table
already computed for a more specific node (mapping each code to its parent code with one array lookup,
then regrouping the much shorter table on one mixed-radix integer key), as ARX does with its
"groupify" roll-up; no record is touched again.

Search (ARX's Flash idea, with its bounds): a satisfying node tags all its generalisations, a failing one
all its specialisations, without evaluating them. k-anonymity and distinct l-diversity with record suppression
are monotone; entropy l-diversity and t-closeness are only when no suppression is allowed, so for them the
tagging uses the k part alone and every remaining candidate is checked. A binary search on the greedy path from
the bottom finds a first satisfying node; then only nodes whose lower bound (quality.lower_bounds, from the levels
alone, growing up the lattice) does not exceed the best loss found can matter, and that set is tagged from its
top, evaluating only its maximal untagged nodes. Its satisfying nodes are finally evaluated in increasing bound
order until the bound exceeds the best loss.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from anonymise.hierarchy import EncodedAttribute, Hierarchy
from anonymise.quality import (
    AttributeCosts,
    QualityModel,
    attribute_costs,
    attribute_loss,
    lower_bounds,
)

_TIE = 1e-9  # losses closer than this are equal; ties go to the lower node, then the lexicographically smaller
SUPPRESSION_MODELS = ("records",)
_CACHED_TABLES = 256  # rolled-up node tables kept as sources for further roll-ups …
_EMPTY = np.iinfo(np.int64).max  # levels and rows of an empty cache slot
_CACHED_ROWS = 2_000_000  # … and their rows in all (8 bytes per row and column)


@dataclass(frozen=True)
class PrivacyModel:
    """k-anonymity, optionally l-diversity (distinct or entropy) and t-closeness, with a suppression limit,
    the suppression model and the quality model to optimise (together, ARX's ARXConfiguration)."""

    k: int
    l: int | None = None  # noqa: E741 - the model's own name
    l_variant: str = "distinct"
    t: float | None = None
    max_suppression: float = 0.0  # share of records that may be suppressed, 0 … 1
    quality: QualityModel = field(default_factory=QualityModel)
    suppression: str = "records"  # whole records of the classes that break the model (ARX's default)

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
        if self.suppression not in SUPPRESSION_MODELS:
            raise ValueError(f"suppression must be one of {SUPPRESSION_MODELS}, got {self.suppression!r}")

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
class RowTable:
    """Distinct combinations of QI codes (at `levels`) and sensitive codes, with their record counts."""

    levels: tuple[int, ...]
    codes: tuple[np.ndarray, ...]  # per QI: int32 code at its level
    sensitive: tuple[np.ndarray, ...]  # per sensitive attribute: int32 code
    counts: np.ndarray  # int64 records per row

    @property
    def rows(self) -> int:
        return len(self.counts)


@dataclass(frozen=True)
class EncodedTable:
    """The quasi-identifiers as leaf codes, the sensitive attributes as codes, and their distinct rows."""

    quasi_identifiers: tuple[str, ...]
    attributes: tuple[EncodedAttribute, ...]
    sensitive: tuple[str, ...]
    sensitive_ordered: tuple[bool, ...]
    sensitive_global: tuple[np.ndarray, ...]  # overall distribution of each sensitive attribute
    records: int
    records_table: RowTable  # one row per record, level 0 (not grouped)
    bottom: RowTable  # distinct rows at level 0
    costs: tuple[AttributeCosts, ...]
    roll_ups: tuple[dict[tuple[int, int], np.ndarray], ...]  # per QI: (source, target) level → code map
    bottom_codes: tuple[tuple[np.ndarray, ...], ...] = ()  # per QI and level: the bottom rows' codes

    @property
    def heights(self) -> tuple[int, ...]:
        return tuple(attribute.height for attribute in self.attributes)

    def radices(self, levels: Sequence[int]) -> list[int]:
        qi = [len(attribute.labels[level]) for attribute, level in zip(self.attributes, levels, strict=True)]
        return [*qi, *(len(distribution) for distribution in self.sensitive_global)]


@dataclass(frozen=True)
class NodeEvaluation:
    """What one lattice node gives: classes, records to suppress, and the loss under the quality model."""

    levels: tuple[int, ...]
    classes: int  # equivalence classes before suppression
    suppressed: int  # records in classes that break the model
    small_class_records: int  # records in classes smaller than k
    satisfies: bool
    satisfies_k: bool
    score: float  # the quality model's loss (inf when the node does not satisfy the model)
    score_lower_bound: float  # a lower bound of it from the levels alone


@dataclass(frozen=True)
class Classes:
    """Equivalence classes of a RowTable: the class of each row, class sizes, classes breaking the model."""

    row_class: np.ndarray
    sizes: np.ndarray
    bad: np.ndarray

    def bad_rows(self) -> np.ndarray:
        return self.bad[self.row_class]


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
    """Encode each QI's leaves and each sensitive attribute once, and collapse the records to distinct rows."""
    if not hierarchies:
        raise ValueError("at least one quasi-identifier is needed")
    order = dict(sensitive_order or {})
    quasi = tuple(hierarchies)
    attributes = tuple(hierarchies[name].encode(table[name]) for name in quasi)
    leaf_codes = tuple(attribute.codes[0].astype(np.int32) for attribute in attributes)
    globals_, ordered, sensitive_codes = [], [], []
    for name in sensitive:
        codes, distribution = _encode_sensitive(table[name], order.get(name))
        sensitive_codes.append(codes.astype(np.int32))
        globals_.append(distribution)
        ordered.append(name in order)
    records = table.height
    zero = tuple(0 for _ in quasi)
    records_table = RowTable(zero, leaf_codes, tuple(sensitive_codes), np.ones(records, dtype=np.int64))
    costs = tuple(
        attribute_costs(codes, attribute.parents, attribute.shares)
        for codes, attribute in zip(leaf_codes, attributes, strict=True)
    )
    roll_ups = tuple(
        {
            (source, target): attribute.roll_up(source, target)
            for source in range(attribute.height)
            for target in range(source + 1, attribute.height)
        }
        for attribute in attributes
    )
    encoded = EncodedTable(
        quasi, attributes, tuple(sensitive), tuple(ordered), tuple(globals_), records, records_table,
        records_table, costs, roll_ups,
    )
    bottom = _group_table(encoded, records_table, zero)
    bottom_codes = tuple(
        tuple(codes if level == 0 else roll_up[(0, level)][codes] for level in range(attribute.height))
        for codes, roll_up, attribute in zip(bottom.codes, roll_ups, attributes, strict=True)
    )
    return EncodedTable(**{**encoded.__dict__, "bottom": bottom, "bottom_codes": bottom_codes})


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


def _group(
    columns: Sequence[np.ndarray], radices: Sequence[int], weights: np.ndarray | None, inverse: bool = False
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
    """Distinct rows of `columns` (codes < radices), sorted; summed weights per row; and, if asked, each input
    row's group."""
    size = len(columns[0])
    space = math.prod(radices)
    weights = np.ones(size, dtype=np.int64) if weights is None else weights
    if size == 0:
        return [column[:0] for column in columns], weights[:0], np.zeros(0, dtype=np.int64)
    if space >= 2**62:  # the mixed-radix key would overflow: group the rows themselves
        unique, rows_group = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
        rows_group = rows_group.ravel()
        sums = np.bincount(rows_group, weights=weights, minlength=len(unique)).astype(np.int64)
        return list(unique.T), sums, rows_group
    key = np.array(columns[0], dtype=np.int64)
    for column, radix in zip(columns[1:], radices[1:], strict=True):
        np.multiply(key, radix, out=key)
        np.add(key, column, out=key)
    groups: np.ndarray | None = None
    if space <= max(8 * size, 1 << 16):  # small key space: count in place, no sort
        slot = np.full(space, -1, dtype=np.int64)
        slot[key] = np.arange(size)  # any row of a key stands for it
        keys = np.flatnonzero(slot >= 0)
        first = slot[keys]
        sums = np.bincount(key, weights=weights, minlength=space)[keys].astype(np.int64)
        if inverse:
            slot[keys] = np.arange(len(keys))
            groups = slot[key]
    elif space < 2**62 // size:  # one plain sort of key·size + row number gives the order and the keys
        packed = np.sort(key * size + np.arange(size))
        order = packed % size
        sorted_keys = packed // size
        new_key = np.empty(size, dtype=bool)
        new_key[0] = True
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new_key[1:])
        starts = np.flatnonzero(new_key)
        first = order[starts]
        sums = np.add.reduceat(weights[order], starts)
        if inverse:
            groups = np.empty(size, dtype=np.int64)
            groups[order] = np.cumsum(new_key) - 1
    else:
        _, first, groups = np.unique(key, return_index=True, return_inverse=True)
        sums = np.bincount(groups, weights=weights, minlength=len(first)).astype(np.int64)
    return [column[first] for column in columns], sums, groups


def _recode(encoded: EncodedTable, source: RowTable, levels: Sequence[int]) -> list[np.ndarray]:
    if source is encoded.bottom and encoded.bottom_codes:
        return [per_level[level] for per_level, level in zip(encoded.bottom_codes, levels, strict=True)]
    return [
        codes if have == want else encoded.roll_ups[index][(have, want)][codes]
        for index, (codes, have, want) in enumerate(zip(source.codes, source.levels, levels, strict=True))
    ]


def _group_table(encoded: EncodedTable, source: RowTable, levels: Sequence[int]) -> RowTable:
    """`source` rolled up to `levels`: codes mapped to their parents, equal rows merged."""
    codes = _recode(encoded, source, levels)
    columns, counts, _ = _group([*codes, *source.sensitive], encoded.radices(levels), source.counts)
    qis = len(codes)
    return RowTable(tuple(levels), tuple(columns[:qis]), tuple(columns[qis:]), counts)


def _classes(encoded: EncodedTable, table: RowTable, model: PrivacyModel, distinct_rows: bool) -> Classes:
    """Group the rows into equivalence classes and flag the classes that break the model.

    `distinct_rows`: the table comes from `_group_table`, so its rows are distinct and sorted by their QI codes
    first; a class is then a run of consecutive rows."""
    if distinct_rows and not table.sensitive:
        row_class = np.arange(table.rows)
        sizes = table.counts
    elif distinct_rows:
        starts = np.zeros(table.rows, dtype=bool)
        starts[:1] = True
        for codes in table.codes:
            starts[1:] |= codes[1:] != codes[:-1]
        row_class = np.cumsum(starts) - 1
        sizes = np.add.reduceat(table.counts, np.flatnonzero(starts)) if table.rows else table.counts
    else:
        qi_radices = encoded.radices(table.levels)[: len(table.codes)]
        _, sizes, groups = _group(list(table.codes), qi_radices, table.counts, inverse=True)
        assert groups is not None
        row_class = groups
    bad = sizes < model.k
    only_distinct = model.l_variant == "distinct" and model.t is None
    if model.l is not None and only_distinct and distinct_rows and len(table.sensitive) == 1:
        # One sensitive attribute and distinct rows: a class's distinct values are its rows.
        return Classes(row_class, sizes, bad | (np.bincount(row_class, minlength=len(sizes)) < model.l))
    for j, values in enumerate(table.sensitive):
        bad |= _sensitive_breaks(encoded, model, j, values, table.counts, row_class, sizes)
    return Classes(row_class, sizes, bad)


def _sensitive_breaks(
    encoded: EncodedTable,
    model: PrivacyModel,
    j: int,
    values: np.ndarray,
    counts: np.ndarray,
    row_class: np.ndarray,
    sizes: np.ndarray,
) -> np.ndarray:
    """Classes that fail l-diversity or t-closeness on sensitive attribute j."""
    classes = len(sizes)
    breaks = np.zeros(classes, dtype=bool)
    if model.l is None and model.t is None:
        return breaks
    width = len(encoded.sensitive_global[j])
    pairs = np.bincount(row_class * width + values, weights=counts, minlength=classes * width).reshape(
        classes, width
    )
    if model.l is not None and model.l_variant == "distinct":
        breaks |= (pairs > 0).sum(axis=1) < model.l
    shares = pairs / sizes[:, None]
    if model.l is not None and model.l_variant == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(shares > 0, shares * np.log(shares), 0.0).sum(axis=1)
        breaks |= entropy < math.log(model.l) - 1e-12
    if model.t is not None:
        difference = shares - encoded.sensitive_global[j][None, :]
        if encoded.sensitive_ordered[j] and width > 1:
            distance = np.abs(np.cumsum(difference, axis=1)[:, :-1]).sum(axis=1) / (width - 1)
        else:
            distance = 0.5 * np.abs(difference).sum(axis=1)
        breaks |= distance > model.t + 1e-12
    return breaks


def attribute_losses(
    encoded: EncodedTable, table: RowTable, classes: Classes, quality: QualityModel
) -> np.ndarray:
    """Per QI: the quality model's loss of the node `table` is at, its bad classes suppressed."""
    bad = classes.bad_rows()
    counts = table.counts[bad]
    return np.array(
        [
            attribute_loss(quality, costs, level, encoded.records, codes[bad], counts)
            for costs, level, codes in zip(encoded.costs, table.levels, table.codes, strict=True)
        ]
    )


def node_lower_bound(encoded: EncodedTable, levels: Sequence[int], model: PrivacyModel) -> float:
    """A lower bound of the node's loss from its levels alone; it never decreases up the lattice."""
    limit = model.suppression_limit(encoded.records)
    parts = [
        lower_bounds(model.quality, costs, encoded.records, limit)[level]
        for costs, level in zip(encoded.costs, levels, strict=True)
    ]
    return model.quality.combine(np.array(parts))


class _Evaluator:
    """Evaluates nodes by rolling up the smallest cached table of a more specific node.

    The cache is a ring of slots (levels, rows, table): finding a source is one comparison of the node with
    every cached node's levels; the oldest tables go first when the slots or the row budget run out."""

    def __init__(self, encoded: EncodedTable, model: PrivacyModel) -> None:
        self.encoded = encoded
        self.model = model
        self.limit = model.suppression_limit(encoded.records)
        qis = len(encoded.attributes)
        self.levels = np.full((_CACHED_TABLES, qis), _EMPTY, dtype=np.int64)
        self.rows = np.full(_CACHED_TABLES, _EMPTY, dtype=np.int64)
        self.tables: list[RowTable | None] = [None] * _CACHED_TABLES
        self.order: deque[int] = deque()
        self.free = list(range(_CACHED_TABLES - 1, -1, -1))
        self.cached_rows = 0
        self.last: tuple[int, ...] | None = None

    def source(self, levels: tuple[int, ...]) -> RowTable:
        """The cached table with the fewest rows among nodes at or below `levels`, else the distinct rows."""
        below = np.asarray((self.levels <= np.array(levels)).all(axis=1))
        slot = int(np.where(below, self.rows, _EMPTY).argmin())
        table = self.tables[slot]
        if below[slot] and table is not None and table.rows < self.encoded.bottom.rows:
            return table
        return self.encoded.bottom

    def evaluate(self, levels: tuple[int, ...], bound: float) -> NodeEvaluation:
        source = self.source(levels)
        if source is self.encoded.bottom and self.last is not None:
            # Nodes evaluated one after the other are usually close: their meet, rolled up once from the
            # distinct rows, is a much smaller source for both and for the nodes around them.
            meet = tuple(min(a, b) for a, b in zip(levels, self.last, strict=True))
            if any(meet) and meet != levels:
                source = _group_table(self.encoded, source, meet)
                self._remember(source)
        self.last = levels
        table = _group_table(self.encoded, source, levels)
        self._remember(table)
        classes = _classes(self.encoded, table, self.model, distinct_rows=True)
        return _evaluation(self.encoded, table, classes, self.model, self.limit, bound)

    def _remember(self, table: RowTable) -> None:
        while self.order and (len(self.order) == _CACHED_TABLES or self.cached_rows + table.rows > _CACHED_ROWS):
            self._drop(self.order.popleft())
        if table.rows > _CACHED_ROWS:
            return
        slot = self.free.pop()
        self.levels[slot] = table.levels
        self.rows[slot] = table.rows
        self.tables[slot] = table
        self.order.append(slot)
        self.cached_rows += table.rows

    def _drop(self, slot: int) -> None:
        dropped = self.tables[slot]
        self.cached_rows -= dropped.rows if dropped is not None else 0
        self.tables[slot] = None
        self.levels[slot] = _EMPTY
        self.rows[slot] = _EMPTY
        self.free.append(slot)


def _evaluation(
    encoded: EncodedTable, table: RowTable, classes: Classes, model: PrivacyModel, limit: int, bound: float
) -> NodeEvaluation:
    sizes, bad = classes.sizes, classes.bad
    suppressed = int(sizes[bad].sum())
    small = int(sizes[sizes < model.k].sum())
    satisfies = suppressed <= limit
    score = math.inf
    if satisfies:
        score = model.quality.combine(attribute_losses(encoded, table, classes, model.quality))
    return NodeEvaluation(
        levels=table.levels,
        classes=len(sizes),
        suppressed=suppressed,
        small_class_records=small,
        satisfies=satisfies,
        satisfies_k=small <= limit,
        score=score,
        score_lower_bound=bound,
    )


def evaluate_node(encoded: EncodedTable, levels: Sequence[int], model: PrivacyModel) -> NodeEvaluation:
    """Measure one node against the model (rolled up from the distinct rows)."""
    node = tuple(int(level) for level in levels)
    return _Evaluator(encoded, model).evaluate(node, node_lower_bound(encoded, node, model))


def record_classes(encoded: EncodedTable, levels: Sequence[int], model: PrivacyModel) -> Classes:
    """The node's equivalence classes with one row per record (in input order), to suppress and release."""
    records = encoded.records_table
    codes = _recode(encoded, records, levels)
    table = RowTable(tuple(levels), tuple(codes), records.sensitive, records.counts)
    return _classes(encoded, table, model, distinct_rows=False)


def node_report(encoded: EncodedTable, levels: Sequence[int], model: PrivacyModel) -> dict[str, object]:
    """The chosen node under every quality model (ARX's defaults), and under the optimised one."""
    node = tuple(int(level) for level in levels)
    table = _group_table(encoded, encoded.bottom, node)
    classes = _classes(encoded, table, model, distinct_rows=True)
    names = encoded.quasi_identifiers

    def per_attribute(quality: QualityModel) -> np.ndarray:
        return attribute_losses(encoded, table, classes, quality)

    precision = per_attribute(QualityModel("precision"))
    loss = per_attribute(QualityModel("loss"))
    entropy = per_attribute(QualityModel("nu_entropy"))
    optimised = per_attribute(model.quality)
    maximum = sum(costs.entropy_max for costs in encoded.costs)
    return {
        "optimised": {**model.quality.describe(), "value": model.quality.combine(optimised)},
        "precision": float(precision.mean()),
        "loss": QualityModel("loss").combine(loss),
        "loss_arithmetic_mean": float(loss.mean()),
        "nu_entropy_bits": float(entropy.sum()),
        "nu_entropy": float(entropy.sum() / maximum) if maximum > 0 else 0.0,
        "per_attribute": {
            name: {"precision": float(p), "loss": float(lo), "nu_entropy_bits": float(e)}
            for name, p, lo, e in zip(names, precision, loss, entropy, strict=True)
        },
    }


def _preference(evaluation: NodeEvaluation) -> tuple[float, int, tuple[int, ...]]:
    return (round(evaluation.score, 9), sum(evaluation.levels), evaluation.levels)


def search_lattice(encoded: EncodedTable, model: PrivacyModel, prune: bool = True) -> SearchResult:
    """The satisfying node with the least loss (ties: lower, then lexicographically smaller), or None."""
    nodes = np.array(list(itertools.product(*(range(height) for height in encoded.heights))), dtype=np.int64)
    result = SearchResult(best=None, lattice_size=len(nodes), pruned=prune)
    limit = model.suppression_limit(encoded.records)
    per_qi = [lower_bounds(model.quality, costs, encoded.records, limit) for costs in encoded.costs]
    bounds = model.quality.combine_rows(np.stack([per_qi[i][nodes[:, i]] for i in range(nodes.shape[1])], axis=1))
    evaluator = _Evaluator(encoded, model)

    def evaluate(index: int) -> NodeEvaluation:
        levels = tuple(int(level) for level in nodes[index])
        if levels not in result.evaluations:
            evaluation = evaluator.evaluate(levels, float(bounds[index]))
            result.evaluations[levels] = evaluation
            if evaluation.satisfies and (result.best is None or _preference(evaluation) < _preference(result.best)):
                result.best = evaluation
        return result.evaluations[levels]

    if not prune:
        for index in range(len(nodes)):
            evaluate(index)
        return result
    passing = _classify(nodes, encoded, model, evaluate, bounds, result)
    candidates = sorted(
        (int(i) for i in np.flatnonzero(passing)), key=lambda i: (bounds[i], int(nodes[i].sum()), tuple(nodes[i]))
    )
    for candidate in candidates:
        if result.best is not None and bounds[candidate] > result.best.score + _TIE:
            break
        evaluate(candidate)
    return result


_UNKNOWN, _PASS, _FAIL = 0, 1, 2


def _classify(
    nodes: np.ndarray,
    encoded: EncodedTable,
    model: PrivacyModel,
    evaluate: Callable[[int], NodeEvaluation],
    bounds: np.ndarray,
    result: SearchResult,
) -> np.ndarray:
    """Tag pass/fail for the monotone criterion every node that could still beat the best node found.

    First a Flash step finds a good satisfying node: binary search on the greedy path from the bottom. Then the
    nodes whose bound does not exceed the best loss (a set closed downwards) are tagged from their top: only
    maximal untagged nodes are evaluated, so each failing evaluation tags a whole set of specialisations that no
    other evaluation would, and each passing one may lower the best loss and shrink the set."""
    state = np.zeros(len(nodes), dtype=np.int8)
    successors = _successors(nodes, np.array(encoded.heights))

    def decide(index: int) -> None:
        evaluation = evaluate(index)
        verdict = evaluation.satisfies if model.monotone else evaluation.satisfies_k
        if verdict:
            state[(nodes >= nodes[index]).all(axis=1)] = _PASS
        else:
            state[(nodes <= nodes[index]).all(axis=1)] = _FAIL

    def open_nodes() -> np.ndarray:
        unknown = state == _UNKNOWN
        if result.best is not None:
            unknown &= bounds <= result.best.score + _TIE
        return unknown

    path = _greedy_path(successors, state, bounds)
    low, high = 0, len(path) - 1
    while low <= high:
        middle = (low + high) // 2
        decide(path[middle])
        if state[path[middle]] == _PASS:
            high = middle - 1
        else:
            low = middle + 1
    while True:
        unknown = open_nodes()
        if not unknown.any():
            return state == _PASS
        covered = np.zeros(len(nodes), dtype=bool)
        for successor in successors:
            covered |= (successor >= 0) & unknown[successor]
        frontier = np.flatnonzero(unknown & ~covered)
        for index in frontier[np.argsort(bounds[frontier], kind="stable")]:
            still_open = state[index] == _UNKNOWN
            if still_open and (result.best is None or bounds[index] <= result.best.score + _TIE):
                decide(int(index))


def _successors(nodes: np.ndarray, heights: np.ndarray) -> list[np.ndarray]:
    """Per QI: the index of each node's successor one level up in that QI, or −1 at its top. The nodes are in
    itertools.product order, so a node's index is its levels in mixed radix."""
    strides = np.cumprod([1, *heights[::-1]])[:-1][::-1]
    index = np.arange(len(nodes), dtype=np.int64)
    return [
        np.where(nodes[:, qi] + 1 < heights[qi], index + strides[qi], -1) for qi in range(nodes.shape[1])
    ]


def _greedy_path(successors: list[np.ndarray], state: np.ndarray, bounds: np.ndarray) -> list[int]:
    """From the bottom upwards through untagged nodes, each step to the successor with the least lower bound
    (ties: the lower index)."""
    path = [0]
    while True:
        steps = [int(step[path[-1]]) for step in successors]
        open_steps = [step for step in steps if step >= 0 and state[step] == _UNKNOWN]
        if not open_steps:
            return path
        path.append(min(open_steps, key=lambda index: (bounds[index], index)))
