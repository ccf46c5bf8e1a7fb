"""One linear program solved many times with small changes (costs, column bounds), warm-started: HiGHS as
bundled with scipy.

Cell suppression solves hundreds of LPs that differ only in their objective or a few bounds (the interval of
each hidden cell; a witness per protected cell). scipy.optimize.linprog rebuilds and re-solves each from scratch
(about 25 ms each on the demo table); keeping one HiGHS instance and changing only what changes re-uses the last
basis (well under 1 ms each). scipy exposes the HiGHS object only as `scipy.optimize._highspy._core`; scipy is
pinned (uv.lock), and a change of that interface fails loudly here on import. Whole-number solutions, when an
LP vertex is fractional, come from the public scipy.optimize.milp.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.optimize._highspy import _core

INFINITY = float(_core.kHighsInf)
INTEGRAL = 1e-6


class WarmLP:
    """min cost·x subject to row_lower <= A x <= row_upper and col_lower <= x <= col_upper."""

    def __init__(
        self,
        matrix: sparse.spmatrix,
        row_lower: np.ndarray,
        row_upper: np.ndarray,
        col_lower: np.ndarray,
        col_upper: np.ndarray,
        costs_change: bool = False,
    ) -> None:
        """`costs_change`: the re-solves change the objective only (the last basis stays primal feasible, so the
        primal simplex restarts from it); otherwise bounds change (dual simplex, HiGHS's default)."""
        columns = sparse.csc_matrix(matrix)
        self.matrix = columns
        self.rows, self.columns = columns.shape
        self.row_lower, self.row_upper = _finite(row_lower), _finite(row_upper)
        self.col_lower, self.col_upper = _finite(col_lower), _finite(col_upper)
        self.cost = np.zeros(self.columns)
        lp = _core.HighsLp()
        lp.num_col_, lp.num_row_ = self.columns, self.rows
        lp.col_cost_ = self.cost
        lp.col_lower_, lp.col_upper_ = self.col_lower, self.col_upper
        lp.row_lower_, lp.row_upper_ = self.row_lower, self.row_upper
        lp.a_matrix_.format_ = _core.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = self.columns, self.rows
        lp.a_matrix_.start_ = columns.indptr.astype(np.int32)
        lp.a_matrix_.index_ = columns.indices.astype(np.int32)
        lp.a_matrix_.value_ = columns.data.astype(float)
        self.highs = _core._Highs()
        self.highs.setOptionValue("output_flag", False)
        if costs_change:
            self.highs.setOptionValue("simplex_strategy", 4)  # primal
        self.highs.passModel(lp)
        self._all = np.arange(self.columns, dtype=np.int32)
        self.unbounded = False

    def set_bounds(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.col_lower, self.col_upper = _finite(lower), _finite(upper)
        self.highs.changeColsBounds(self.columns, self._all, self.col_lower, self.col_upper)

    def set_cost(self, cost: np.ndarray) -> None:
        self.cost = np.asarray(cost, dtype=float)
        self.highs.changeColsCost(self.columns, self._all, self.cost)

    def solve(self, integral: bool = True) -> np.ndarray | None:
        """An optimal solution, or None when infeasible or unbounded (see `unbounded`). With `integral`, a
        fractional optimum is replaced by a whole-number one (MILP): the bound it proves is then the attacker's,
        who knows counts are whole numbers."""
        self.highs.run()
        status = self.highs.getModelStatus()
        self.unbounded = status in (_core.HighsModelStatus.kUnbounded, _core.HighsModelStatus.kUnboundedOrInfeasible)
        if status != _core.HighsModelStatus.kOptimal:
            return None
        solution = np.asarray(self.highs.getSolution().col_value)
        if integral and np.abs(solution - np.round(solution)).max(initial=0.0) > INTEGRAL:
            return self.solve_integral()
        return solution

    def solve_integral(self) -> np.ndarray | None:
        """The whole-number optimum (scipy.optimize.milp on the same problem), or None."""
        result = milp(
            self.cost,
            constraints=LinearConstraint(self.matrix, _infinite(self.row_lower), _infinite(self.row_upper)),
            integrality=np.ones(self.columns),
            bounds=Bounds(_infinite(self.col_lower), _infinite(self.col_upper)),
        )
        if result.status != 0 or result.x is None:
            return None
        return np.asarray(result.x)


def _finite(values: np.ndarray) -> np.ndarray:
    """HiGHS's infinity for ±inf (it does not read IEEE infinities as unbounded in every version)."""
    array = np.asarray(values, dtype=float).copy()
    array[np.isposinf(array)] = INFINITY
    array[np.isneginf(array)] = -INFINITY
    return array


def _infinite(values: np.ndarray) -> np.ndarray:
    array = values.copy()
    array[array >= INFINITY] = np.inf
    array[array <= -INFINITY] = -np.inf
    return array
