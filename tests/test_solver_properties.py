"""Properties of the placement core on random small instances (hypothesis; the profile sets how many).

Instances: 1-4 on-prem nodes of 1-8 GPUs of one or two types, an optional
private pool with a GPU quota, 1-4 public offers (on demand and spot), 1-12
jobs of random shapes, priorities, teams, durations, spot settings, residency,
tiers and budgets, random surge caps and team quotas, and some running work.

- every plan (MILP per class, MILP per job, greedy) obeys every limit
  (`solver_fixtures.check_plan` re-derives them from the snapshot);
- on instances solved to optimality per job, cost-first never waits less and
  never spends more than latency-first;
- the plan's objective is never below the LP lower bound, and the MILP plan
  is never worse than the greedy one.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from placement.model import Demand, Job, Tier
from placement.solve import solve_round
from placement.solve.bound import lp_lower_bound
from policies.model import Policy

try:
    from tests.solver_fixtures import (A100, H100, builtin_data, check_plan, cpu_job, expected_rate, job, onprem,
                                       private, public, running, snapshot)
except ImportError:  # tests/ on sys.path instead of the project root
    from solver_fixtures import (A100, H100, builtin_data, check_plan, cpu_job, expected_rate, job, onprem, private,
                                 public, running, snapshot)

PRIORITIES = ("low", "normal", "high", "critical")
TEAMS = ("ml", "cv", "nlp")
EXACT = {"aggregate": False, "mip_rel_gap": 0.0, "time_limit_s": 20.0}

# How many examples, and whether they are drawn at random, comes from the Hypothesis profile
# (tests/hypothesis_profiles.py: `ci` by default, `explore`, `thorough`).
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------- strategies

def _maybe(draw, strategy, p_none: float = 0.5):
    """None with probability about `p_none`, else a draw from `strategy`."""
    return None if draw(st.integers(0, 9)) < round(10 * p_none) else draw(strategy)


@st.composite
def instances(draw, distinct_nodes: bool = False):
    """(snapshot, policy extras: caps and quotas).

    `distinct_nodes`: every on-prem node differs in price, so each is its own group; with whole or
    GPU-dividing (0.5, 0.25) requests and at least one CPU and GB per job, the per-job MILP is then exact.
    Otherwise nodes are often copies of the previous one (grouped) and multi-node jobs may use them.
    """
    gpu_types = draw(st.sampled_from([(A100,), (A100, H100)]))
    offers = []
    for i in range(draw(st.integers(1, 4))):
        if i and not distinct_nodes and draw(st.booleans()):
            prev = offers[-1]
            offers.append(onprem(f"n{i}", gpu=prev.gpu, gpus=prev.gpu_count, price=prev.price_per_hour,
                                 vcpus=prev.vcpus, memory_gb=prev.memory_gb, gpu_memory_gb=prev.gpu_memory_gb))
            continue
        gpus = draw(st.sampled_from([1, 2, 4, 8]))
        price = draw(st.sampled_from([1.5, 2.0, 2.5])) * gpus + (0.01 * i if distinct_nodes else 0.0)
        offers.append(onprem(f"n{i}", gpu=draw(st.sampled_from(gpu_types)), gpus=gpus, price=price,
                             vcpus=draw(st.sampled_from([8, 16, 32, 64])),
                             memory_gb=draw(st.sampled_from([64, 128, 256, 512])),
                             gpu_memory_gb=draw(st.sampled_from([40, 80]))))
    pool_quotas = {}
    if draw(st.integers(0, 2)):
        offers.append(private("pool-a", gpu=draw(st.sampled_from(gpu_types)), gpus=8,
                              price=8 * draw(st.sampled_from([2.5, 3.0, 3.5]))))
        quota = draw(st.sampled_from([None, 0, 4, 8, 16]))
        if quota is not None:
            pool_quotas["pool-a"] = quota
    for i in range(draw(st.integers(1, 4))):
        gpus = draw(st.sampled_from([1, 2, 4, 8]))
        od_price = gpus * draw(st.sampled_from([3.0, 4.0, 5.0]))
        region = draw(st.sampled_from(["us-east-1", "us-west-2"]))
        gpu = draw(st.sampled_from(gpu_types))
        spot = draw(st.sampled_from(["od", "spot", "both"]))
        if spot in ("od", "both"):
            offers.append(public(f"p{i}", gpu=gpu, gpus=gpus, price=od_price, region=region))
        if spot in ("spot", "both"):
            factor = draw(st.sampled_from([0.3, 0.6, 0.9]))
            offers.append(public(f"p{i}", gpu=gpu, gpus=gpus, price=od_price * factor, region=region, spot=True))
    if draw(st.booleans()):
        offers.append(public("c5", gpu=None, price=draw(st.sampled_from([0.5, 2.0])), vcpus=16, memory_gb=64))

    jobs = [draw(jobs_(f"j{i:02d}", gpu_types)) for i in range(draw(st.integers(1, 12)))]

    runs = []
    for i in range(draw(st.integers(0, 3))):
        tier = draw(st.sampled_from(list(Tier)))
        runs.append(running(f"r{i}", tier=tier, team=draw(st.sampled_from(TEAMS)),
                            rate=draw(st.sampled_from([1.0, 5.0, 20.0])), gpus=draw(st.sampled_from([1, 4, 8])),
                            pool="pool-a" if tier is Tier.PRIVATE else None))

    extras: dict = {}
    caps: dict = {}
    global_cap = _maybe(draw, st.sampled_from([10.0, 30.0, 60.0, 150.0]))
    if global_cap is not None:
        caps["global"] = {"usd_per_hour": global_cap}
    team_cap = _maybe(draw, st.sampled_from([5.0, 20.0, 50.0]), p_none=0.7)
    if team_cap is not None:
        caps["teams"] = {draw(st.sampled_from(TEAMS)): {"usd_per_hour": team_cap}}
    if caps:
        extras["caps"] = caps
    quotas: dict = {}
    for team in TEAMS:
        if draw(st.integers(0, 9)) < 3:
            tier = draw(st.sampled_from(["onprem", "private", "public"]))
            quotas[team] = {tier: draw(st.sampled_from([0, 2, 4, 8, 16]))}
    if quotas:
        extras["quotas"] = quotas
    return snapshot(jobs, offers, running=runs, pool_quotas=pool_quotas), extras


@st.composite
def jobs_(draw, job_id: str, gpu_types: tuple[str, ...]) -> Job:
    kind = draw(st.integers(0, 19))
    gpu = None if kind == 0 else ("B200" if kind == 1 else draw(st.sampled_from(gpu_types)))
    num_nodes = draw(st.sampled_from([1, 1, 1, 2]))
    if gpu is None:
        count = 0.0
    elif num_nodes == 1:
        count = draw(st.sampled_from([0.25, 0.5, 1, 2, 4, 8]))
    else:
        count = draw(st.sampled_from([1, 2, 4, 8]))
    onprem_only = draw(st.integers(0, 9)) == 0
    tiers = None
    if not onprem_only and draw(st.integers(0, 4)) == 0:
        tiers = draw(st.sets(st.sampled_from(list(Tier)), min_size=1))
    return job(
        job_id, gpu=gpu, gpus=count, num_nodes=num_nodes,
        cpus=draw(st.integers(1, 16)), memory_gb=draw(st.integers(1, 128)),
        priority=draw(st.sampled_from(PRIORITIES)), team=draw(st.sampled_from(TEAMS)),
        hours=draw(st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0])),
        spot_ok=draw(st.booleans()), use_spot=draw(st.sampled_from([None, None, None, True, False])),
        onprem_only=onprem_only, tiers=tiers,
        budget_usd=_maybe(draw, st.sampled_from([5.0, 20.0, 50.0, 200.0]), p_none=0.7),
        gpu_memory_gb=_maybe(draw, st.sampled_from([40.0, 80.0]), p_none=0.75),
        max_wait_hours=draw(st.sampled_from([None, None, 1.0])), waited_hours=draw(st.sampled_from([0.0, 0.5, 2.0])))


def solved_to_optimality(plan) -> bool:
    """HiGHS proved the plan optimal ("Optimal", or "Optimal (LP integral)"), or there was nothing to decide."""
    return plan.stats.num_classes == 0 or plan.stats.status.startswith("Optimal")


def policy_from(name: str, extras: dict, **solver) -> Policy:
    data = builtin_data(name)
    data.update(extras)
    data["solver"] = {**data["solver"], **solver}
    return Policy.model_validate(data)


# ---------------------------------------------------------------------------------------------- feasibility

@SETTINGS
@given(instance=instances(), name=st.sampled_from(["balanced", "cost-first", "latency-first", "green"]))
def test_every_plan_respects_every_limit(instance, name):
    snap, extras = instance
    for aggregate in (True, False):
        policy = policy_from(name, extras, aggregate=aggregate)
        for method in ("milp", "greedy"):
            result = solve_round(snap, policy, method=method)
            check_plan(snap, policy, result.plan)
            # Every job with a worthwhile option has a queue cost, and a job with none is never placed.
            for p in result.plan.placements:
                assert result.job_options[p.job_id]
                assert p.job_id in result.queue_costs


# ------------------------------------------------------------------------------------ cost-first vs latency-first

def _units(j: Job, demand: Demand, policy: Policy) -> float:
    per_node = demand.accelerator_count if demand.accelerator else demand.cpus / policy.cpus_per_gpu_equivalent
    return max(per_node, 0.1) * j.num_nodes


def _startup_minutes(policy: Policy, tier: Tier) -> float:
    return policy.startup_minutes.get(tier, 0.0)


def _fragmentation(policy: Policy, offer, demand, j) -> float:
    """The best-fit term: $ per GPU-hour x the job's GPUs x the share of the node's GPUs it leaves free."""
    if offer.tier is not Tier.ONPREM or demand.accelerator_count <= 0:
        return 0.0
    whole = offer.whole[0] if offer.whole else offer.gpu_count
    left = max(offer.gpu_count - demand.accelerator_count, 0.0)
    return (policy.fragmentation_usd_per_gpu_hour * demand.accelerator_count * left / whole * j.num_nodes
            * j.expected_hours)


def split_objective(snap, policy: Policy, result) -> tuple[float, float]:
    """(dollars, waiting) of a plan, with objective == dollars + latency x waiting.

    dollars: cost weight x rate x hours (x (1 + spot risk) on spot) of placed jobs, and their best-fit term
    on owned nodes, plus the same for the option a queued job waits for. waiting: priority $/GPU-h x
    GPUs x start-up hours of placed jobs, plus the queued jobs' delay (x overdue multiplier, and again for a
    high or critical job out of time before its max_wait) and eventual start-up. Derived from the policy's terms,
    then checked against the solver's own per-job objectives.
    """
    latency = policy.weights.latency
    assert policy.weights.carbon_usd_per_kg == 0 and not policy.tier_bias_usd_per_gpu_hour
    jobs = {j.id: j for j in snap.jobs}
    offers = {o.id: o for o in snap.offers}
    risk = policy.spot.risk
    dollars = waiting = 0.0
    for p in result.plan.placements:
        j = jobs[p.job_id]
        (demand,) = j.demands
        offer = offers[p.offer_id]
        d = policy.weights.cost * expected_rate(offer, demand, j.num_nodes) * j.expected_hours * (
            1 + (risk if offer.spot else 0.0)) + _fragmentation(policy, offer, demand, j)
        w = policy.priorities[j.priority] * _units(j, demand, policy) * _startup_minutes(policy, offer.tier) / 60
        assert d + latency * w == pytest.approx(p.objective, rel=1e-9, abs=1e-9)
        dollars += d
        waiting += w
    for job_id, _ in result.plan.queued:
        options = result.job_options[job_id]
        if not options:
            continue  # infeasible: no cost either way
        j = jobs[job_id]
        # A high or critical job with no time left before its max_wait (bursting takes the public start-up):
        # waiting is priced above every option, at the dearest dollars and slowest start-up of them all.
        burst_minutes = max((_startup_minutes(policy, t) for t in j.tiers if t is not Tier.ONPREM), default=0.0)
        deadline = (j.max_wait_hours is not None and j.priority in policy.strict_max_wait
                    and j.max_wait_hours - j.waited_hours - burst_minutes / 60 <= 1e-9)
        owned = [o for o in options if o.group.tier in (Tier.ONPREM, Tier.PRIVATE)] or options
        owned = options if deadline else owned
        priced = []
        for o in owned:
            offer = o.group.offer
            d = policy.weights.cost * expected_rate(offer, o.demand, j.num_nodes) * j.expected_hours * (
                1 + (risk if offer.spot else 0.0)) + _fragmentation(policy, offer, o.demand, j)
            minutes = _startup_minutes(policy, o.group.tier)
            w = policy.priorities[j.priority] * _units(j, o.demand, policy) * minutes / 60
            priced.append((d + latency * w, d, w))
        _, d, w = min(priced)
        overdue = j.max_wait_hours is not None and j.waited_hours >= j.max_wait_hours
        delay = policy.priorities[j.priority] * _units(j, j.demands[0], policy) * policy.expected_wait_hours * (
            policy.overdue_multiplier if overdue else 1.0)
        if deadline:
            d, w = max(p[1] for p in priced), max(p[2] for p in priced)
            delay *= policy.overdue_multiplier
        assert d + latency * (w + delay) == pytest.approx(result.queue_costs[job_id], rel=1e-9, abs=1e-9)
        dollars += d
        waiting += w + delay
    assert dollars + latency * waiting == pytest.approx(result.plan.stats.objective, rel=1e-9, abs=1e-9)
    return dollars, waiting


@SETTINGS
@given(instance=instances(distinct_nodes=True))
def test_cost_first_waits_no_less_and_spends_no_more_than_latency_first(instance):
    snap, extras = instance
    cost_policy = policy_from("cost-first", extras, **EXACT)
    latency_policy = policy_from("latency-first", extras, **EXACT)
    assert cost_policy.weights.latency < latency_policy.weights.latency
    cost = solve_round(snap, cost_policy)
    latency = solve_round(snap, latency_policy)
    assume(solved_to_optimality(cost.plan) and solved_to_optimality(latency.plan))
    cost_dollars, cost_waiting = split_objective(snap, cost_policy, cost)
    latency_dollars, latency_waiting = split_objective(snap, latency_policy, latency)
    tol = 1e-6 * (1 + abs(cost_dollars) + abs(latency_dollars) + abs(cost_waiting) + abs(latency_waiting))
    assert cost_waiting >= latency_waiting - tol
    assert cost_dollars <= latency_dollars + tol


# ---------------------------------------------------------------------------------------------- bounds and methods

@SETTINGS
@given(instance=instances(), name=st.sampled_from(["balanced", "cost-first", "latency-first"]))
def test_no_plan_beats_the_lp_bound(instance, name):
    snap, extras = instance
    policy = policy_from(name, extras)
    bound = lp_lower_bound(snap, policy)
    for aggregate in (True, False):
        plan_policy = policy_from(name, extras, aggregate=aggregate)
        for method in ("milp", "greedy"):
            plan = solve_round(snap, plan_policy, method=method).plan
            assert plan.stats.objective >= bound - 1e-6 * (1 + abs(bound)), (aggregate, method)


def mip_start_trap():
    """Three one-GPU nodes, eight CPU jobs and two quarter-GPU jobs; the LP leaves `j09` at 0.93 on `n1`.

    The engine starts HiGHS from the rounded-down LP point (`j09` queued, 0.867). HiGHS 1.16 carried that
    start into its presolved model at 0.742, below the LP bound (0.751), pruned everything against it and
    returned the start as "Optimal", so the plan missed the optimum (0.803: `j08` on `n0`, `j09` on `n1`).
    Found by this property (seeds 4 and 7, shrunk by hand); kept as an explicit example.
    """
    jobs = [cpu_job(f"j0{i}", cpus=1, priority="low", hours=0.5) for i in range(6)]
    jobs += [cpu_job("j06", cpus=3, priority="low", hours=0.5), cpu_job("j07", cpus=5, priority="normal", hours=0.5),
             job("j08", gpus=0.25, cpus=4, priority="low", hours=0.5),
             job("j09", gpus=0.25, cpus=15, priority="low", hours=0.5)]
    offers = [onprem(name, gpus=1, price=price, vcpus=vcpus, memory_gb=64, gpu_memory_gb=40)
              for name, price, vcpus in (("n0", 2.0, 8), ("n1", 1.51, 32), ("n2", 2.02, 8))]
    return snapshot(jobs, offers), {}


@SETTINGS
@example(instance=mip_start_trap(), name="balanced")
@given(instance=instances(distinct_nodes=True), name=st.sampled_from(["balanced", "cost-first", "latency-first"]))
def test_exact_milp_is_never_worse_than_greedy(instance, name):
    snap, extras = instance
    policy = policy_from(name, extras, **EXACT)
    milp = solve_round(snap, policy).plan
    greedy = solve_round(snap, policy, method="greedy").plan
    assume(solved_to_optimality(milp))
    assert milp.stats.objective <= greedy.stats.objective + 1e-6 * (1 + abs(greedy.stats.objective))
    # Solved to optimality per job, the plan is the model's optimum: it meets the solver's own bound.
    if milp.stats.num_classes:
        assert milp.stats.objective == pytest.approx(milp.stats.lower_bound, rel=1e-6, abs=1e-6)


def aggregation_trap():
    """Two identical 2-GPU nodes (one group), a private pool; a 2-node x 1-GPU residency job and a 2-GPU job.

    The group's GPU row (1*2 + 2 <= 4) lets the class model put both on-prem, but no packing can: the wide
    job needs a GPU on each node, the other job both GPUs of one node. Realised as is, the 2-GPU job is packed
    first and the residency job spills to the queue (5.033); the greedy, serving `a-wide` first by id, puts it
    on both nodes and the 2-GPU job in the pool (2.017 + 2.55 = 4.567). Found by this property; kept as an
    explicit example.
    """
    jobs = [job("a-wide", gpus=1, num_nodes=2, priority="low", hours=0.5, onprem_only=True),
            job("b-pair", gpus=2, priority="low", hours=0.5)]
    offers = [onprem("n0", gpus=2, price=4.0), onprem("n1", gpus=2, price=4.0), private(price=20.0)]
    return snapshot(jobs, offers), {}


@SETTINGS
@example(instance=aggregation_trap(), name="balanced")
@given(instance=instances(), name=st.sampled_from(["balanced", "cost-first", "latency-first"]))
def test_default_milp_is_never_worse_than_greedy(instance, name):
    """The default (aggregated) MILP plan ends with the same greedy fill, so it should not lose to the greedy."""
    snap, extras = instance
    policy = policy_from(name, extras, mip_rel_gap=0.0)
    milp = solve_round(snap, policy).plan
    greedy = solve_round(snap, policy, method="greedy").plan
    check_plan(snap, policy, milp)
    assert milp.stats.objective <= greedy.stats.objective + 1e-6 * (1 + abs(greedy.stats.objective))
