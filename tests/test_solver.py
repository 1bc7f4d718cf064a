"""The placement core on small instances whose optimum can be worked out by hand.

Unless a test says otherwise the policy has balanced's numbers: cost weight 1,
latency weight 1, priorities low 0.5 / normal 2 / high 10 $ per GPU-hour of
delay, one expected hour of waiting, start-up 1 / 3 / 8 minutes on-prem /
private / public, spot risk 0.15. Each test spells out the arithmetic:

    placed on an option:  rate x hours (x 1.15 on spot) + priority x GPUs x start-up minutes / 60
    left queued:          priority x GPUs x 1 h  +  the job's objective on its cheapest owned option

The fixture offers are an on-prem node of 8 A100 at $16/h ($2 per GPU-hour,
shared: a job pays its GPU share) and a public 8 x A100 instance at $32/h
(dedicated: a job pays the whole instance).
"""

from __future__ import annotations

import random

import pytest

from placement.model import Demand, ReasonCode, Tier
from placement.solve import solve, solve_round
from placement.solve.bound import lp_lower_bound

try:
    from tests.solver_fixtures import (A100, H100, PRIORITY_RATE, builtin_data, builtin_policy, check_plan, cpu_job,
                                       exact, job, make_policy, onprem, placed_ids, plan_key, private, public,
                                       queued_ids, revise, running, snapshot, startup_usd, tiers_of,
                                       with_backend)
except ImportError:  # tests/ on sys.path instead of the project root
    from solver_fixtures import (A100, H100, PRIORITY_RATE, builtin_data, builtin_policy, check_plan, cpu_job,
                                 exact, job, make_policy, onprem, placed_ids, plan_key, private, public, queued_ids,
                                 revise, running, snapshot, startup_usd, tiers_of, with_backend)

HIGH, NORMAL, LOW = PRIORITY_RATE["high"], PRIORITY_RATE["normal"], PRIORITY_RATE["low"]
ONPREM, PRIVATE, PUBLIC = Tier.ONPREM, Tier.PRIVATE, Tier.PUBLIC


@pytest.fixture(params=[True, False], ids=["aggregate", "per-job"])
def policy(request):
    """Balanced numbers, solved over classes (the default) and per job (exact)."""
    return make_policy(solver={"aggregate": request.param})


def run(snap, policy, **kw):
    """Solve and check the plan against every limit (tests/solver_fixtures.check_plan)."""
    result = solve_round(snap, policy, **kw)
    check_plan(snap, policy, result.plan)
    return result


def reason(plan, job_id):
    r = plan.reason_of(job_id)
    assert r is not None, f"{job_id} is not queued"
    assert r.message.strip()
    return r


# ---------------------------------------------------------------------------------------------- on-prem, then burst

TWO_NODES_AND_CLOUD = [onprem("n1"), onprem("n2"), public("p4d", price=32.0)]


def test_high_priority_fills_onprem_then_bursts(policy):
    snap = snapshot([job(f"j{i}", priority="high") for i in range(3)], TWO_NODES_AND_CLOUD)
    plan = run(snap, policy).plan

    on_prem = [p for p in plan.placements if p.tier is ONPREM]
    cloud = [p for p in plan.placements if p.tier is PUBLIC]
    assert len(on_prem) == 2 and len(cloud) == 1 and not plan.queued
    assert {p.nodes for p in on_prem} == {("n1",), ("n2",)}  # distinct nodes
    assert all(p.rate_per_hour == 16.0 for p in on_prem)  # 8/8 of a $16/h node
    assert cloud[0].rate_per_hour == 32.0 and cloud[0].target == "p4d"

    onprem_obj = 16.0 + startup_usd(HIGH, 8, ONPREM)  # 16 + 10*8*1/60 = 17.333
    cloud_obj = 32.0 + startup_usd(HIGH, 8, PUBLIC)  # 32 + 10*8*8/60 = 42.667
    queue_obj = HIGH * 8 * 1.0 + onprem_obj  # 80 + 17.333 = 97.333 > 42.667: bursting pays
    assert cloud_obj < queue_obj
    for p in on_prem:
        assert p.objective == pytest.approx(onprem_obj)
    assert cloud[0].objective == pytest.approx(cloud_obj)
    assert plan.stats.objective == pytest.approx(2 * onprem_obj + cloud_obj)  # 77.333
    assert dict(plan.queue_costs) == pytest.approx({f"j{i}": queue_obj for i in range(3)})


def test_low_priority_waits_for_onprem(policy):
    snap = snapshot([job(f"j{i}", priority="low") for i in range(3)], TWO_NODES_AND_CLOUD)
    plan = run(snap, policy).plan

    onprem_obj = 16.0 + startup_usd(LOW, 8, ONPREM)  # 16.0667
    cloud_obj = 32.0 + startup_usd(LOW, 8, PUBLIC)  # 32.533
    queue_obj = LOW * 8 * 1.0 + onprem_obj  # 4 + 16.0667 = 20.0667 < 32.533: waiting is cheaper
    assert queue_obj < cloud_obj
    assert sorted(p.nodes for p in plan.placements) == [("n1",), ("n2",)]
    assert len(plan.queued) == 1
    ((_, why),) = plan.queued
    assert why.code is ReasonCode.WAITING_FOR_CAPACITY and why.message
    assert plan.stats.objective == pytest.approx(2 * onprem_obj + queue_obj)  # 52.2


