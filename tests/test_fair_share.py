"""Fair sharing between teams and borrowing of idle quota (issue 22), on the real core and the real engine.

Fair sharing: a team's decayed share of owned GPU-hours over its weight lowers the value of its waiting, so at
equal priority the team that used less goes first (`placement/solve/fairshare.py`). Borrowing: a team may hold
another team's idle quota up to its borrowing limit, and the owner takes it back by preemption
(`placement/solve/borrowing.py`). The replay test drives the real Engine, store and reconciler over a simulated
day (`placement.replay`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from clouds.inventory import NodeSpec, load_inventory
from placement.model import ReasonCode, Running, Tier
from placement.replay.runner import replay_policy
from placement.replay.traces.common import TraceJob
from placement.replay.world import World, write_inventory
from placement.service import Engine, ServiceConfig
from placement.solve.decide import decide
from placement.solve.fairshare import UsageSpan, decayed_gpu_hours, share_factor, team_shares
from placement.solve.state import RunningJob, State
from placement.store import JobState
from policies.model import Caps, CapSpec, FairSharePolicy, PreemptionPolicy, TierQuota
from tests.solver_fixtures import builtin_policy, job, onprem
from tests.test_lookahead import Clock, TimedNodesDouble

BASE = builtin_policy("balanced")
NOW = 1_767_571_200.0
HOUR = 3600.0
FAIR = BASE.model_copy(update={"fair_share": FairSharePolicy(enabled=True, half_life_hours=24.0)})


# ---------------------------------------------------------------------------------------------- the decay

def test_an_hour_one_half_life_ago_weighs_half_an_hour_now() -> None:
    now_span = UsageSpan("a", 2.0, NOW - HOUR, NOW)
    old_span = UsageSpan("a", 2.0, NOW - 25 * HOUR, NOW - 24 * HOUR)
    fresh = decayed_gpu_hours(now_span, NOW, 24.0)
    assert fresh == pytest.approx(2.0 * 24.0 / math.log(2) * (1 - 2 ** (-1 / 24)))  # the integral, by hand
    assert 1.97 < fresh < 2.0  # an hour's decay barely shows
    assert decayed_gpu_hours(old_span, NOW, 24.0) == pytest.approx(fresh / 2)
    assert decayed_gpu_hours(UsageSpan("a", 2.0, NOW - HOUR), NOW, 24.0) == pytest.approx(fresh)  # still running
    assert decayed_gpu_hours(UsageSpan("a", 2.0, NOW + HOUR), NOW, 24.0) == 0.0  # not started yet


def test_shares_are_over_every_team_and_the_factor_halves_at_twice_the_weight() -> None:
    settings = FairSharePolicy(enabled=True, half_life_hours=1e9, weights={"a": 3.0})
    usage = [UsageSpan("a", 6.0, NOW - HOUR, NOW), UsageSpan("b", 2.0, NOW - HOUR, NOW)]
    shares = team_shares(usage, ["c"], NOW, settings)  # c has work now and no usage: it counts with weight 1
    assert sorted(shares) == ["a", "b", "c"]
    assert shares["a"].share == pytest.approx(0.75) and shares["a"].weight == pytest.approx(0.6)
    assert shares["b"].share == pytest.approx(0.25) and shares["b"].weight == pytest.approx(0.2)
    assert shares["c"].share == 0.0 and shares["c"].factor == 1.0 and not shares["c"].over
    assert shares["a"].factor == pytest.approx(2 ** (-0.15 / 0.6)) and shares["a"].over
    assert share_factor(0.5, 0.25) == pytest.approx(0.5) and share_factor(0.25, 0.25) == 1.0
    assert 0 < share_factor(1.0, 0.0) < 0.01


# ---------------------------------------------------------------------------------------------- one round

def _round(usage_a: float, usage_b: float, policy=FAIR):
    """One 8-GPU node free, an 8-GPU job of each team at equal priority, the teams' past GPU-hours as given."""
    jobs = (job("a-train", gpus=8, team="a", priority="normal", tiers={Tier.ONPREM}),
            job("b-train", gpus=8, team="b", priority="normal", tiers={Tier.ONPREM}))
    usage = (UsageSpan("a", usage_a, NOW - HOUR, NOW), UsageSpan("b", usage_b, NOW - HOUR, NOW))
    return decide(State(now=NOW, pending=jobs, offers=(onprem("n1", gpus=8),), usage=usage), policy)


