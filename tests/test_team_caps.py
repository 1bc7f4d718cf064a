"""A team's surge cap is used up by that team's running private and public work, not only the global cap.

Two levels: the pure core (the round's ledger charges running work to the team's cap as well as to the
global one), and the service (CapGuard's rates, `placement spend`, placement and downscaling all see
the team's running spend). The service test uses the real engine, store and reconciler, with SkyPilot's
SDK calls on `FakeSky` (tests/sky_double.py), as test_surge_caps.py does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from placement.model import ReasonCode, Tier
from placement.solve import solve
from placement.store import JobState
from policies import load_policy
from policies.model import Caps, CapSpec
from tests.solver_fixtures import job, make_policy, public, revise, running, snapshot
from tests.test_clouds_launch import World
from tests.test_surge_caps import public_job, run_all

P4D = public("p4d", price=32.0)  # 8 x A100, $32/h: a high-priority 8-GPU job bursts to it rather than wait


@pytest.fixture(params=[True, False], ids=["aggregate", "per-job"])
def policy(request):
    """Team ml may spend $40/h on private and public work; no global cap."""
    return make_policy(caps={"teams": {"ml": {"usd_per_hour": 40.0}}}, solver={"aggregate": request.param})


def plan_of(policy, runs):
    """A high-priority 8-GPU job of ml and one of cv, with only p4d to run on, beside `runs`."""
    jobs = [job("ml-1", team="ml"), job("cv-1", team="cv")]
    return solve(snapshot(jobs, [P4D], running=runs), policy)


@pytest.mark.parametrize("tier", [Tier.PUBLIC, Tier.PRIVATE])
def test_running_work_of_the_team_leaves_its_cap_only_the_rest(policy, tier):
    # ml runs $20/h: $20/h of its $40/h left, and p4d costs $32/h. cv has no cap and bursts.
    runs = [running("r", tier=tier, team="ml", rate=20.0, pool="pool-a" if tier is Tier.PRIVATE else None)]
    plan = plan_of(policy, runs)
    why = plan.reason_of("ml-1")
    assert why is not None and why.code is ReasonCode.OVER_SURGE_CAP and why.scope == "ml"
    assert "team ml spend cap has $20.00/h left" in why.message and "$32.00/h" in why.message
    assert plan.placement_of("cv-1").offer_id == P4D.id


def test_other_teams_and_onprem_work_leave_the_team_cap_alone(policy):
    # The same $20/h, run by cv, or run by ml on-prem, leaves ml its whole $40/h: ml-1 bursts.
    for runs in ([running("r", tier=Tier.PUBLIC, team="cv", rate=20.0)],
                 [running("r", tier=Tier.ONPREM, team="ml", rate=20.0)]):
        plan = plan_of(policy, runs)
        assert plan.placement_of("ml-1").offer_id == P4D.id, runs


def test_the_global_cap_counts_the_same_running_work_too(policy):
    # A $40/h global cap beside the team cap: ml's $20/h leaves $20/h globally as well, so cv waits too.
    policy = revise(policy, caps={"global": {"usd_per_hour": 40.0}, "teams": {"ml": {"usd_per_hour": 40.0}}})
    plan = plan_of(policy, [running("r", tier=Tier.PUBLIC, team="ml", rate=20.0)])
    assert {job_id: (r.code, r.scope) for job_id, r in plan.queued} == {
        "ml-1": (ReasonCode.OVER_SURGE_CAP, "global"), "cv-1": (ReasonCode.OVER_SURGE_CAP, "global")}


def team_capped(world: World, usd_per_hour: float) -> None:
    """Give the running engine a cap on team ml alone (no global cap)."""
    caps = Caps(teams={"ml": CapSpec(usd_per_hour=usd_per_hour)})
    world.engine.policy = load_policy("balanced").model_copy(update={"caps": caps})


def test_the_service_charges_a_teams_running_cloud_work_to_its_cap(tmp_path: Path) -> None:
    world = World(tmp_path)
    first = world.submit(public_job("critical"))  # team ml
    world.engine.round()
    run_all(world)
    assert world.job(first).state is JobState.RUNNING
    rate = world.job(first).rate_per_hour
    assert rate > 0

    # Room for half of another such machine: a second ml job waits on ml's cap, a cv job is placed.
    team_capped(world, usd_per_hour=rate * 1.5)
    second = world.submit(public_job("critical"))
    other = world.submit(public_job("critical") | {"placement": {"team": "cv", "priority": "critical",
                                                                 "tiers": ["public"], "expected_hours": 2}})
    world.engine.round()
    waiting = world.job(second)
    assert waiting.state is JobState.PENDING and waiting.reason_code == "OverSurgeCap"
    assert "team ml" in waiting.reason
    assert world.job(other).state is JobState.LAUNCHING and world.job(other).team == "cv"

    check = world.engine.caps.check(world.engine.policy, world.now)
    assert check.rates["ml"] == pytest.approx(rate)
    assert check.rates["global"] == pytest.approx(rate + world.job(other).rate_per_hour)
    (row,) = world.engine.spend(team="ml")
    assert row["usd_per_hour"] == pytest.approx(rate) and row["limit_usd_per_hour"] == pytest.approx(rate * 1.5)

    # Lowered below what ml runs: ml's work is stopped for ml's cap; cv's is not touched.
    team_capped(world, usd_per_hour=rate * 0.5)
    report = world.engine.round()
    assert [a.job_id for a in report.downscaled] == [first]
    stopped = world.job(first)
    assert stopped.state is JobState.PENDING and stopped.reason_code == "Downscaled" and "team ml" in stopped.reason
    assert world.job(other).state in (JobState.LAUNCHING, JobState.RUNNING)


def test_a_team_day_budget_counts_that_teams_spend_and_not_on_prem_spend(tmp_path: Path) -> None:
    from tests.test_surge_caps import StaticNodesDouble

    world = World(tmp_path)
    onprem = StaticNodesDouble()
    world.engine.providers[Tier.ONPREM] = onprem
    world.engine.reconciler.providers[Tier.ONPREM] = onprem
    cloud = world.submit(public_job("normal"))  # team ml, public
    local = world.submit(public_job("low") | {"placement": {"team": "cv", "priority": "low", "tiers": ["onprem"]}})
    world.engine.round()
    run_all(world)
    assert world.job(cloud).tier == "public" and world.job(local).tier == "onprem"
    world.now += 3600
    world.engine.round()
    spent = world.engine.store.spent(cloud)
    assert spent == pytest.approx(world.job(cloud).rate_per_hour, rel=1e-3)
    assert world.engine.store.spent(local) > 0  # on-prem work accrues too, but no cap counts it

    budget = spent * 2  # ml has spent half of it; cv nothing in the cloud
    caps = Caps(global_=CapSpec(usd_per_day=budget), teams={"ml": CapSpec(usd_per_day=budget),
                                                            "cv": CapSpec(usd_per_day=budget)})
    policy = load_policy("balanced").model_copy(update={"caps": caps})
    limits = world.engine.caps.check(policy, world.now).limits
    hours_left = (86400 - world.now % 86400) / 3600
    assert limits["ml"].usd_per_hour == pytest.approx((budget - spent) / hours_left, rel=1e-6)
    assert limits["global"].usd_per_hour == pytest.approx((budget - spent) / hours_left, rel=1e-6)
    assert limits["cv"].usd_per_hour == pytest.approx(budget / hours_left, rel=1e-6)
    assert "day budget" in limits["ml"].detail


def test_repricing_counts_the_records_it_changed(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(public_job("normal"))
    world.engine.round()
    run_all(world)
    rate = world.job(job_id).rate_per_hour
    assert world.engine.caps.reprice(world.now) == 0
    offers = world.engine.caps.offers
    offer_id = world.job(job_id).offer_id
    offers[offer_id] = dataclasses.replace(offers[offer_id], price_per_hour=offers[offer_id].price_per_hour * 2)
    assert world.engine.caps.reprice(world.now) == 1
    assert world.job(job_id).rate_per_hour == pytest.approx(rate * 2)
    assert world.engine.caps.reprice(world.now) == 0