def test_mixed_priorities_high_jobs_get_onprem_low_job_waits(policy):
    jobs = [job("hi-1", priority="high"), job("hi-2", priority="high"), job("lo", priority="low")]
    plan = run(snapshot(jobs, TWO_NODES_AND_CLOUD), policy).plan
    # (a) both high on-prem, low waits: 2*17.333 + 20.067 = 54.733
    # (b) high + low on-prem, a high bursts: 17.333 + 16.067 + 42.667 = 76.067
    assert tiers_of(plan) == {"hi-1": ONPREM, "hi-2": ONPREM}
    assert reason(plan, "lo").code is ReasonCode.WAITING_FOR_CAPACITY
    expected = 2 * (16 + startup_usd(HIGH, 8, ONPREM)) + LOW * 8 + 16 + startup_usd(LOW, 8, ONPREM)
    assert plan.stats.objective == pytest.approx(expected)


# Burst iff 32 + r*8*8/60 < r*8 + 16 + r*8/60, i.e. r > 16 / (8 - 56/60) = 2.2642 $ per GPU-hour.
@pytest.mark.parametrize("rate, bursts", [(2.0, False), (2.2, False), (2.35, True), (3.0, True)])
def test_burst_threshold_is_where_delay_outweighs_the_premium(rate, bursts):
    policy = make_policy(priorities={"p": rate})
    snap = snapshot([job(f"j{i}", priority="p") for i in range(3)], TWO_NODES_AND_CLOUD)
    plan = run(snap, policy).plan
    assert sum(p.tier is ONPREM for p in plan.placements) == 2
    assert sum(p.tier is PUBLIC for p in plan.placements) == (1 if bursts else 0)
    assert len(plan.queued) == (0 if bursts else 1)


def test_overdue_job_is_placed_before_jobs_that_can_still_wait(policy):
    # Past max_wait, delay costs 10x: 0.5*8*10 = $40/h, so the overdue job's queue cost is 56.07.
    jobs = [job("a", priority="low"), job("b", priority="low"),
            job("late", priority="low", max_wait_hours=2.0, waited_hours=3.0)]
    plan = run(snapshot(jobs, TWO_NODES_AND_CLOUD), policy).plan
    assert tiers_of(plan)["late"] is ONPREM
    assert len(plan.queued) == 1 and plan.queued[0][0] in {"a", "b"}
    assert dict(plan.queue_costs)["late"] == pytest.approx(LOW * 8 * 10 + 16 + startup_usd(LOW, 8, ONPREM))


def test_overdue_low_priority_jobs_burst(policy):
    jobs = [job(f"j{i}", priority="low", max_wait_hours=1.0, waited_hours=1.0) for i in range(3)]
    plan = run(snapshot(jobs, TWO_NODES_AND_CLOUD), policy).plan
    # queue 40 + 16.067 = 56.07 > public 32.53
    assert sorted(p.tier for p in plan.placements) == sorted([ONPREM, ONPREM, PUBLIC])


def test_nothing_but_public_capacity_is_always_used():
    # With no owned option, a queued job would eventually pay the cheapest option anyway, plus its delay.
    plan = run(snapshot([job("a", priority="low")], [public("p4d")]), make_policy()).plan
    assert tiers_of(plan) == {"a": PUBLIC}


# ---------------------------------------------------------------------------------------------- surge caps

# The same 8 x A100 instance on demand ($30/h) and spot ($28/h). For a spot_ok high job:
#   on demand: 30 + 10.667 = 40.667     spot: 28 * 1.15 + 10.667 = 42.867
# so on demand wins unless a cap below $30/h forces the cheaper-per-hour spot market.
OD_AND_SPOT = [public("p4d", price=30.0), public("p4d", price=28.0, spot=True)]


def test_without_a_cap_the_better_objective_wins(policy):
    plan = run(snapshot([job("a", spot_ok=True)], OD_AND_SPOT), policy).plan
    p = plan.placement_of("a")
    assert not p.spot and p.rate_per_hour == 30.0
    assert p.objective == pytest.approx(30 + startup_usd(HIGH, 8, PUBLIC))


def test_global_cap_forces_the_cheaper_offer():
    policy = make_policy(caps={"global": {"usd_per_hour": 29.0}})
    plan = run(snapshot([job("a", spot_ok=True)], OD_AND_SPOT), policy).plan
    p = plan.placement_of("a")
    assert p.spot and p.rate_per_hour == 28.0
    assert p.objective == pytest.approx(28 * 1.15 + startup_usd(HIGH, 8, PUBLIC))


def test_running_public_work_eats_cap_headroom():
    policy = make_policy(caps={"global": {"usd_per_hour": 29.0}})
    snap = snapshot([job("a", spot_ok=True)], OD_AND_SPOT, running=[running("r", tier=PUBLIC, rate=2.0)])
    plan = run(snap, policy).plan  # $27/h left: neither market fits
    why = reason(plan, "a")
    assert why.code is ReasonCode.OVER_SURGE_CAP and why.scope == "global"


def test_running_onprem_work_does_not_count_against_the_cap():
    policy = make_policy(caps={"global": {"usd_per_hour": 29.0}})
    snap = snapshot([job("a", spot_ok=True)], OD_AND_SPOT, running=[running("r", tier=ONPREM, rate=100.0)])
    assert run(snap, policy).plan.placement_of("a").spot


def test_team_cap_limits_only_its_team():
    policy = make_policy(caps={"teams": {"ml": {"usd_per_hour": 29.0}}})
    jobs = [job("ml-1", team="ml"), job("cv-1", team="cv")]
    plan = run(snapshot(jobs, OD_AND_SPOT), policy).plan  # neither allows spot
    assert reason(plan, "ml-1").code is ReasonCode.OVER_SURGE_CAP
    assert reason(plan, "ml-1").scope == "ml"
    assert plan.placement_of("cv-1").rate_per_hour == 30.0