@pytest.mark.parametrize("heavy, light", [("a", "b"), ("b", "a")])
def test_the_team_over_its_weight_waits_with_waiting_for_fair_share(heavy: str, light: str) -> None:
    decisions = _round(30.0 if heavy == "a" else 10.0, 10.0 if heavy == "a" else 30.0)
    assert [p.job_id for p in decisions.plan.placements] == [f"{light}-train"]
    why = decisions.plan.reason_of(f"{heavy}-train")
    assert why.code is ReasonCode.WAITING_FOR_FAIR_SHARE and why.scope == heavy
    assert why.message.startswith(f"team {heavy} share 75% > weight 50%")
    assert f"{light} goes first" in why.message and "no node like n1 has room" in why.message
    assert {s.team: round(s.share, 2) for s in decisions.shares} == {heavy: 0.75, light: 0.25}


def test_at_its_weight_a_team_waits_only_for_capacity() -> None:
    weighted = FAIR.model_copy(update={"fair_share": FairSharePolicy(enabled=True, weights={"a": 3.0})})
    decisions = _round(30.0, 10.0, weighted)  # a: 75% of the use, 75% of the weight
    assert len(decisions.plan.placements) == 1
    (waiting,) = [why for _, why in decisions.plan.queued]
    assert waiting.code is ReasonCode.WAITING_FOR_CAPACITY
    off = _round(30.0, 10.0, BASE)  # fair sharing off: no shares, no fair-share reason
    assert off.shares == () and all(w.code is ReasonCode.WAITING_FOR_CAPACITY for _, w in off.plan.queued)


# ---------------------------------------------------------------------------------------------- a replayed day

FLOOD_JOBS = 130  # per team: more than half a day of one 8-GPU node each


def _flood(team: str, submit_s: float) -> list[TraceJob]:
    spec = {"resources": {"accelerators": "A100:1"},
            "placement": {"team": team, "priority": "normal", "tiers": ["onprem"], "expected_hours": 1.0}}
    return [TraceJob(submit_s, {**spec, "name": f"{team}-{i}", "run": "python train.py"}, 1.0, f"{team}.yaml:{i}")
            for i in range(FLOOD_JOBS)]


def _gpu_hours_by_team(tmp_path: Path, policy) -> dict[str, float]:
    tmp_path.mkdir()
    path = tmp_path / "inventory.yaml"
    nodes = [NodeSpec(name="gpu", gpu="A100", gpus=8, gpu_memory_gb=80, cpus=96, memory_gb=1024,
                      price_per_hour=16.0)]
    base = load_inventory(Path(__file__).resolve().parents[1] / "configs" / "inventory.yaml")
    world = World(write_inventory(nodes, base, path), path, horizon_s=24 * HOUR)
    jobs = _flood("alpha", 0.0) + _flood("beta", 2 * HOUR)  # beta's flood comes two hours later
    run = replay_policy(world, jobs, policy, seed=1)
    end = world.epoch + world.horizon_s
    hours: dict[str, float] = {}
    for work in run.work:
        stop = min(work.ended(end) or end, end)
        team = run.jobs[work.job_id].spec["placement"]["team"]
        hours[team] = hours.get(team, 0.0) + work.gpus * max(stop - work.running_from, 0.0) / HOUR
    return hours


def test_two_teams_of_equal_weight_flooding_a_day_end_within_five_percent(tmp_path: Path) -> None:
    fair = _gpu_hours_by_team(tmp_path / "fair", FAIR)
    assert fair["alpha"] + fair["beta"] > 0.95 * 8 * 24  # the node was kept busy
    assert abs(fair["alpha"] - fair["beta"]) <= 0.05 * (fair["alpha"] + fair["beta"]) / 2, fair
    # The control: first come, first served gives alpha, two hours ahead, most of the day.
    unfair = _gpu_hours_by_team(tmp_path / "unfair", BASE)
    assert unfair["alpha"] > 1.5 * unfair["beta"], unfair


