"""A lower bound on any plan's objective: the LP relaxation of the per-job model.

One continuous variable per (job, option) with exact durations, the same rows
as the class model. Identical nodes make the per-node LP equal to the grouped
one (split every group's load evenly across its nodes), and the one-big-job-
per-node cuts hold for every integer plan, so this bounds the full per-job,
per-node program from below. The benchmark divides plan objectives by it.
"""

from __future__ import annotations

from placement.model import Snapshot
from placement.solve import milp
from placement.solve.candidates import build_classes, group_offers
from placement.solve.formulation import formulate
from placement.solve.ledger import CapacityLedger
from policies.model import Policy


def lp_lower_bound(snapshot: Snapshot, policy: Policy, time_limit_s: float = 600.0) -> float:
    groups = group_offers(snapshot)
    classes, _ = build_classes(snapshot.jobs, groups, policy, aggregate=False)
    formulation = formulate(classes, CapacityLedger(snapshot, groups, policy), packable=False)
    solution = milp.solve(formulation.program, integer=False, backend=policy.solver.backend,
                          time_limit_s=time_limit_s)
    if solution.values is None or not solution.optimal:
        raise RuntimeError(f"the LP relaxation did not solve to optimality ({solution.status})")
    return solution.objective