def test_cap_splits_two_jobs_across_markets(policy):
    policy = revise(policy, caps={"global": {"usd_per_hour": 58.0}})
    plan = run(snapshot([job("a", spot_ok=True), job("b", spot_ok=True)], OD_AND_SPOT), policy).plan
    # $58/h: on demand + spot (30 + 28) beats two spots (56): 40.667 + 42.867 = 83.533
    assert sorted(p.rate_per_hour for p in plan.placements) == [28.0, 30.0]
    assert plan.stats.objective == pytest.approx(30.0 + 28 * 1.15 + 2 * startup_usd(HIGH, 8, PUBLIC))


def test_private_spend_counts_against_the_cap():
    # Private pool at $20/h for 8 GPUs; a 4-GPU job pays $10/h. A $15/h cap with $8/h running leaves $7/h.
    policy = make_policy(caps={"global": {"usd_per_hour": 15.0}})
    snap = snapshot([job("a", gpus=4)], [private(price=20.0)], running=[running("r", tier=PRIVATE, rate=8.0)])
    why = reason(run(snap, policy).plan, "a")
    assert why.code is ReasonCode.OVER_SURGE_CAP
    assert tiers_of(run(snapshot([job("a", gpus=4)], [private(price=20.0)]), policy).plan) == {"a": PRIVATE}


# ---------------------------------------------------------------------------------------------- quotas

def test_team_public_quota(policy):
    policy = revise(policy, quotas={"ml": {"public": 8}})
    jobs = [job("ml-1", team="ml"), job("ml-2", team="ml"), job("cv-1", team="cv")]
    plan = run(snapshot(jobs, [public("p4d")]), policy).plan
    assert placed_ids(plan) & {"ml-1", "ml-2"} and len(placed_ids(plan) & {"ml-1", "ml-2"}) == 1
    assert "cv-1" in placed_ids(plan)
    (blocked,) = queued_ids(plan)
    why = reason(plan, blocked)
    assert why.code is ReasonCode.OVER_QUOTA and why.scope == "ml" and "ml" in why.message


def test_running_work_holds_team_quota():
    policy = make_policy(quotas={"ml": {"public": 8}})
    snap = snapshot([job("ml-1", team="ml")], [public("p4d")], running=[running("r", tier=PUBLIC, rate=32, gpus=8)])
    assert reason(run(snap, policy).plan, "ml-1").code is ReasonCode.OVER_QUOTA


def test_gpu_quota_does_not_block_a_cpu_only_job(policy):
    # ml's on-prem GPU quota is 0 and it already runs 1 GPU there: over quota, but this job asks for no GPU.
    policy = revise(policy, quotas={"ml": {"onprem": 0}})
    snap = snapshot([cpu_job("etl", cpus=1, team="ml")], [onprem("n1")],
                    running=[running("r", tier=ONPREM, team="ml", gpus=1, rate=2.0)])
    assert tiers_of(run(snap, policy).plan) == {"etl": ONPREM}


def test_team_onprem_quota_sends_big_jobs_elsewhere(policy):
    policy = revise(policy, quotas={"ml": {"onprem": 4}})
    jobs = [job("big", team="ml", gpus=8), job("small", team="ml", gpus=4)]
    offers = [onprem("n1"), onprem("n2"), public("p4d")]
    plan = run(snapshot(jobs, offers), policy).plan
    assert tiers_of(plan) == {"big": PUBLIC, "small": ONPREM}
    assert plan.placement_of("small").rate_per_hour == 8.0  # 4/8 of $16/h


def test_private_pool_quota(policy):
    # pool-a: 8 x A100 shape at $20/h, quota 8 GPUs. Three 4-GPU jobs: $10/h each,
    # objective 10 + 10*4*3/60 = 12, queue 40 + 12 = 52: all want in, two fit.
    jobs = [job(f"j{i}", gpus=4) for i in range(3)]
    snap = snapshot(jobs, [private("pool-a", price=20.0)], pool_quotas={"pool-a": 8})
    plan = run(snap, policy).plan
    assert len(plan.placements) == 2
    for p in plan.placements:
        assert p.tier is PRIVATE and p.rate_per_hour == 10.0 and p.target == "pool-a/A100"
        assert p.objective == pytest.approx(10.0 + startup_usd(HIGH, 4, PRIVATE))
    (blocked,) = queued_ids(plan)
    why = reason(plan, blocked)
    assert why.code is ReasonCode.OVER_QUOTA and why.scope == "pool-a"


def test_running_work_in_the_pool_holds_its_quota():
    jobs = [job(f"j{i}", gpus=4) for i in range(3)]
    snap = snapshot(jobs, [private("pool-a")], pool_quotas={"pool-a": 8},
                    running=[running("r", tier=PRIVATE, rate=10.0, gpus=4, pool="pool-a")])
    plan = run(snap, make_policy()).plan
    assert len(plan.placements) == 1 and len(plan.queued) == 2


# ---------------------------------------------------------------------------------------------- residency

def test_residency_never_leaves_onprem(policy):
    jobs = [job("r1", onprem_only=True), job("r2", onprem_only=True)]
    offers = [onprem("n1"), private(), public("p4d", price=1.0)]  # even a $1/h cloud instance is not allowed
    plan = run(snapshot(jobs, offers), policy).plan
    assert [p.tier for p in plan.placements] == [ONPREM]
    (blocked,) = queued_ids(plan)
    assert reason(plan, blocked).code is ReasonCode.RESIDENCY


def test_residency_without_a_matching_onprem_node():
    jobs = [job("r", gpu=H100, onprem_only=True)]
    offers = [onprem("n1", gpu=A100), public("p5", gpu=H100, price=60.0)]
    why = reason(run(snapshot(jobs, offers), make_policy()).plan, "r")
    assert why.code is ReasonCode.RESIDENCY


