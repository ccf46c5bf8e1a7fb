"""Secondary cell suppression that meets protection levels, chosen by solving for them (HiGHS via scipy).

A count table with all its margins is a set of linear equations (every line sums to its total). An attacker who
sees the published cells bounds each hidden cell by the smallest and largest value it can take in a table that
satisfies those equations and what the attacker assumes about hidden cells:

    model a  hidden cells are >= 0
    model b  hidden cells are >= 1 (zeros are published as 0)
    model c  the attacker knows which hidden cells are primary (1 .. min_cell-1) and which secondary (>= min_cell)

Zeros are published as 0, except in a line whose total is itself hidden as small (1 .. min_cell-1, or a zero
hidden by this rule): there every cell is hidden, zeros included (τ-Argus's "zero unsafe", sdcTable's
`allowZeros`; status HIDDEN_ZERO, labelled with the primary cells). Without that, a labels-aware attacker pins a
small total and its cells from the labels alone (a total of 2 over a man and a woman, both >= 1: each is 1),
whatever else is hidden. With it, a hidden cell in such a line may be 0 for every attacker: model b's ">= 1" and
model c's ">= 1" for primary cells hold only for hidden cells outside small lines (`may_be_zero`). The set of
small lines is the same in every table the attacker cannot exclude, so the rule tells the attacker nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from anonymise.lp import WarmLP
from anonymise.policy import Policy, PolicyError

PUBLISHED, PRIMARY, SECONDARY, HIDDEN_ZERO = 0, 1, 2, 3
MODELS = ("a", "b", "c")
# Model c's feasible tables are a subset of b's, b's of a's: a witness for one model is a witness for the weaker.
WEAKER_OR_EQUAL = {"a": ("a",), "b": ("a", "b"), "c": ("a", "b", "c")}
# Cost per unit of change of an already hidden cell: small, so witnesses prefer hidden cells but stay short.
HIDDEN_COST = 1e-3


@dataclass(frozen=True)
class ProtectionSpec:
    """Where every primary cell's feasible interval must reach: down to `lower`, up to `upper` (absolute counts)."""

    min_cell: int
    upper: int
    lower: int = 0

    def targets(self, model: str, value: int) -> tuple[int, int]:
        """(down-to, up-to) for a primary cell of `value` under `model`, clipped to the model's a-priori range.

        Model a: down to `lower`, up to `upper`. Model b: up to `upper` (it knows every hidden cell is >= 1, and a
        margin of two hidden non-zero cells >= 2: no lower target). Model c: anywhere in [1, min_cell-1] but its
        own value, both ways (it knows the cell is small; it must not learn which small value)."""
        if model == "a":
            return min(self.lower, value), self.upper
        if model == "b":
            return value, self.upper
        return max(self.lower, 1), min(self.upper, self.min_cell - 1)


def protection_spec(policy: Policy) -> ProtectionSpec:
    """The policy's `aggregate.protection` (upper defaults to min_cell, lower to 0); never weaker than that."""
    raw = dict((policy.raw.get("aggregate") or {}).get("protection") or {})
    unknown = set(raw) - {"upper", "lower"}
    if unknown:
        raise PolicyError(f"aggregate.protection: unknown keys {sorted(unknown)} (use upper, lower)")
    upper = int(raw.get("upper", policy.min_cell))
    lower = int(raw.get("lower", 0))
    if upper < policy.min_cell:
        raise PolicyError(
            f"aggregate.protection.upper ({upper}) は min_cell ({policy.min_cell}) 以上にしてください / "
            f"must be at least min_cell ({policy.min_cell}): otherwise an attacker may prove a cell is small"
        )
    if not 0 <= lower <= 1:
        raise PolicyError(f"aggregate.protection.lower must be 0 or 1, got {lower}")
    return ProtectionSpec(policy.min_cell, upper, lower)


def inside_lines_of(totals: np.ndarray) -> np.ndarray:
    """Cells that lie, not as the total, in a line whose total is marked in `totals`."""
    inside = np.zeros(totals.shape, dtype=bool)
    for axis in range(totals.ndim):
        line_total = np.broadcast_to(np.take(totals, [-1], axis=axis), totals.shape).copy()
        line_total[(slice(None),) * axis + (-1,)] = False  # the total itself is not inside its own line
        inside |= line_total
    return inside


