"""How much work a placement round may do, sized from the instance, so the plan never depends on the clock.

A round used to stop its integer program and its repack at wall-clock
deadlines, so the same snapshot gave different plans on a quiet and on a
loaded machine. Here every limit is a count, chosen from the model's size
(its integer variables) so that on the 2-core machine the project
is measured on, quiet, a round takes about its `solver.time_limit_s` (2 s by
default) at 500, 2,000 and 10,000 jobs (benchmarks/placement_scale.py); a
longer time limit buys proportionally more repack steps. The clock stays only
as a far safety net (`SolverSettings.budget_s`), logged as an error when
reached.

The estimates below are seconds on that machine, fitted on seeded instances of
benchmarks/placement_scale.py; they decide only how much work is allowed, never
what the work finds.
"""

from __future__ import annotations

from dataclasses import dataclass

from placement.solve.milp import WorkLimit
from policies.model import SolverSettings

ROUND_S_PER_VARIABLE = 1.0e-4  # building the model, the LP, realising, filling and the reasons, per class variable
MILP_S_PER_VARIABLE_POWER = 5e-6  # the integer program's root node: about this x variables^1.5 seconds
INTEGER_PROGRAM_SHARE = 0.4  # the integer program runs only when its estimate is within this share of the budget
STEP_S = 0.04  # one repack step, CPU seconds (20 ms at 10,000 jobs, 30-50 ms at 500 and 2,000; some take 0.5 s)
MIN_REPACK_STEPS = 4  # even a round whose estimate leaves no time repacks a few nodes
LP_ITERATIONS_PER_VARIABLE = 4  # the LP relaxation took at most 0.6 simplex iterations per variable (10,000 jobs)
MILP_NODES = 500  # branch-and-bound nodes of the class-level integer program (measured: it closes at the root)
STEP_NODES = 100  # branch-and-bound nodes of one repack step's program (measured: at most 33 used)
IMPROVING_SOLUTIONS = 50  # improving points either program may find before it stops


@dataclass(frozen=True, slots=True)
class RoundWork:
    """The work one round may do: the LP's and the integer program's limits, and the repack's steps."""

    relaxation: WorkLimit
    integer_program: WorkLimit | None  # None: the model is too large for the integer program to pay its way
    repack_steps: int
    repack_step: WorkLimit


def round_work(num_variables: int, settings: SolverSettings) -> RoundWork:
    """The limits for a round over a class model of `num_variables` variables."""
    budget = settings.time_limit_s
    milp_s = MILP_S_PER_VARIABLE_POWER * num_variables ** 1.5
    runs_milp = settings.max_nodes is not None or milp_s <= INTEGER_PROGRAM_SHARE * budget
    left = budget - ROUND_S_PER_VARIABLE * num_variables - (milp_s if runs_milp else 0.0)
    steps = max(MIN_REPACK_STEPS, int(left / STEP_S))
    nodes = settings.max_nodes if settings.max_nodes is not None else MILP_NODES
    return RoundWork(
        relaxation=WorkLimit(iterations=LP_ITERATIONS_PER_VARIABLE * max(num_variables, 1000)),
        integer_program=WorkLimit(nodes=nodes, improving_solutions=IMPROVING_SOLUTIONS) if runs_milp else None,
        repack_steps=settings.repack_steps if settings.repack_steps is not None else steps,
        repack_step=WorkLimit(nodes=settings.max_nodes if settings.max_nodes is not None else STEP_NODES,
                              improving_solutions=IMPROVING_SOLUTIONS))
