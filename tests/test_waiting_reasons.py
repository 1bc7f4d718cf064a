"""A job whose every fitting offer is full or on cool-down waits for capacity: `WaitingForCapacity`, exactly.

It is not `NoFeasibleTarget` (something does fit it, just not now) nor `OverBudget` (what is there is
within its budget). A node with no free capacity is offered with `capacity=0`; an offer whose launch
failed is blocked for a cool-down (`Snapshot.blocked_offers`).
"""

from __future__ import annotations

import pytest

from placement.model import ReasonCode
from placement.solve import solve_round
from tests.solver_fixtures import check_plan, job, make_policy, onprem, public, snapshot

NODE = onprem("n1", price=16.0)
FULL_NODE = onprem("n1", price=16.0, capacity=0)
CLOUD = public("p4d", price=32.0)

CASES = {
    "the cloud on cool-down": ([CLOUD], [CLOUD.id]),
    "the node full": ([FULL_NODE], []),
    "the node full, the cloud on cool-down": ([FULL_NODE, CLOUD], [CLOUD.id]),
    "both on cool-down": ([NODE, CLOUD], [NODE.id, CLOUD.id]),
}


@pytest.mark.parametrize("budget", [None, 100.0], ids=["no budget", "within budget"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_every_offer_full_or_cooling_down_is_waiting_for_capacity(case, budget):
    offers, blocked = CASES[case]
    snap = snapshot([job("a", budget_usd=budget)], offers, blocked=blocked)
    policy = make_policy()
    plan = solve_round(snap, policy).plan
    check_plan(snap, policy, plan)
    why = plan.reason_of("a")
    assert why is not None, "the job was placed on an offer it cannot have"
    assert why.code is ReasonCode.WAITING_FOR_CAPACITY
    assert "full or on cool-down" in why.message and "A100:8" in why.message


def test_a_free_offer_beside_them_is_used():
    # The control: the same offers with one left free places the job, so the reason above is about them.
    snap = snapshot([job("a")], [FULL_NODE, CLOUD])
    assert solve_round(snap, make_policy()).plan.placement_of("a").offer_id == CLOUD.id


def test_a_job_no_offer_sells_is_not_waiting():
    # No offer of the job's GPU at all, blocked or not: nothing will free up for it, so it is not waiting.
    snap = snapshot([job("a", gpu="H100")], [CLOUD], blocked=[CLOUD.id])
    assert solve_round(snap, make_policy()).plan.reason_of("a").code is ReasonCode.NO_OFFER_SELLS_GPU