def small_cells(extended: np.ndarray, min_cell: int) -> np.ndarray:
    """The cells hidden as small: 1 .. min_cell-1, and every zero inside a line whose total is small (repeated:
    a hidden zero total makes its line small too, so that its zeros may rise without showing). A zero inside a line
    whose total is a published 0 stays published: that total shows it anyway."""
    small = (extended >= 1) & (extended < min_cell)
    zero = extended == 0
    while True:
        grown = small | (inside_lines_of(small) & zero & ~inside_lines_of(zero & ~small))
        if (grown == small).all():
            return small
        small = grown


def may_be_zero(extended: np.ndarray, min_cell: int) -> np.ndarray:
    """Cells inside a small line: every such cell is hidden, a zero too, so an attacker who knows the rule must
    allow 0 for it."""
    return inside_lines_of(small_cells(extended, min_cell))


def primary_status(extended: np.ndarray, min_cell: int) -> np.ndarray:
    """Primary suppression: cells of 1 .. min_cell-1 (margins included), and the zeros of small lines
    (HIDDEN_ZERO)."""
    status = np.where((extended >= 1) & (extended < min_cell), PRIMARY, PUBLISHED).astype(np.int8)
    status[(extended == 0) & small_cells(extended, min_cell)] = HIDDEN_ZERO
    return status