def test_tiers_restrict_where_a_job_may_run(policy):
    offers = [onprem("n1"), private(), public("p4d")]
    jobs = [job("a", tiers={PUBLIC}), job("b", tiers={PRIVATE}), job("c", tiers={ONPREM})]
    plan = run(snapshot(jobs, offers), policy).plan
    assert tiers_of(plan) == {"a": PUBLIC, "b": PRIVATE, "c": ONPREM}


# ---------------------------------------------------------------------------------------------- spot

# Public p4d: on demand $30/h; spot $20/h (x1.15 risk = 23: cheaper) or $28/h (x1.15 = 32.2: dearer).
@pytest.mark.parametrize("spot_price, spot_ok, use_spot, want_spot", [
    (20.0, True, None, True),    # allowed and cheaper after risk
    (20.0, False, None, False),  # the job does not accept spot
    (20.0, True, False, False),  # the demand pins on-demand
    (28.0, True, None, False),   # allowed but dearer after the 15% risk
    (28.0, False, True, True),   # use_spot=True: spot only, even when dearer
])
def test_spot_choice(spot_price, spot_ok, use_spot, want_spot, policy):
    offers = [public("p4d", price=30.0), public("p4d", price=spot_price, spot=True)]
    plan = run(snapshot([job("a", spot_ok=spot_ok, use_spot=use_spot)], offers), policy).plan
    p = plan.placement_of("a")
    assert p.spot is want_spot
    assert p.rate_per_hour == (spot_price if want_spot else 30.0)
    factor = 1.15 if want_spot else 1.0
    assert p.objective == pytest.approx(p.rate_per_hour * factor + startup_usd(HIGH, 8, PUBLIC))


def test_spot_only_job_with_no_spot_offer_is_infeasible():
    plan = run(snapshot([job("a", use_spot=True)], [public("p4d")]), make_policy()).plan
    assert reason(plan, "a").code is ReasonCode.NO_FEASIBLE_TARGET


def test_policy_can_forbid_spot():
    offers = [public("p4d", price=30.0), public("p4d", price=10.0, spot=True)]
    policy = make_policy(spot={"allowed": False})
    assert not run(snapshot([job("a", spot_ok=True)], offers), policy).plan.placement_of("a").spot


def test_spot_risk_is_the_policys():
    offers = [public("p4d", price=30.0), public("p4d", price=20.0, spot=True)]
    # 20 * 1.6 = 32 > 30: on demand; 20 * 1.4 = 28 < 30: spot
    assert not run(snapshot([job("a", spot_ok=True)], offers), make_policy(spot={"risk": 0.6})).plan.placements[0].spot
    assert run(snapshot([job("a", spot_ok=True)], offers), make_policy(spot={"risk": 0.4})).plan.placements[0].spot


# ---------------------------------------------------------------------------------------------- budgets

def test_offer_over_budget_is_never_used(policy):
    # 2 h: on-prem 16*2 = $32 within $50, the cloud 32*2 = $64 is not, however long the wait.
    jobs = [job("a", hours=2.0, budget_usd=50.0), job("b", hours=2.0, budget_usd=50.0)]
    plan = run(snapshot(jobs, [onprem("n1"), public("p4d")]), policy).plan
    assert [p.tier for p in plan.placements] == [ONPREM]
    (blocked,) = queued_ids(plan)
    assert reason(plan, blocked).code is ReasonCode.WAITING_FOR_CAPACITY


def test_budget_picks_the_offer_that_fits_it():
    # Spot risk 0.5: spot $32/h weighs 48 > on demand $40/h, so on demand wins, unless the $35 budget rules it out.
    offers = [public("p4d", price=40.0), public("p4d", price=32.0, spot=True)]
    policy = make_policy(spot={"risk": 0.5})
    assert run(snapshot([job("a", spot_ok=True)], offers), policy).plan.placement_of("a").rate_per_hour == 40.0
    plan = run(snapshot([job("a", spot_ok=True, budget_usd=35.0)], offers), policy).plan
    assert plan.placement_of("a").rate_per_hour == 32.0 and plan.placement_of("a").spot


def test_no_offer_under_budget():
    plan = run(snapshot([job("a", budget_usd=10.0)], [onprem("n1"), public("p4d")]), make_policy()).plan
    why = reason(plan, "a")  # cheapest: on-prem 16 * 1 h = $16 > $10
    assert why.code is ReasonCode.OVER_BUDGET
    assert "16.00" in why.message and "10.00" in why.message


def test_blocked_offer_is_not_reported_as_over_budget():
    offer = public("p4d", price=32.0)
    plan = run(snapshot([job("a", budget_usd=100.0)], [offer], blocked=[offer.id]), make_policy()).plan
    assert reason(plan, "a").code is not ReasonCode.OVER_BUDGET  # $32 is within $100


# ---------------------------------------------------------------------------------------------- GPU type and memory

def test_gpu_memory_above_every_offer():
    offers = [onprem("n1", gpu_memory_gb=80), public("p4d", gpu_memory_gb=80)]
    why = reason(run(snapshot([job("a", gpu_memory_gb=141)], offers), make_policy()).plan, "a")
    assert why.code is ReasonCode.INSUFFICIENT_GPU_MEMORY and why.scope == A100
    assert "141" in why.message and "80" in why.message


def test_gpu_memory_selects_the_larger_gpu():
    offers = [onprem("n1", gpu_memory_gb=40), public("p4de", gpu_memory_gb=80, price=40.0)]
    plan = run(snapshot([job("a", gpu_memory_gb=60)], offers), make_policy()).plan
    assert plan.placement_of("a").target == "p4de"


