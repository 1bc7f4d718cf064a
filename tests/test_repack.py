"""The repack step (placement/solve/repack.py): exact repacking of a few nodes after the packer.

Small instances where every plan can be enumerated: two identical on-prem
nodes, six one-GPU jobs whose memory makes the pairing matter, and a public
offer. The exhaustive optimum is computed here from the core's own per-job
costs (what is under test is the search, not the prices) with node capacity
checked per node. The round must reach it, obey every limit (`check_plan`),
and the repack must be what gets it there on some of them.
"""

from __future__ import annotations

import itertools
import random
import time

import pytest

from placement.model import Snapshot, Tier
from placement.solve import engine, repack
from placement.solve.candidates import build_classes, group_offers, job_objective, job_queue_cost
from policies.model import Policy
from tests.solver_fixtures import builtin_policy, check_plan, job, onprem, public, revise, snapshot

SEEDS = range(100)


def memory_bound_instance(seed: int, *, quota: float | None = None) -> tuple[Snapshot, Policy]:
    """Two 2-GPU nodes with 100 GB each and six 1-GPU jobs of 10 to 80 GB: memory decides who pairs with whom."""
    rng = random.Random(seed)
    nodes = [onprem(f"n{i}", gpus=2, vcpus=32, memory_gb=100, price=4.0) for i in range(2)]
    jobs = [job(f"j{k}", gpus=1, memory_gb=rng.choice([10, 30, 60, 80]), cpus=rng.choice([4, 8]),
                priority=rng.choice(["low", "normal", "high"]), hours=rng.choice([1, 2, 4]), team=rng.choice("ab"))
            for k in range(6)]
    policy = builtin_policy("balanced")
    if quota is not None:
        policy = revise(policy, quotas={"a": {"onprem": quota}})
    return snapshot(jobs, nodes + [public("p4", gpus=1, price=3.0)]), policy


def exhaustive_optimum(snap: Snapshot, policy: Policy) -> float:
    """Every job on every node, on the public offer, or queued; the cheapest plan whose nodes and quotas hold."""
    _, options = build_classes(snap.jobs, group_offers(snap), policy)
    nodes = {o.id: o for o in snap.offers if o.capacity is not None}
    quotas = {team: q.limit(Tier.ONPREM) for team, q in policy.quotas.items()}
    choices = []
    for j in snap.jobs:
        per_job = [(job_queue_cost(j, options[j.id], policy), None, None)]
        for option in options[j.id]:
            cost = job_objective(j, option, policy)
            members = [None] if option.group.node_count is None else [m.id for m in option.group.members]
            per_job += [(cost, node, option.demand) for node in members]
        choices.append(per_job)
    best = float("inf")
    for plan in itertools.product(*choices):
        used: dict[str, list[float]] = {n: [0.0, 0.0, 0.0] for n in nodes}
        team_gpus: dict[str, float] = {}
        for j, (_, node, demand) in zip(snap.jobs, plan):
            if node is not None:
                for k, amount in enumerate((demand.accelerator_count, demand.cpus, demand.memory_gb)):
                    used[node][k] += amount
                team_gpus[j.team] = team_gpus.get(j.team, 0.0) + demand.accelerator_count
        fits = all(u[0] <= n.gpu_count and u[1] <= n.vcpus and u[2] <= n.memory_gb
                   for n, u in ((nodes[i], used[i]) for i in nodes))
        within = all(limit is None or team_gpus.get(team, 0.0) <= limit for team, limit in quotas.items())
        if fits and within:
            best = min(best, sum(cost for cost, _, _ in plan))
    return best


@pytest.fixture
def without_repack(monkeypatch):
    monkeypatch.setattr(repack.Repacker, "run", lambda self, deadline, backend: 0)


def test_rounds_reach_the_exhaustive_optimum():
    methods = []
    for seed in SEEDS:
        snap, policy = memory_bound_instance(seed)
        plan = engine.solve(snap, policy)
        check_plan(snap, policy, plan)
        assert plan.stats.objective == pytest.approx(exhaustive_optimum(snap, policy), abs=1e-6), seed
        methods.append(plan.stats.method)
    assert any(method.endswith("repacks") for method in methods)  # the plan says when repacks were kept


def test_without_the_repack_some_rounds_fall_short(without_repack):
    """The same instances, packer only: it strands memory, so some plans cost more than the optimum."""
    short = [seed for seed in SEEDS
             if engine.solve(*memory_bound_instance(seed)).stats.objective
             > exhaustive_optimum(*memory_bound_instance(seed)) + 1e-6]
    assert len(short) >= 3, short


def test_repacks_keep_the_team_quota():
    """Team a may hold one on-prem GPU: repacks trade jobs between teams but never give a more."""
    for seed in range(12):
        snap, policy = memory_bound_instance(seed, quota=1)
        plan = engine.solve(snap, policy)
        check_plan(snap, policy, plan)
        assert plan.stats.objective == pytest.approx(exhaustive_optimum(snap, policy), abs=1e-6), seed


def test_same_input_same_plan_with_repacks():
    for seed in (7, 31, 55):
        snap, policy = memory_bound_instance(seed)
        first, second = engine.solve(snap, policy), engine.solve(snap, policy)
        assert [(p.job_id, p.nodes, p.offer_id) for p in first.placements] == \
               [(p.job_id, p.nodes, p.offer_id) for p in second.placements]


def test_the_round_times_its_repack(monkeypatch):
    """`repack_seconds` is the repack's own share of the round: a repack that takes 50 ms shows as at least that,
    within the round's total and outside its build and solve."""
    def slow_run(self, deadline, backend):
        time.sleep(0.05)
        return 0

    monkeypatch.setattr(repack.Repacker, "run", slow_run)
    stats = engine.solve(*memory_bound_instance(0)).stats
    assert stats.method.startswith("milp")
    assert 0.05 <= stats.repack_seconds <= stats.total_seconds - stats.build_seconds - stats.solve_seconds
