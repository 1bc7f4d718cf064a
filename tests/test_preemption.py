"""Preemption: a queued job displaces lower-priority on-prem work when its value beats theirs and their restart.

The core is real (PuLP/HiGHS). The engine tests drive the real Engine, store and reconciler on a simulated
clock with `TimedNodesDouble` (tests/test_lookahead.py), a double of the on-prem provider protocol: one
8xA100 node whose work ends after its expected hours.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from placement.model import Running, Tier
from placement.service import Engine, ServiceConfig
from placement.solve import solve
from placement.store import JobState
from policies.model import PreemptionPolicy
from tests.solver_fixtures import builtin_policy, check_plan, job, onprem, public, snapshot
from tests.test_lookahead import Clock, TimedNodesDouble

BASE = builtin_policy("balanced")
POLICY = BASE.model_copy(update={"preemption": PreemptionPolicy(enabled=True)})
RESTART_H = BASE.downscale.restart_hours


def node(name: str, free_gpus: float):
    return onprem(name, gpus=free_gpus, price=16.0, whole=(8.0, 96.0, 1024.0))


def work(job_id: str, *nodes: str, priority: str = "low", elapsed: float = 1.0, expected: float | None = 10.0,
         preemptible: bool = True, gpus_per_node: float = 8.0, restart_hours: float | None = None) -> Running:
    """On-prem work holding `gpus_per_node` on each of `nodes` (a gang when there are several)."""
    return Running(job_id=job_id, team="ml", tier=Tier.ONPREM, offer_id=f"onprem/{nodes[0]}",
                   gpus=gpus_per_node * len(nodes), rate_per_hour=2.0 * gpus_per_node * len(nodes), name=job_id,
                   nodes=nodes, per_node=(gpus_per_node, 0.0, 0.0), elapsed_hours=elapsed, expected_hours=expected,
                   priority=priority, gpu="A100", preemptible=preemptible, restart_hours=restart_hours)


def urgent(priority: str = "critical", hours: float = 2.0):
    return job("urgent", gpus=8, hours=hours, priority=priority, tiers=frozenset({Tier.ONPREM}))


def test_a_critical_job_displaces_low_work_on_a_full_node() -> None:
    snap = snapshot([urgent()], [node("n1", 0)], running=[work("low", "n1")])
    plan = solve(snap, POLICY)
    (preemption,) = plan.preemptions
    assert preemption.job_id == "urgent" and preemption.victims == ("low",) and preemption.nodes == ("n1",)
    # By hand: the delay it avoids (its reservation starts when the low job ends, in 9 h: 8 critical GPUs at
    # $100/GPU-h), less the low job's 8 GPUs at $0.50/GPU-h over the 2 h it is kept waiting and its restart.
    assert [r.start_hours for r in solve(snap, BASE).reservations] == [pytest.approx(9.0)]
    gain = 100 * 8 * 9 - 0.5 * 8 * (2 + RESTART_H)
    assert preemption.gain_usd == pytest.approx(gain)
    assert preemption.reason.startswith(f"Preempted(by=urgent, gain=${gain:,.2f})")
    assert preemption.placement.nodes == ("n1",) and preemption.placement.gpus_per_node == 8
    assert plan.reason_of("urgent") is None and plan.placements == ()
    # The control: the same round without preemption leaves the job waiting.
    assert solve(snap, BASE).preemptions == () and solve(snap, BASE).reason_of("urgent") is not None


@pytest.mark.parametrize("victim, why", [
    (work("fresh", "n1", elapsed=5 / 60), "within protect_running_minutes"),
    (work("pinned", "n1", preemptible=False), "preemptible: false"),
    (work("service", "n1", expected=None), "a service has no expected end"),
])
def test_protected_work_is_never_displaced(victim: Running, why: str) -> None:
    snap = snapshot([urgent()], [node("n1", 0)], running=[victim])
    assert solve(snap, POLICY).preemptions == (), why


def test_only_work_below_min_priority_gap_is_displaced() -> None:
    """high ($10/GPU-h) displaces normal ($2) with the default gap of 2, not another high job."""
    assert [p.victims for p in solve(snapshot([urgent("high")], [node("n1", 0)], running=[
        work("normal", "n1", priority="normal")]), POLICY).preemptions] == [("normal",)]
    snap = snapshot([urgent("high")], [node("n1", 0)], running=[work("peer", "n1", priority="high")])
    assert solve(snap, POLICY).preemptions == ()


def test_a_restart_worth_more_than_the_job_keeps_the_victim() -> None:
    """Normal work that checkpoints every 100 h: its restart costs 8 x $2 x 100 h, more than 1 h of high."""
    snap = snapshot([urgent("high", hours=1.0)], [node("n1", 0)],
                    running=[work("slow", "n1", priority="normal", restart_hours=100.0)])
    assert solve(snap, POLICY).preemptions == ()


def test_the_least_valuable_victim_goes_and_a_gang_only_whole() -> None:
    """n1 holds half a low gang (n1+n3), n2 a single low job: the single job is cheaper to displace."""
    running = [work("gang", "n1", "n3"), work("single", "n2")]
    snap = snapshot([urgent()], [node("n1", 0), node("n2", 0), node("n3", 0)], running=running)
    plan = solve(snap, POLICY)
    assert [(p.victims, p.nodes) for p in plan.preemptions] == [(("single",), ("n2",))]
    # With only the gang to displace, it is stopped whole: both its nodes are counted free, and a second
    # critical job takes the other half without displacing anything more.
    second = job("urgent2", gpus=8, hours=2.0, priority="critical", tiers=frozenset({Tier.ONPREM}))
    snap = snapshot([urgent(), second], [node("n1", 0), node("n3", 0)], running=[work("gang", "n1", "n3")])
    plan = solve(snap, POLICY)
    assert [(p.job_id, p.victims) for p in plan.preemptions] == [("urgent", ("gang",)), ("urgent2", ())]
    assert sorted(p.nodes[0] for p in plan.preemptions) == ["n1", "n3"]
    # A gang worth more than the job (16 GPUs of normal work with a 100-hour restart) is not stopped at all.
    snap = snapshot([urgent("high", hours=1.0)], [node("n1", 0), node("n3", 0)],
                    running=[work("gang", "n1", "n3", priority="normal", restart_hours=100.0)])
    assert solve(snap, POLICY).preemptions == ()


def test_max_victims_per_round_bounds_the_stops() -> None:
    policy = POLICY.model_copy(update={"preemption": PreemptionPolicy(enabled=True, max_victims_per_round=1)})
    jobs = [urgent(), job("urgent2", gpus=8, hours=2.0, priority="critical", tiers=frozenset({Tier.ONPREM}))]
    snap = snapshot(jobs, [node("n1", 0), node("n2", 0)], running=[work("a", "n1"), work("b", "n2")])
    assert [p.victims for p in solve(snap, policy).preemptions] == [("a",)]
    assert len(solve(snap, POLICY).preemptions) == 2


def test_a_preemptor_still_respects_its_quota() -> None:
    policy = POLICY.model_copy(update={"quotas": {"ml": {"onprem": 4}}})
    policy = type(POLICY).model_validate(policy.model_dump(by_alias=True))
    snap = snapshot([urgent()], [node("n1", 0)], running=[work("low", "n1", gpus_per_node=8)])
    plan = solve(snap, policy)
    assert plan.preemptions == ()
    check_plan(snap, policy, plan)


# ---------------------------------------------------------------------------------------------- the engine

def _spec(name: str, priority: str, hours: float, **placement) -> dict:
    return {"name": name, "run": "python train.py", "resources": {"accelerators": "A100:8"},
            "placement": {"team": "ml", "priority": priority, "tiers": ["onprem"], "expected_hours": hours,
                          **placement}}


def _engine(tmp_path: Path, clock: Clock) -> tuple[Engine, TimedNodesDouble]:
    nodes = TimedNodesDouble(clock)
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, telemetry_interval_s=None)
    engine = Engine(config, {Tier.ONPREM: nodes}, clock=clock)
    engine.policy = engine.policy.model_copy(update={"preemption": PreemptionPolicy(enabled=True)})
    return engine, nodes


def test_the_engine_stops_low_work_for_a_critical_job_and_requeues_it(tmp_path: Path) -> None:
    clock = Clock()
    engine, nodes = _engine(tmp_path, clock)
    (low,) = engine.submit([{"source": "a.yaml#1", "data": _spec("low", "low", 10.0)}])
    engine.round()
    engine.round()
    assert engine.store.job(low).state is JobState.RUNNING
    first_handle = engine.store.job(low).handle
    clock.now += 30 * 60
    (critical,) = engine.submit([{"source": "b.yaml#1", "data": _spec("critical", "critical", 2.0)}])
    engine.round()
    started = engine.store.job(critical)
    assert started.state in (JobState.LAUNCHING, JobState.RUNNING) and started.nodes == ("node-0",)
    stopped = engine.store.job(low)
    assert stopped.state is JobState.PENDING and stopped.reason_code == "Preempted"
    assert stopped.reason.startswith(f"Preempted(by={critical}, gain=$")
    (decision,) = [d for d in engine.store.decisions(low) if d.payload.get("preempted_by")]
    assert decision.payload["preempted_by"] == critical and decision.handle == first_handle
    assert decision.payload["grace_seconds"] == engine.policy.downscale.checkpoint_grace_seconds
    assert nodes.ends[first_handle] <= clock.now  # the low job's work was stopped
    engine.round()
    assert engine.store.job(low).state is JobState.PENDING  # the node is the critical job's now
    clock.now += 2 * 3600 + 60
    engine.round()
    engine.round()
    again = engine.store.job(low)
    assert again.state is JobState.RUNNING and again.attempt == 2  # requeued, its attempt counted


def test_the_engine_does_not_preempt_work_that_just_started(tmp_path: Path) -> None:
    clock = Clock()
    engine, _ = _engine(tmp_path, clock)
    (low,) = engine.submit([{"source": "a.yaml#1", "data": _spec("low", "low", 10.0)}])
    engine.round()
    engine.round()
    clock.now += 5 * 60  # less than the default protect_running_minutes (10)
    (critical,) = engine.submit([{"source": "b.yaml#1", "data": _spec("critical", "critical", 2.0)}])
    engine.round()
    assert engine.store.job(low).state is JobState.RUNNING
    assert engine.store.job(critical).state is JobState.PENDING


def test_non_preemptible_work_stays_in_the_engine(tmp_path: Path) -> None:
    clock = Clock()
    engine, _ = _engine(tmp_path, clock)
    (low,) = engine.submit([{"source": "a.yaml#1", "data": _spec("low", "low", 10.0, preemptible=False)}])
    engine.round()
    engine.round()
    clock.now += 30 * 60
    (critical,) = engine.submit([{"source": "b.yaml#1", "data": _spec("critical", "critical", 2.0)}])
    engine.round()
    assert engine.store.job(low).state is JobState.RUNNING
    assert engine.store.job(critical).state is JobState.PENDING


def test_a_victim_that_would_burst_counts_the_clouds_premium() -> None:
    """n2 frees in 3 h (the job's reservation: 3 h x 8 high GPUs x $10 = $240 of delay avoided); n1 holds normal
    work with 20 h left. Waiting out an 8-hour job costs it 8 GPUs x $2 x 8.25 h = $132: preempted. With a
    2-hour max_wait it would wait 2 h, then run its 20 h on the cloud at $32/h instead of $16/h: $320 more."""
    cloud = public("p4d", price=32.0)
    victim = dataclasses.replace(work("normal", "n1", priority="normal", elapsed=1.0, expected=21.0),
                                 rate_per_hour=16.0)
    pinned = work("pinned", "n2", elapsed=1.0, expected=4.0, preemptible=False)
    job_ = job("urgent", gpus=8, hours=8.0, priority="high", tiers=frozenset({Tier.ONPREM}))
    offers = [node("n1", 0), node("n2", 0), cloud]
    plan = solve(snapshot([job_], offers, running=[victim, pinned]), POLICY)
    assert [p.gain_usd for p in plan.preemptions] == [pytest.approx(240 - 2 * 8 * (8 + RESTART_H))]
    snap = snapshot([job_], offers, running=[dataclasses.replace(victim, max_wait_hours=2.0), pinned])
    assert solve(snap, POLICY).preemptions == ()