def test_unknown_gpu_type():
    why = reason(run(snapshot([job("a", gpu="B200")], [onprem("n1"), public("p4d")]), make_policy()).plan, "a")
    assert why.code is ReasonCode.NO_OFFER_SELLS_GPU and why.scope == "B200" and "B200" in why.message


def test_alternative_demands_take_the_available_gpu():
    demands = (Demand(H100, 8), Demand(A100, 8))
    plan = run(snapshot([job("a", demands=demands)], [onprem("n1", gpu=A100)]), make_policy()).plan
    assert plan.placement_of("a").gpu == A100


# ---------------------------------------------------------------------------------------------- shapes

def test_multi_node_job_takes_distinct_nodes(policy):
    offers = [onprem("n1"), onprem("n2"), onprem("n3")]
    jobs = [job("wide", num_nodes=2), job("single")]
    plan = run(snapshot(jobs, offers), policy).plan
    wide = plan.placement_of("wide")
    assert wide.num_nodes == 2 and len(set(wide.nodes)) == 2
    assert wide.rate_per_hour == 32.0  # two whole $16/h nodes
    assert wide.objective == pytest.approx(32.0 + startup_usd(HIGH, 16, ONPREM))
    assert set(wide.nodes) | set(plan.placement_of("single").nodes) == {"n1", "n2", "n3"}


def test_multi_node_job_on_public_pays_every_instance():
    plan = run(snapshot([job("wide", num_nodes=3)], [public("p4d", price=32.0)]), make_policy()).plan
    assert plan.placement_of("wide").rate_per_hour == 96.0


def test_multi_node_job_with_too_few_nodes():
    plan = run(snapshot([job("wide", num_nodes=3, onprem_only=True)], [onprem("n1"), onprem("n2")]),
               make_policy()).plan
    assert reason(plan, "wide").code is ReasonCode.NO_FEASIBLE_TARGET


def test_fractional_gpus_pack_two_per_gpu(policy):
    node = onprem("tiny", gpus=1, price=2.0)
    jobs = [job(f"f{i}", gpus=0.5) for i in range(3)]
    plan = run(snapshot(jobs, [node]), policy).plan
    assert len(plan.placements) == 2
    for p in plan.placements:
        assert p.nodes == ("tiny",) and p.rate_per_hour == 1.0  # half of a $2/h one-GPU node
    assert reason(plan, (queued_ids(plan)).pop()).code is ReasonCode.WAITING_FOR_CAPACITY


def test_fractions_and_whole_gpus_share_a_node(policy):
    # 2 GPUs: one whole-GPU job and two halves fill it; a third half has no GPU left.
    node = onprem("duo", gpus=2, price=4.0)
    jobs = [job("w", gpus=1), job("h1", gpus=0.5), job("h2", gpus=0.5), job("h3", gpus=0.5, priority="low")]
    plan = run(snapshot(jobs, [node]), policy).plan
    assert placed_ids(plan) == {"w", "h1", "h2"}


def test_memory_beside_a_gpu_filling_job_is_not_counted_for_other_gpu_jobs(policy):
    # Two 8-GPU, 384 GB nodes. An 8-GPU job holds one node's GPUs, so a 1-GPU job needing 300 GB can only go
    # on the other node, and only one of them fits there: summed memory (10 + 2 x 300 <= 768) would promise two.
    nodes = [onprem(f"n{i}", memory_gb=384) for i in range(2)]
    jobs = [job("big", gpus=8, memory_gb=10, tiers={ONPREM}),
            *[job(f"fat{i}", gpus=1, memory_gb=300, tiers={ONPREM}) for i in range(3)]]
    plan = run(snapshot(jobs, nodes), policy).plan
    assert "big" in placed_ids(plan) and len(placed_ids(plan)) == 2
    # The model knew: what it counted on is what the packer realised, so its bound meets the plan.
    assert plan.stats.method == "milp"
    assert plan.stats.objective == pytest.approx(plan.stats.lower_bound, rel=1e-6)
    assert lp_lower_bound(snapshot(jobs, nodes), policy) <= plan.stats.objective + 1e-6


def test_fractions_of_different_sizes_share_a_gpu():
    # One $2/h GPU: half pays $1/h, quarter $0.5/h. Both fit (0.75 of the GPU), as Ray would place them:
    # 1 + 10*0.5/60 + 0.5 + 10*0.25/60 = 1.625; leaving the quarter queued costs 10*0.25 + 0.5417 more.
    plan = run(snapshot([job("half", gpus=0.5), job("quarter", gpus=0.25)], [onprem("solo", gpus=1, price=2.0)]),
               exact(make_policy())).plan
    assert placed_ids(plan) == {"half", "quarter"}
    assert plan.stats.objective == pytest.approx(1.5 + startup_usd(HIGH, 0.75, ONPREM))
    assert plan.stats.objective == pytest.approx(plan.stats.lower_bound)


def test_cpu_only_job_pays_its_cpu_share_of_a_gpu_node():
    # 24 of 96 vCPUs (and 128 of 1024 GB) of a $16/h node: share 0.25, $4/h.
    plan = run(snapshot([cpu_job("etl", cpus=24, memory_gb=128)], [onprem("n1"), public("p4d")]),
               make_policy()).plan
    p = plan.placement_of("etl")
    assert p.tier is ONPREM and p.gpu is None and p.rate_per_hour == pytest.approx(4.0)
    # delay of CPU work: 24 vCPUs / 8 per GPU-equivalent = 3 GPU units
    assert p.objective == pytest.approx(4.0 + startup_usd(HIGH, 3, ONPREM))