# ---------------------------------------------------------------------------------------------- borrowing

def _quotas(**teams: TierQuota):
    return BASE.model_copy(update={"quotas": teams, "preemption": PreemptionPolicy(enabled=True)})


def _borrowing_round(policy, jobs_of_b: int, running: tuple[Running, ...] = ()):
    """Two idle 8-GPU nodes; team a owns 8 GPUs of quota and runs nothing; team b asks for 4-GPU jobs."""
    jobs = tuple(job(f"b-{i}", gpus=4, team="b", priority="normal", tiers={Tier.ONPREM}) for i in range(jobs_of_b))
    state = State(now=NOW, pending=jobs, offers=(onprem("n1", gpus=8), onprem("n2", gpus=8)),
                  running=tuple(RunningJob(r) for r in running))
    return decide(state, policy).plan


def test_a_team_borrows_idle_quota_up_to_its_borrowing_limit_and_waits_past_it() -> None:
    policy = _quotas(a=TierQuota(onprem=8), b=TierQuota(onprem=8, borrowing_limit=4))
    plan = _borrowing_round(policy, 4)
    assert len(plan.placements) == 3  # its own 8 GPUs and 4 of a's idle quota
    (waiting,) = [why for _, why in plan.queued]
    assert waiting.code is ReasonCode.OVER_BORROWING_LIMIT and waiting.scope == "b"
    assert waiting.message == ("team b has 0 onprem GPUs of quota left, the job needs 4: it borrows 4 of other "
                               "teams' idle quota, 8 would pass its borrowing_limit of 4")


def test_a_lending_limit_bounds_what_the_cohort_lends() -> None:
    policy = _quotas(a=TierQuota(onprem=8, lending_limit=2), b=TierQuota(onprem=4, borrowing_limit=8))
    plan = _borrowing_round(policy, 3)
    assert len(plan.placements) == 1  # its own 4 GPUs; a lends 2, less than a 4-GPU job
    assert {why.code for _, why in plan.queued} == {ReasonCode.OVER_QUOTA}
    assert "the other teams lend 2 more idle onprem GPUs (2 lendable, 0 borrowed)" in plan.queued[0][1].message


def test_without_a_borrowing_limit_a_quota_is_a_wall() -> None:
    plan = _borrowing_round(_quotas(a=TierQuota(onprem=8), b=TierQuota(onprem=8)), 3)
    assert len(plan.placements) == 2
    (waiting,) = [why for _, why in plan.queued]
    assert waiting.code is ReasonCode.OVER_QUOTA
    assert waiting.message == "team b has 0 onprem GPUs of quota left, the job needs 4"


def _spec(name: str, team: str, gpus: int) -> dict:
    return {"name": name, "run": "python train.py", "resources": {"accelerators": f"A100:{gpus}"},
            "placement": {"team": team, "priority": "normal", "tiers": ["onprem"], "expected_hours": 10.0}}


def test_the_engine_reclaims_borrowed_gpus_in_the_round_after_the_owner_submits(tmp_path: Path) -> None:
    """One 8-GPU node, 4 GPUs of quota each: b borrows a's idle half, and a's job takes it back at once
    (b's borrowed job is no higher priority, younger than protect_running_minutes: reclaim is the owner's)."""
    clock = Clock()
    nodes = TimedNodesDouble(clock)
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, telemetry_interval_s=None)
    engine = Engine(config, {Tier.ONPREM: nodes}, clock=clock)
    engine.policy = engine.policy.model_copy(update={
        "preemption": PreemptionPolicy(enabled=True),
        "quotas": {"a": TierQuota(onprem=4), "b": TierQuota(onprem=4, borrowing_limit=4)}})
    first, second = engine.submit([{"source": f"b.yaml#{i}", "data": _spec(f"b{i}", "b", 4)} for i in (1, 2)])
    engine.round()
    engine.round()
    assert {engine.store.job(j).state for j in (first, second)} == {JobState.RUNNING}
    clock.now += 5 * 60
    (owned,) = engine.submit([{"source": "a.yaml#1", "data": _spec("a1", "a", 4)}])
    engine.round()
    assert engine.store.job(owned).state in (JobState.LAUNCHING, JobState.RUNNING)
    states = {j: engine.store.job(j) for j in (first, second)}
    (taken,) = [j for j, r in states.items() if r.state is JobState.PENDING]
    assert states[taken].reason_code == "Preempted"
    assert states[taken].reason.startswith(f"Preempted(by={owned}, gain=$")
    assert f"team a reclaims the on-prem quota it lent for {owned}" in states[taken].reason
    engine.round()  # the node is full again: the borrower waits, the owner keeps its quota
    assert engine.store.job(taken).state is JobState.PENDING
    assert engine.store.job(owned).state is JobState.RUNNING