def line_matrix(shape: tuple[int, ...]) -> sparse.csr_matrix:
    """One row per line of the array with margins (the last index of every axis is the total): interior - total."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    rows, cols, values = [], [], []
    offset = 0
    for axis in range(len(shape)):
        lines = np.moveaxis(index, axis, -1).reshape(-1, shape[axis])
        count = lines.shape[0]
        line_ids = np.arange(offset, offset + count)
        rows += [np.repeat(line_ids, shape[axis] - 1), line_ids]
        cols += [lines[:, :-1].ravel(), lines[:, -1]]
        values += [np.ones(count * (shape[axis] - 1)), -np.ones(count)]
        offset += count
    return sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(offset, index.size)
    )


@dataclass(frozen=True)
class Requirement:
    cell: int
    model: str
    target: int  # the value the cell must be able to take (up or down from its true value)


@dataclass
class ProtectionResult:
    status: np.ndarray
    unmet: list[Requirement] = field(default_factory=list)
    witnesses_solved: int = 0

    def figures(self) -> dict[str, Any]:
        return {
            "primary": int((self.status == PRIMARY).sum()),
            "secondary": int((self.status == SECONDARY).sum()),
            "hidden_zero": int((self.status == HIDDEN_ZERO).sum()),
            "witness_problems_solved": self.witnesses_solved,
            "unmet_requirements": len(self.unmet),
        }


class _Table:
    """The flattened table, its line equations, the cells' status and the bounds each model puts on them."""

    def __init__(self, extended: np.ndarray, status: np.ndarray, spec: ProtectionSpec, weights: np.ndarray) -> None:
        self.values = extended.ravel().astype(np.int64)
        self.status = status.ravel()
        self.spec = spec
        self.weights = weights.ravel()
        self.size = self.values.size
        self.may_be_zero = may_be_zero(extended, spec.min_cell).ravel()
        # Variables: the rise and the fall of every cell (both >= 0); every line of the change sums to 0.
        equations = line_matrix(extended.shape)
        zeros = np.zeros(equations.shape[0])
        self.lp = WarmLP(
            sparse.hstack([equations, -equations]), zeros, zeros, np.zeros(2 * self.size), np.zeros(2 * self.size)
        )

    def bounds(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound of every cell were it hidden. Zeros outside small lines stay 0 (they are always
        published); a cell inside a small line may be 0 under models b and c (see `may_be_zero`)."""
        low = np.full(self.size, 0.0 if model == "a" else 1.0)
        high = np.full(self.size, np.inf)
        if model == "c":
            small = (self.status == PRIMARY) | (self.status == HIDDEN_ZERO)
            low[~small] = self.spec.min_cell
            high[small] = self.spec.min_cell - 1
        low[self.may_be_zero & (low < self.spec.min_cell)] = 0.0
        zero = (self.values == 0) & ~self.may_be_zero
        low[zero], high[zero] = 0.0, 0.0
        # A published cell that would break the model's bounds if hidden (e.g. a small count under model c that
        # is not primary) cannot take part in a witness: it stays at its value.
        fixed = (self.values < low) | (self.values > high)
        low[fixed] = high[fixed] = self.values[fixed]
        return low, high

    def witness(self, requirement: Requirement) -> np.ndarray | None:
        """A min-cost perturbation reaching the requirement's target under its model, or None if none exists."""
        low, high = self.bounds(requirement.model)
        up = np.clip(high - self.values, 0, None)
        down = np.clip(self.values - low, 0, None)
        shift = requirement.target - int(self.values[requirement.cell])
        up[requirement.cell] = max(shift, 0)
        down[requirement.cell] = max(-shift, 0)
        lower = np.zeros(2 * self.size)
        lower[requirement.cell if shift > 0 else self.size + requirement.cell] = abs(shift)
        cost = np.where(self.status == PUBLISHED, self.weights, HIDDEN_COST)
        self.lp.set_bounds(lower, np.concatenate([up, down]))
        self.lp.set_cost(np.concatenate([cost, cost]))
        solution = self.lp.solve()
        if solution is None:
            return None
        return np.round(solution[: self.size] - solution[self.size :]).astype(np.int64)


def default_weights(extended: np.ndarray) -> np.ndarray:
    """Cost per unit of change of a published cell: 1 + log(1 + count). Between τ-Argus's two usual costs (the
    count: hide few people; one: hide few cells), it hid the fewest cells and people on the demo table."""
    return 1.0 + np.log1p(extended.astype(float))


def protect(
    extended: np.ndarray, status: np.ndarray, spec: ProtectionSpec, weights: np.ndarray | None = None
) -> ProtectionResult:
    """Add secondary suppressions to `status` (in place) until every primary cell meets its protection levels
    and no hidden cell is pinned, under the three attacker models."""
    table = _Table(extended, status, spec, default_weights(extended) if weights is None else weights)
    met: set[Requirement] = set()
    result = ProtectionResult(status)
    pending = _primary_requirements(table)
    pin_checks: set[Requirement] = set()
    moved_under_c: set[int] = set()
    while pending:
        requirement = pending.pop(0)
        if requirement in met or (requirement in pin_checks and requirement.cell in moved_under_c):
            continue
        change = table.witness(requirement)
        result.witnesses_solved += 1
        if change is None and requirement in pin_checks:  # it cannot go up: then down
            requirement = Requirement(requirement.cell, "c", requirement.target - 2)
            change = table.witness(requirement)
            result.witnesses_solved += 1
        if change is None:
            result.unmet.append(requirement)
            continue
        newly_hidden = np.flatnonzero((change != 0) & (table.status == PUBLISHED))
        table.status[newly_hidden] = SECONDARY
        met |= _requirements_met(table, change, requirement.model, pending)
        if requirement.model == "c":  # every cell this witness moves can take two values under model c
            moved_under_c.update(int(cell) for cell in np.flatnonzero(change))
        checks = [_not_pinned(table, int(cell)) for cell in newly_hidden if int(cell) not in moved_under_c]
        pin_checks.update(checks)
        pending += checks
    return result


def _primary_requirements(table: _Table) -> list[Requirement]:
    """Down- and up-targets of every primary cell, strongest model first (its witnesses serve the weaker ones).
    A zero hidden with a small line gets the same targets: labelled like the primary cells, it must not stand out
    by a narrower interval."""
    requirements = []
    for model in ("c", "b", "a"):
        for cell in np.flatnonzero((table.status == PRIMARY) | (table.status == HIDDEN_ZERO)):
            value = int(table.values[cell])
            down, up = table.spec.targets(model, value)
            requirements += [Requirement(int(cell), model, target) for target in (up, down) if target != value]
    return requirements


def _not_pinned(table: _Table, cell: int) -> Requirement:
    """A secondary cell must be able to take another value under the strongest model (one more, as a target)."""
    return Requirement(cell, "c", int(table.values[cell]) + 1)


def _requirements_met(
    table: _Table, change: np.ndarray, model: str, pending: Iterable[Requirement]
) -> set[Requirement]:
    """Pending requirements this witness also meets: same or weaker model, target reached by the changed table."""
    moved = table.values + change
    met = set()
    for requirement in pending:
        if requirement.model not in WEAKER_OR_EQUAL[model]:
            continue
        value, target = table.values[requirement.cell], requirement.target
        reached = moved[requirement.cell] >= target if target > value else moved[requirement.cell] <= target
        if reached:
            met.add(requirement)
    return met