def test_cpu_only_job_never_rents_a_gpu_instance():
    plan = run(snapshot([cpu_job("etl", cpus=8)], [public("p4d")]), make_policy()).plan
    assert reason(plan, "etl").code is ReasonCode.NO_FEASIBLE_TARGET
    plan = run(snapshot([cpu_job("etl", cpus=8)], [public("p4d"), public("m5", gpu=None, price=1.5, vcpus=32)]),
               make_policy()).plan
    assert plan.placement_of("etl").target == "m5"


def test_node_cpu_and_memory_limits(policy):
    node = onprem("n1", vcpus=32, memory_gb=256)
    jobs = [job("a", gpus=2, cpus=16), job("b", gpus=2, cpus=16), job("c", gpus=2, cpus=16, priority="low"),
            job("d", gpus=2, memory_gb=300)]
    plan = run(snapshot(jobs, [node]), policy).plan
    assert placed_ids(plan) == {"a", "b"}
    assert reason(plan, "d").code is ReasonCode.NO_FEASIBLE_TARGET  # 300 GB never fits a 256 GB node


def test_job_without_cpus_uses_the_free_gpus_of_a_node_whose_cpus_are_taken():
    node = onprem("n1", vcpus=8)
    jobs = [job("cpu-heavy", gpus=4, cpus=8), job("gpu-only", gpus=4, cpus=0)]
    plan = run(snapshot(jobs, [node]), exact(make_policy())).plan
    assert placed_ids(plan) == {"cpu-heavy", "gpu-only"}


def test_region_pin_on_identical_onprem_nodes():
    offers = [onprem("n1", region="east"), onprem("n2", region="west")]
    plan = run(snapshot([job("a", demands=(Demand(A100, 8, region="west"),))], offers), make_policy()).plan
    assert plan.placement_of("a") is not None, plan.queued  # actual: NoFeasibleTarget "no free offer matches"
    assert plan.placement_of("a").nodes == ("n2",)


def test_zone_pin_on_identical_onprem_nodes():
    offers = [onprem("n1", zone="z1"), onprem("n2", zone="z2")]
    plan = run(snapshot([job("a", demands=(Demand(A100, 8, zone="z2"),))], offers), make_policy()).plan
    assert plan.placement_of("a").nodes == ("n2",)


def test_blocked_and_empty_offers_are_skipped():
    offers = [onprem("n1"), onprem("n2", capacity=0), public("p4d")]
    plan = run(snapshot([job("a"), job("b")], offers, blocked=["onprem/n1"]), make_policy()).plan
    assert sorted(p.tier for p in plan.placements) == [PUBLIC, PUBLIC]


# ---------------------------------------------------------------------------------------------- other objective terms

def test_carbon_price_moves_work_to_a_cleaner_region():
    # 8 GPUs x 400 W x PUE 1.2 = 3.84 kW. At 400 g/kWh: 1.536 kg/h; at 50 g/kWh: 0.192 kg/h.
    # green ($1/kg): 30 + 1.536 = 31.536 vs 31 + 0.192 = 31.192 -> the cleaner, dearer region.
    offers = [public("p4d", price=30.0, region="dirty", gco2_per_kwh=400, gpu_watts=400),
              public("p4d", price=31.0, region="clean", gco2_per_kwh=50, gpu_watts=400)]
    snap = snapshot([job("a")], offers)
    assert run(snap, builtin_policy("balanced")).plan.placement_of("a").region == "dirty"
    green = run(snap, builtin_policy("green")).plan.placement_of("a")
    assert green.region == "clean"
    assert green.objective == pytest.approx(31.0 + 0.192 + startup_usd(HIGH, 8, PUBLIC))


def test_tier_bias_steers_work():
    # private $20/h for 8 GPUs vs public $19/h: startup 4 vs 10.667 -> private (24 < 29.667);
    # a public bias of -$1/GPU-h makes public 19 - 8 + 10.667 = 21.667 < 24.
    offers = [private(price=20.0), public("p4d", price=19.0)]
    snap = snapshot([job("a")], offers)
    assert tiers_of(run(snap, make_policy()).plan) == {"a": PRIVATE}
    plan = run(snap, make_policy(tier_bias_usd_per_gpu_hour={"public": -1.0})).plan
    assert tiers_of(plan) == {"a": PUBLIC}
    assert plan.placement_of("a").objective == pytest.approx(19.0 - 8.0 + startup_usd(HIGH, 8, PUBLIC))


# ---------------------------------------------------------------------------------------------- determinism

def mixed_instance(seed: int = 0):
    offers = [onprem("n1"), onprem("n2"), onprem("n3", gpus=4, price=9.0), private(price=20.0),
              public("p4d", price=32.0), public("p4d", price=12.0, spot=True), public("g5", gpu="A10G", gpus=1,
                                                                                      price=1.2)]
    jobs = [job("a", priority="high"), job("b", priority="low", gpus=4), job("c", priority="normal", gpus=2),
            job("d", priority="high", spot_ok=True), job("e", priority="low", onprem_only=True),
            job("f", priority="critical", gpus=4, hours=3.0), job("g", gpu="A10G", gpus=1, priority="normal"),
            job("h", priority="normal", team="cv", budget_usd=20.0), job("i", gpus=0.5, priority="low"),
            cpu_job("j", cpus=16)]
    rng = random.Random(seed)
    rng.shuffle(jobs)
    return snapshot(jobs, offers, pool_quotas={"pool-a": 8})


def test_same_snapshot_in_any_order_gives_the_same_plan(policy):
    policy = revise(policy, quotas={"cv": {"public": 8}})
    reference = run(mixed_instance(0), policy).plan
    for seed in (1, 2, 3):
        assert plan_key(run(mixed_instance(seed), policy).plan) == plan_key(reference)
    assert plan_key(solve(mixed_instance(4), policy, method="greedy")) == \
        plan_key(solve(mixed_instance(5), policy, method="greedy"))


