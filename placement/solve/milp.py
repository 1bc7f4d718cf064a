"""A small sparse (mixed-integer) linear program and the two ways to solve it.

The placement model is built once as arrays (every row is `sum a_i x_i <= b`,
variables are bounded counts) and handed either to HiGHS directly through
highspy (fast: no per-variable Python objects) or to PuLP, whose bundled CBC
is the fallback when HiGHS is unavailable or fails. Both honour a time limit
and a relative gap, and both report the best bound so a plan can say how far
from optimal it may be.

HiGHS can also be bounded by work (`WorkLimit`: simplex iterations, branch-and-
bound nodes and leaves, improving solutions). It runs on one thread with a fixed
random seed, so under a work limit the same program gives the same answer
however loaded the machine is (the relative-gap stop compares the bound and the
incumbent that search computed, so it is reproducible too); the time limit is
then only a safety net.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(slots=True)
class LinearProgram:
    """min offset + cost.x subject to rows . x <= row_upper, lower <= x <= upper (lower: 0 when None).

    The offset matters to the solver: a relative gap is measured against the
    whole objective, so "within 0.1%" means 0.1% of what the plan costs.
    """

    offset: float = 0.0
    cost: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    row_index: list[list[int]] = field(default_factory=list)
    row_coef: list[list[float]] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    lower: list[float] | None = None

    def add_var(self, cost: float, upper: float) -> int:
        self.cost.append(cost)
        self.upper.append(upper)
        if self.lower is not None:
            self.lower.append(0.0)
        return len(self.cost) - 1

    def add_row(self, index: list[int], coef: list[float], upper: float) -> None:
        if index:
            self.row_index.append(index)
            self.row_coef.append(coef)
            self.row_upper.append(upper)

    @property
    def num_vars(self) -> int:
        return len(self.cost)

    def fixed(self, values: list[float], free: list[bool]) -> LinearProgram:
        """The same program with every column that is not `free` fixed at its value in `values`."""
        lower = self.lower or [0.0] * self.num_vars
        return replace(self, lower=[lo if f else v for lo, v, f in zip(lower, values, free)],
                       upper=[up if f else v for up, v, f in zip(self.upper, values, free)])


@dataclass(frozen=True, slots=True)
class WorkLimit:
    """How much work HiGHS may do, counted so that the same program stops at the same point on any machine.

    None leaves a count unbounded. HiGHS's root node (presolve, cut rounds, sub-MIP heuristics) has no
    count of its own here: it is bounded by HiGHS's effort rules, which count LP iterations, not seconds.
    CBC (through PuLP) ignores these limits and keeps only the time limit.
    """

    iterations: int | None = None  # simplex iterations (an LP; HiGHS does not apply it to a MIP's search)
    nodes: int | None = None  # branch-and-bound nodes
    leaves: int | None = None  # branch-and-bound leaves
    improving_solutions: int | None = None  # improving integer points found


RANDOM_SEED = 0  # HiGHS's seed, fixed so that a run does not depend on the process


@dataclass(frozen=True, slots=True)
class Solution:
    values: list[float] | None  # None: no feasible solution found
    status: str
    objective: float
    bound: float  # best proven lower bound on the objective (== objective when optimal)
    optimal: bool
    reduced_costs: list[float] | None = None  # an LP's, per column (None for an integer program)

    @property
    def timed_out(self) -> bool:
        """Whether the solver stopped at its time limit (under a work limit: the safety net was reached)."""
        return "time limit" in self.status.lower()


def solve(lp: LinearProgram, *, integer: bool, backend: str = "highs", time_limit_s: float = 2.0,
          mip_rel_gap: float = 1e-3, start: list[float] | None = None, work: WorkLimit | None = None) -> Solution:
    """`start`, a point to begin from, helps HiGHS prune early; CBC through PuLP ignores it. `work` bounds
    HiGHS by work (the same answer on any machine); CBC ignores it."""
    if lp.num_vars == 0:
        return Solution([], "empty", lp.offset, lp.offset, True, [] if not integer else None)
    if backend == "highs":
        try:
            return _solve_highs(lp, integer, time_limit_s, mip_rel_gap, start, work or WorkLimit())
        except ImportError:
            backend = "cbc"
    return _solve_pulp(lp, integer, time_limit_s, mip_rel_gap)


def _quiet_highs():
    """A HiGHS instance without the licence banner HiGHS writes to the process's stdout on first use.

    The banner is printed from C++ before any option can be set, and it would
    corrupt `--json` output, so file descriptor 1 is pointed at /dev/null while
    the instance is constructed.
    """
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    h.setOptionValue("output_flag", False)
    return h


_WORK_OPTIONS = (("iterations", "simplex_iteration_limit"), ("nodes", "mip_max_nodes"), ("leaves", "mip_max_leaves"),
                 ("improving_solutions", "mip_max_improving_sols"))


def _solve_highs(lp: LinearProgram, integer: bool, time_limit_s: float, gap: float,
                 start: list[float] | None, work: WorkLimit) -> Solution:
    import highspy

    h = _quiet_highs()
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", float(gap))
    # One thread and a fixed seed: with more threads HiGHS's search order depends on timing.
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", RANDOM_SEED)
    for attribute, option in _WORK_OPTIONS:
        if getattr(work, attribute) is not None:
            h.setOptionValue(option, int(getattr(work, attribute)))
    n = lp.num_vars
    cols = np.arange(n, dtype=np.int32)
    lower = np.zeros(n) if lp.lower is None else np.asarray(lp.lower, dtype=float)
    h.addVars(n, lower, np.asarray(lp.upper, dtype=float))
    h.changeColsCost(n, cols, np.asarray(lp.cost, dtype=float))
    h.changeObjectiveOffset(float(lp.offset))
    m = len(lp.row_upper)
    if m:
        starts = np.zeros(m, dtype=np.int32)
        np.cumsum([len(r) for r in lp.row_index[:-1]], out=starts[1:])
        index = np.fromiter((i for r in lp.row_index for i in r), dtype=np.int32)
        coef = np.fromiter((c for r in lp.row_coef for c in r), dtype=float)
        h.addRows(m, np.full(m, -highspy.kHighsInf), np.asarray(lp.row_upper, dtype=float), len(index), starts,
                  index, coef)
    if integer:
        h.changeColsIntegrality(n, cols, np.full(n, highspy.HighsVarType.kInteger))
    if start is not None:
        h.setSolution(n, cols, np.asarray(start, dtype=float))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    if info.primal_solution_status != 2:  # no feasible point
        return Solution(None, status, math.inf, -math.inf, False)
    solution = h.getSolution()
    values = list(solution.col_value)
    objective = info.objective_function_value
    if start is not None and not _objective_matches(lp, values, objective):
        # HiGHS 1.16 can carry a start into presolve's reduced model with the wrong objective (its log: "MIP
        # start solution is feasible: objective value is 0.867", then "... in the reduced space: 0.742"),
        # prune every node against that value and return the start as "Optimal" with that objective and
        # bound. Its answer is then worthless: solve again, without the start, in the time left.
        return _solve_highs(lp, integer, max(time_limit_s - h.getRunTime(), 0.0), gap, None, work)
    optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    bound = info.mip_dual_bound if integer else objective
    if not math.isfinite(bound):
        bound = -math.inf
    return Solution(values, status, objective, bound, optimal, None if integer else list(solution.col_dual))


def _objective_matches(lp: LinearProgram, values: list[float], objective: float) -> bool:
    """Whether `objective` is what `values` cost in `lp` (to a relative 1e-7)."""
    recomputed = lp.offset + float(np.dot(lp.cost, values))
    return math.isclose(recomputed, objective, rel_tol=1e-7, abs_tol=1e-9)


def _solve_pulp(lp: LinearProgram, integer: bool, time_limit_s: float, gap: float) -> Solution:
    import pulp

    problem = pulp.LpProblem("placement", pulp.LpMinimize)
    category = pulp.LpInteger if integer else pulp.LpContinuous
    lower = lp.lower or [0.0] * lp.num_vars
    xs = [pulp.LpVariable(f"x{i}", lowBound=lo, upBound=u, cat=category)
          for i, (lo, u) in enumerate(zip(lower, lp.upper))]
    problem.setObjective(pulp.LpAffineExpression(zip(xs, lp.cost), constant=lp.offset))
    for k, (index, coef, upper) in enumerate(zip(lp.row_index, lp.row_coef, lp.row_upper)):
        problem.addConstraint(pulp.LpAffineExpression([(xs[i], c) for i, c in zip(index, coef)]) <= upper, f"r{k}")
    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=gap)
    problem.solve(solver)
    status = pulp.LpStatus[problem.status]
    values = [x.varValue for x in xs]
    if any(v is None for v in values) or problem.sol_status not in (pulp.LpSolutionOptimal,
                                                                    pulp.LpSolutionIntegerFeasible):
        return Solution(None, status, math.inf, -math.inf, False)
    objective = float(pulp.value(problem.objective) or 0.0)
    optimal = problem.sol_status == pulp.LpSolutionOptimal
    reduced_costs = None if integer else [float(x.dj or 0.0) for x in xs]
    return Solution([float(v) for v in values], status, objective, objective if optimal else -math.inf, optimal,
                    reduced_costs)
