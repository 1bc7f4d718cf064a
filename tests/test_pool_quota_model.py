"""A private pool's GPU quota is a row of the placement model, not only a check the ledger makes afterwards.

Without the row the model would put every job in the pool, and the ledger would repair the placements
(one job spills to the cloud), so placements alone look right: only the model's objective and the LP
bound show the difference. So these tests check the bound and the proven lower bound against the
optimum worked out by hand.

Pool-a sells 8 x A100 at $20/h (a 4-GPU job pays $10/h); a public 4 x A100 instance costs $20/h.
Two high-priority 4-GPU jobs, one hour each (see tests/test_solver.py for the arithmetic):

    in the pool:    10 + 10 x 4 x 3 / 60 = 12
    on the cloud:   20 + 10 x 4 x 8 / 60 = 25.333
    queued:         10 x 4 x 1 + 12      = 52 (both are worth placing)

With 4 GPUs of quota left, the optimum is one job in the pool and one on the cloud: 37.333; without
the quota it would be 24.
"""

from __future__ import annotations

import pytest

from placement.model import Tier
from placement.solve import solve_round
from placement.solve.bound import lp_lower_bound
from tests.solver_fixtures import (PRIORITY_RATE, check_plan, exact, job, make_policy, private, public, running,
                                   snapshot, startup_usd, tiers_of)

IN_POOL = 10.0 + startup_usd(PRIORITY_RATE["high"], 4, Tier.PRIVATE)
ON_CLOUD = 20.0 + startup_usd(PRIORITY_RATE["high"], 4, Tier.PUBLIC)
OFFERS = [private("pool-a", price=20.0), public("p4", gpus=4, price=20.0)]
JOBS = [job("a", gpus=4), job("b", gpus=4)]

# (quota, running work in the pool): 4 GPUs left either way.
FOUR_LEFT = {"quota 4": (4, []),
             "quota 8, 4 running": (8, [running("r", tier=Tier.PRIVATE, rate=10.0, gpus=4, pool="pool-a")])}


@pytest.fixture(params=list(FOUR_LEFT), ids=list(FOUR_LEFT))
def snap(request):
    quota, runs = FOUR_LEFT[request.param]
    return snapshot(JOBS, OFFERS, running=runs, pool_quotas={"pool-a": quota})


@pytest.mark.parametrize("aggregate", [True, False], ids=["aggregate", "per-job"])
def test_the_pool_quota_bounds_the_models_objective(snap, aggregate):
    policy = exact(make_policy())
    if aggregate:
        policy = policy.model_copy(update={"solver": policy.solver.model_copy(update={"aggregate": True})})
    plan = solve_round(snap, policy).plan
    check_plan(snap, policy, plan)
    assert sorted(tiers_of(plan).values()) == [Tier.PRIVATE, Tier.PUBLIC]
    assert plan.stats.objective == pytest.approx(IN_POOL + ON_CLOUD)
    # The model's own optimum is the plan's: no relaxation of the quota let it count on 24.
    assert plan.stats.lower_bound == pytest.approx(IN_POOL + ON_CLOUD, rel=1e-9)


def test_the_lp_bound_holds_the_pool_quota(snap):
    assert lp_lower_bound(snap, exact(make_policy())) == pytest.approx(IN_POOL + ON_CLOUD, rel=1e-9)


def test_with_room_for_both_the_bound_drops_to_both_in_the_pool():
    # The control: quota 8 and nothing running, both fit, and the bound says so.
    snap = snapshot(JOBS, OFFERS, pool_quotas={"pool-a": 8})
    policy = exact(make_policy())
    assert lp_lower_bound(snap, policy) == pytest.approx(2 * IN_POOL, rel=1e-9)
    assert solve_round(snap, policy).plan.stats.objective == pytest.approx(2 * IN_POOL)