# ---------------------------------------------------------------------------------------------- methods and bounds

def greedy_trap():
    """One 8-GPU node ($16/h) and a public 4 x A100 instance ($16/h); no 8-GPU instance anywhere.

    small (high, 4 GPUs): on-prem 8 + 10*4/60 = 8.667; public 16 + 10*4*8/60 = 21.333; queue 40 + 8.667 = 48.667
    large (normal, 8 GPUs): on-prem 16 + 2*8/60 = 16.267; queue 16 + 16.267 = 32.267
    The greedy serves `small` first (higher priority) and it takes the node: 8.667 + 32.267 = 40.933.
    The optimum gives the node to `large` and sends `small` to the cloud: 16.267 + 21.333 = 37.6.
    """
    offers = [onprem("n1", price=16.0), public("p3", gpus=4, price=16.0)]
    return snapshot([job("small", gpus=4, priority="high"), job("large", gpus=8, priority="normal")], offers)


SMALL_ONPREM = 8 + startup_usd(HIGH, 4, ONPREM)
SMALL_PUBLIC = 16 + startup_usd(HIGH, 4, PUBLIC)
SMALL_QUEUE = HIGH * 4 + SMALL_ONPREM
LARGE_ONPREM = 16 + startup_usd(NORMAL, 8, ONPREM)
LARGE_QUEUE = NORMAL * 8 + LARGE_ONPREM


def test_greedy_is_worse_than_the_milp_on_the_trap(policy):
    greedy = run(greedy_trap(), policy, method="greedy").plan
    assert greedy.stats.method == "greedy"
    assert tiers_of(greedy) == {"small": ONPREM}
    assert greedy.stats.objective == pytest.approx(SMALL_ONPREM + LARGE_QUEUE)  # 40.933

    milp = run(greedy_trap(), policy).plan
    assert milp.stats.method == "milp" and milp.stats.status.startswith("Optimal")
    assert tiers_of(milp) == {"small": PUBLIC, "large": ONPREM}
    assert milp.stats.objective == pytest.approx(LARGE_ONPREM + SMALL_PUBLIC)  # 37.6
    assert milp.stats.objective < greedy.stats.objective - 3.0


def test_milp_plan_is_never_worse_than_the_greedy_when_packing_fails(policy):
    """Class counts the node packer cannot realise must not leave the round worse than the greedy.

    Two identical 2-GPU nodes ($4/h) form one group; a private pool charges $2.5/GPU-h. `a-wide` (2 nodes x
    1 GPU, residency) and `b-pair` (2 GPUs) are low priority, 0.5 h. The group's GPU row (2 + 2 <= 4) admits
    both on-prem, but no packing does. Best plan: wide on both nodes, pair in the pool.
      wide on-prem: 4 * 1/2 * 2 nodes * 0.5 h = 2 + 0.5*2*1/60 = 2.0167
      pair in pool: 20 * 2/8 * 0.5 h = 2.5 + 0.5*2*3/60 = 2.55
      pair on-prem with wide queued instead: 2.0167 + (0.5*2*1 + 2.0167) = 5.0333
    """
    jobs = [job("a-wide", gpus=1, num_nodes=2, priority="low", hours=0.5, onprem_only=True),
            job("b-pair", gpus=2, priority="low", hours=0.5)]
    snap = snapshot(jobs, [onprem("n0", gpus=2, price=4.0), onprem("n1", gpus=2, price=4.0), private(price=20.0)])
    plan = run(snap, policy).plan
    wide_onprem = 2.0 + startup_usd(LOW, 2, ONPREM)
    pair_private = 2.5 + startup_usd(LOW, 2, PRIVATE)
    assert tiers_of(plan) == {"a-wide": ONPREM, "b-pair": PRIVATE}
    assert set(plan.placement_of("a-wide").nodes) == {"n0", "n1"}
    assert plan.stats.objective == pytest.approx(wide_onprem + pair_private)
    assert plan.stats.objective <= run(snap, policy, method="greedy").plan.stats.objective + 1e-9


def test_cbc_backend_agrees_with_highs():
    for snap, expected in ((greedy_trap(), LARGE_ONPREM + SMALL_PUBLIC),
                           (snapshot([job(f"j{i}") for i in range(3)], TWO_NODES_AND_CLOUD), 77.0 + 1 / 3)):
        highs = run(snap, exact(make_policy())).plan
        cbc = run(snap, with_backend(exact(make_policy()), "cbc")).plan
        assert highs.stats.objective == pytest.approx(expected)
        assert cbc.stats.objective == pytest.approx(expected)
        assert sorted(tiers_of(cbc).values()) == sorted(tiers_of(highs).values())


def test_lp_bound_on_the_trap_is_the_relaxation_by_hand():
    # Savings against queueing: small on-prem 40, small public 27.333, large on-prem 16.
    # LP: max 40a + 27.333b + 16c  s.t. a + b <= 1, 4a + 8c <= 8 (GPUs), c <= 1 (one big job per node)
    # -> a = 1, c = 1/2: saving 48, bound = (48.667 + 32.267) - 48 = 32.933 <= 37.6.
    policy = exact(make_policy())
    bound = lp_lower_bound(greedy_trap(), policy)
    assert bound == pytest.approx(SMALL_QUEUE + LARGE_QUEUE - (SMALL_QUEUE - SMALL_ONPREM)
                                  - (LARGE_QUEUE - LARGE_ONPREM) / 2)
    assert bound <= run(greedy_trap(), policy).plan.stats.objective + 1e-6