def test_status_and_spend_of_a_team_show_its_share_against_its_weight(tmp_path: Path) -> None:
    """The engine reads the teams' runs from its store: a's hour on the node is all the usage there is."""
    clock = Clock()
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, telemetry_interval_s=None)
    engine = Engine(config, {Tier.ONPREM: TimedNodesDouble(clock)}, clock=clock)
    engine.policy = engine.policy.model_copy(update={
        "fair_share": FairSharePolicy(enabled=True), "caps": Caps(teams={"a": CapSpec(usd_per_hour=10.0)})})
    (first,) = engine.submit([{"source": "a.yaml#1", "data": _spec("a1", "a", 8)}])
    engine.round()
    engine.round()
    assert engine.store.job(first).state is JobState.RUNNING
    clock.now += HOUR
    engine.submit([{"source": "b.yaml#1", "data": _spec("b1", "b", 8)}])
    engine.round()
    (row,) = engine.status(team="a")
    share = row["fair_share"]
    assert share["share"] == 1.0 and share["weight"] == 0.5 and share["over"]
    assert share["summary"] == "team a share 100% > weight 50%" and 7.8 < share["gpu_hours"] < 8.0
    assert "fair_share" not in engine.status()[0]  # only a team's status carries it
    (spend,) = engine.spend(team="a")
    assert spend["fair_share"] == share


def _lent(job_id: str, team: str, elapsed: float) -> Running:
    return Running(job_id=job_id, team=team, tier=Tier.ONPREM, offer_id="onprem/n1", gpus=4.0, rate_per_hour=8.0,
                   name=job_id, nodes=("n1",), per_node=(4.0, 0.0, 0.0), elapsed_hours=elapsed, expected_hours=10.0,
                   priority="high", gpu="A100")


@pytest.mark.parametrize("team, reclaimed", [("a", ("b-new",)), ("c", ())])
def test_only_the_owner_reclaims_and_only_the_borrowed_work(team: str, reclaimed: tuple[str, ...]) -> None:
    """b holds both halves of a full node, the newer on a's idle quota, at a higher priority than the job and not
    preemptible: a's job takes back exactly that half; c, with no quota of its own, takes nothing."""
    policy = _quotas(a=TierQuota(onprem=4), b=TierQuota(onprem=4, borrowing_limit=4))
    state = State(now=NOW, pending=(job("owner", gpus=4, team=team, priority="normal", tiers={Tier.ONPREM}),),
                  offers=(onprem("n1", gpus=0, whole=(8.0, 96.0, 1024.0)),),
                  running=(RunningJob(_lent("b-old", "b", 3.0)), RunningJob(_lent("b-new", "b", 0.01))))
    plan = decide(state, policy).plan
    assert tuple(v for p in plan.preemptions for v in p.victims) == reclaimed
    if reclaimed:
        (preemption,) = plan.preemptions
        assert preemption.reclaim and preemption.placement.nodes == ("n1",)
        assert "team a reclaims the on-prem quota it lent for owner" in preemption.reason
    off = policy.model_copy(update={"preemption": PreemptionPolicy(enabled=False)})
    assert decide(state, off).plan.preemptions == ()  # reclaiming is preemption: off with it
