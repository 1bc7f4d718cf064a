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
from policies.model import FairSharePolicy, PreemptionPolicy, TierQuota
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