def test_lp_bound_is_tight_when_the_relaxation_is_integral():
    snap = snapshot([job(f"j{i}") for i in range(3)], TWO_NODES_AND_CLOUD)
    policy = exact(make_policy())
    plan = run(snap, policy).plan
    bound = lp_lower_bound(snap, policy)
    assert bound <= plan.stats.objective + 1e-6
    assert bound == pytest.approx(plan.stats.objective, rel=1e-9)  # 77.333
    assert plan.stats.lower_bound == pytest.approx(plan.stats.objective, rel=1e-6)


def test_a_round_out_of_time_still_places_and_claims_no_bound_it_did_not_prove():
    # 40 jobs, 3 nodes and a cloud, and a time limit no solver meets: the round still answers, every job is placed
    # or has a reason, and a bound is only reported when a solve proved it (never above the plan's objective).
    jobs = [job(f"j{i}", gpus=1 + i % 4, priority=("low", "normal", "high")[i % 3], hours=0.5 + i % 7)
            for i in range(40)]
    snap = snapshot(jobs, [onprem(f"n{i}") for i in range(3)] + [public("p4d")])
    plan = run(snap, revise(make_policy(), solver={"time_limit_s": 1e-4})).plan
    assert placed_ids(plan) | queued_ids(plan) == {j.id for j in jobs}
    assert plan.stats.lower_bound is None or plan.stats.lower_bound <= plan.stats.objective + 1e-6
    check_plan(snap, make_policy(), plan)


def test_empty_and_infeasible_rounds():
    plan = run(snapshot([], [onprem("n1")]), make_policy()).plan
    assert plan.placements == () and plan.queued == () and plan.stats.objective == 0
    plan = run(snapshot([job("a", gpu="B200")], []), make_policy()).plan
    assert reason(plan, "a").code is ReasonCode.NO_OFFER_SELLS_GPU


# ---------------------------------------------------------------------------------------------- policies

def test_builtin_policies_load_and_differ_as_documented():
    cost, latency = builtin_data("cost-first"), builtin_data("latency-first")
    strip = lambda d: {k: v for k, v in d.items() if k not in ("name", "description", "weights")}  # noqa: E731
    assert strip(cost) == strip(latency)
    assert {k: v for k, v in cost["weights"].items() if k != "latency"} == \
        {k: v for k, v in latency["weights"].items() if k != "latency"}
    assert cost["weights"]["latency"] < latency["weights"]["latency"]
    for name in ("balanced", "cost-first", "latency-first", "green"):
        assert builtin_policy(name).name == name


def test_cost_first_waits_where_latency_first_bursts():
    # normal jobs, premium 16 + start-up: balanced (x1) waits (see the threshold test: 2.0 < 2.264),
    # latency-first (x4: an effective $8/GPU-h) bursts, cost-first (x0.25) waits.
    snap = snapshot([job(f"j{i}", priority="normal") for i in range(3)], TWO_NODES_AND_CLOUD)
    assert len(run(snap, builtin_policy("latency-first")).plan.queued) == 0
    assert len(run(snap, builtin_policy("cost-first")).plan.queued) == 1
    assert len(run(snap, builtin_policy("balanced")).plan.queued) == 1


# ---------------------------------------------------------------------------------------------- explanations

def test_every_queued_job_has_a_reason():
    policy = make_policy(quotas={"cv": {"public": 0}}, caps={"global": {"usd_per_hour": 40.0}})
    jobs = [job("resid", onprem_only=True),  # takes the node: it can go nowhere else
            job("resid-2", onprem_only=True),
            job("low", priority="low"),  # 4 + 16.07 = 20.07 of waiting < 32.53 on the cloud
            job("ok", tiers={PUBLIC}),  # $32/h of the $40/h cap
            job("cap", tiers={PUBLIC}, num_nodes=2),  # 2 x $32/h
            job("quota", team="cv", tiers={PUBLIC}),
            job("mem", gpu_memory_gb=500), job("gpu", gpu="TPU"), job("budget", budget_usd=1.0)]
    plan = run(snapshot(jobs, [onprem("n1"), public("p4d")]), policy).plan
    assert tiers_of(plan) == {"resid": ONPREM, "ok": PUBLIC}
    codes = {j: r.code for j, r in plan.queued}
    assert codes == {
        "resid-2": ReasonCode.RESIDENCY,
        "low": ReasonCode.WAITING_FOR_CAPACITY,
        "cap": ReasonCode.OVER_SURGE_CAP,
        "quota": ReasonCode.OVER_QUOTA,
        "mem": ReasonCode.INSUFFICIENT_GPU_MEMORY,
        "gpu": ReasonCode.NO_FEASIBLE_TARGET,
        "budget": ReasonCode.OVER_BUDGET,
    }
    assert plan.reason_of("quota").scope == "cv"
    for _, why in plan.queued:
        assert why.message.strip() and str(why).startswith(why.code.value)


def test_the_integer_program_leaves_the_repack_its_share_of_the_round(policy, monkeypatch):
    """Bounded by the clock, the class integer program gets at most MILP_SHARE of the time limit, however much
    the deadline leaves."""
    from placement.solve import engine, milp
    policy = policy.model_copy(update={"solver": policy.solver.model_copy(update={"work_limit": False})})
    limits = []
    real_solve = milp.solve

    def recording_solve(program, **kw):
        if kw.get("integer"):
            limits.append(kw["time_limit_s"])
        return real_solve(program, **kw)

    monkeypatch.setattr(milp, "solve", recording_solve)
    plan = run(greedy_trap(), policy).plan
    assert limits, plan.stats.status  # the trap's LP is fractional, so the integer program runs
    assert max(limits) <= engine.MILP_SHARE * policy.solver.time_limit_s + 1e-9
    assert tiers_of(plan) == {"small": PUBLIC, "large": ONPREM}
