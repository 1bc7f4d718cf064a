"""A start point given to HiGHS never makes a wrong answer look optimal (placement/solve/milp.py).

HiGHS 1.16 can carry a start into its presolved model with the wrong objective, prune every node
against that value and return the start as "Optimal" (see `mip_start_trap` in
test_solver_properties.py, where the property test found it). The engine starts its integer program
from the rounded-down LP point, so `milp.solve` must give the true optimum whatever start it gets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from placement.solve import milp
from placement.solve.candidates import build_classes, group_offers
from placement.solve.formulation import formulate
from placement.solve.ledger import CapacityLedger
from tests.solver_fixtures import exact, make_policy
from tests.test_solver_properties import mip_start_trap


def trap_program() -> milp.LinearProgram:
    snap, _ = mip_start_trap()
    policy = exact(make_policy())
    groups = group_offers(snap)
    classes, _ = build_classes(tuple(sorted(snap.jobs, key=lambda j: j.id)), groups, policy, aggregate=False)
    return formulate(classes, CapacityLedger(snap, groups, policy)).program


def objective_of(lp: milp.LinearProgram, values: list[float]) -> float:
    return lp.offset + float(np.dot(lp.cost, values))


def test_the_integer_optimum_does_not_depend_on_the_start():
    lp = trap_program()
    relaxed = milp.solve(lp, integer=False)
    floored = [float(math.floor(v + 1e-6)) for v in relaxed.values]
    assert floored != relaxed.values  # the LP is fractional here: the engine would start from this point
    cold = milp.solve(lp, integer=True, mip_rel_gap=0.0, time_limit_s=20.0)
    warm = milp.solve(lp, integer=True, mip_rel_gap=0.0, time_limit_s=20.0, start=floored)
    assert cold.optimal and warm.optimal
    # The answer's objective is its point's, at or above the LP bound, and the same optimum either way.
    for solution in (cold, warm):
        assert solution.objective == pytest.approx(objective_of(lp, solution.values), rel=1e-9)
        assert solution.objective >= relaxed.objective - 1e-9
        assert solution.bound <= solution.objective + 1e-9
    assert warm.objective == pytest.approx(cold.objective, rel=1e-9)
    assert objective_of(lp, floored) > cold.objective + 0.05  # the start itself is not optimal
