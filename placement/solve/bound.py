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
from placement.solve.candidates import Waiting, build_classes
from placement.solve.engine import look_ahead
from placement.solve.formulation import formulate
from placement.solve.ledger import CapacityLedger
from policies.model import Policy


def lp_lower_bound(snapshot: Snapshot, policy: Policy, time_limit_s: float = 600.0) -> float:
    """The bound of the round's model: the same forecast, reservations and queue costs as `solve_round`."""
    jobs = tuple(sorted(snapshot.jobs, key=lambda j: j.id))
    snapshot, groups, forecast, _ = look_ahead(snapshot, jobs, policy)
    classes, _ = build_classes(jobs, groups, policy, aggregate=False, waiting=Waiting(forecast, policy))
    formulation = formulate(classes, CapacityLedger(snapshot, groups, policy), packable=False)
    solution = milp.solve(formulation.program, integer=False, backend=policy.solver.backend,
                          time_limit_s=time_limit_s)
    if solution.values is None or not solution.optimal:
        raise RuntimeError(f"the LP relaxation did not solve to optimality ({solution.status})")
    return solution.objective
