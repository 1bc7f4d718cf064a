"""Why a job with no feasible option waits, worked out once per round's offers (`explain.Infeasibility`): jobs of
one shape share the offers that fit them, but each is held to its own hours and budget, and a job pinning an
instance type is not answered from offers that only look alike."""

from __future__ import annotations

from placement.model import Demand, ReasonCode
from placement.solve.explain import Infeasibility
from tests.solver_fixtures import A100, job, make_policy, public

P4D = public("p4d", price=32.0)
P4DE = public("p4de", price=40.0)  # the same machine to `fits`, but for its name


def test_jobs_of_one_shape_are_each_held_to_their_own_hours_and_budget():
    infeasibility = Infeasibility((P4D,), frozenset(), make_policy())
    over = infeasibility.why(job("a", hours=2.0, budget_usd=50.0))
    assert over.code is ReasonCode.OVER_BUDGET
    assert over.message == ("the cheapest fitting offer costs $64.00 over 2 h, above the job's budget of $50.00")
    within = infeasibility.why(job("b", hours=1.0, budget_usd=50.0))
    assert (within.code, within.message) == (ReasonCode.NO_FEASIBLE_TARGET, "no offer with room matches A100:8")
    assert infeasibility.why(job("c", hours=4.0, budget_usd=100.0)).message.startswith(
        "the cheapest fitting offer costs $128.00 over 4 h")


def test_a_job_pinning_an_instance_type_is_priced_on_that_type_alone():
    infeasibility = Infeasibility((P4D, P4DE), frozenset(), make_policy())
    unpinned = infeasibility.why(job("a", hours=1.0, budget_usd=35.0))
    assert unpinned.code is ReasonCode.NO_FEASIBLE_TARGET  # the $32/h p4d is within $35
    pinned = job("b", hours=1.0, budget_usd=35.0,
                 demands=(Demand(accelerator=A100, accelerator_count=8, instance_type="p4de"),))
    why = infeasibility.why(pinned)
    assert why.code is ReasonCode.OVER_BUDGET and "$40.00 over 1 h" in why.message
    missing = job("c", demands=(Demand(accelerator=A100, accelerator_count=8, instance_type="p5"),))
    assert infeasibility.why(missing).message.startswith("no offer matches A100:8")
