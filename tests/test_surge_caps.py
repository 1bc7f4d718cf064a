"""Surge caps in the running service: placement under the caps, and downscaling when running spend exceeds one.

The engine, store, reconciler, SkyPilot provider and policies are real; SkyPilot's SDK calls meet
`FakeSky` (tests/sky_double.py), and the on-prem tier is `StaticNodesDouble`, a double of the
provider protocol with one 8-GPU node (Ray's own provider is tested in test_service.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clouds.base import LaunchRequest, Observation, WorkStatus
from placement.model import Offer, Sharing, Tier
from placement.store import JobState
from policies import load_policy
from policies.model import Caps, CapSpec
from tests.sky_double import FakeSky
from tests.test_clouds_launch import World, spec


class StaticNodesDouble:
    """A provider-protocol double for on-prem: one node, work runs as soon as it is launched."""

    tier = Tier.ONPREM
    name = "onprem"

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.terminated: list[str] = []

    def offers(self, reserved):
        held = reserved.get("node-0", (0.0, 0.0, 0.0))
        return [Offer(id="onprem/node-0", tier=Tier.ONPREM, provider="onprem", name="node-0", sharing=Sharing.SHARED,
                      gpu="A100", gpu_count=8 - held[0], gpu_memory_gb=40, vcpus=96 - held[1],
                      memory_gb=1000 - held[2], price_per_hour=8.0)]

    def launch(self, request: LaunchRequest) -> None:
        self.running.add(request.handle)

    def observe(self, handles):
        return {h: Observation(WorkStatus.RUNNING if h in self.running else WorkStatus.MISSING) for h in handles}

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        self.terminated.append(handle)

    def logs(self, handle: str) -> str:
        return ""


def capped(world: World, usd_per_hour: float | None = None, **budgets: float) -> None:
    """Give the running engine a global cap (an operator lowering it, or a policy rollout)."""
    cap = CapSpec(usd_per_hour=usd_per_hour, **budgets)
    world.engine.policy = load_policy("balanced").model_copy(update={"caps": Caps(global_=cap)})


def run_all(world: World) -> None:
    for record in world.engine.store.jobs(states=[JobState.LAUNCHING]):
        if record.tier != "onprem":
            world.sky.provision(sky_name_of(record))
    world.engine.round()


def sky_name_of(record) -> str:
    from clouds.sky_tasks import sky_name

    return sky_name(record.handle)


def public_job(priority: str, gpus: int = 8) -> dict:
    data = spec(priority=priority)
    data["resources"] = {"accelerators": f"A100:{gpus}"}
    return data


def test_a_rate_cap_keeps_new_work_queued_with_the_reason(tmp_path: Path) -> None:
    world = World(tmp_path)
    capped(world, usd_per_hour=10.0)  # one 8xA100 machine costs more than $10/h anywhere
    job_id = world.submit(public_job("critical"))
    world.engine.round()
    record = world.job(job_id)
    assert record.state is JobState.PENDING and record.reason_code == "OverSurgeCap"
    assert world.sky.launches() == []


def test_lowering_a_cap_stops_the_least_valuable_work_first(tmp_path: Path) -> None:
    world = World(tmp_path)
    low = world.submit(public_job("low"))
    high = world.submit(public_job("critical"))
    world.engine.round()
    run_all(world)
    assert {world.job(low).state, world.job(high).state} == {JobState.RUNNING}
    rates = {j: world.job(j).rate_per_hour for j in (low, high)}
    capped(world, usd_per_hour=max(rates.values()) * 1.2)  # room for one of the two
    report = world.engine.round()
    assert [a.job_id for a in report.downscaled] == [low]
    assert world.job(high).state is JobState.RUNNING
    stopped = world.job(low)
    assert stopped.state is JobState.PENDING and stopped.reason_code == "Downscaled"
    assert "rate cap" in stopped.reason and "global" in stopped.reason
    (down,) = world.sky.called("down")
    assert down.args == (sky_name_of(world.engine.store.decisions(low)[0]),) and down.kwargs["graceful"] is True
    assert world.engine.store.decisions(low)[-1].payload["downscale"] == "stop"
    # Under the cap now, and the stopped job is not placed again above it.
    world.engine.round()
    assert world.job(low).state is JobState.PENDING and world.job(low).reason_code == "OverSurgeCap"
    assert len(world.sky.called("down")) == 1


def test_a_price_increase_of_running_work_triggers_downscaling(tmp_path: Path) -> None:
    world = World(tmp_path)
    low = world.submit(public_job("low"))
    high = world.submit(public_job("critical"))
    world.engine.round()
    run_all(world)
    total = sum(world.job(j).rate_per_hour for j in (low, high))
    capped(world, usd_per_hour=total * 1.1)
    assert world.engine.round().downscaled == ()
    offer_id = world.job(low).offer_id
    offers = world.engine.caps.offers
    offers[offer_id] = dataclasses.replace(offers[offer_id], price_per_hour=offers[offer_id].price_per_hour * 3)
    report = world.engine.round()
    assert [a.job_id for a in report.downscaled] == [low] or world.job(high).offer_id == offer_id
    assert any(kind == "repriced" for _, kind, _ in world.engine.store.events(low))
    assert report.spend_rate_by_scope.get("global", 0.0) <= report.limit_by_scope["global"] + 1e-6


def test_a_day_budget_becomes_a_rate_and_downscales_once_spent(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(public_job("normal"))
    world.engine.round()
    run_all(world)
    rate = world.job(job_id).rate_per_hour
    world.now += 3600
    world.engine.round()
    spent = world.engine.store.spent(job_id)
    assert spent == pytest.approx(rate, rel=1e-3)
    capped(world, usd_per_day=spent * 1.01)  # the day's budget is all but gone
    report = world.engine.round()
    assert [a.job_id for a in report.downscaled] == [job_id]
    assert "day budget" in world.job(job_id).reason
    (row,) = [r for r in world.engine.spend() if r["scope"] == "global"]
    assert row["limit_usd_per_hour"] < rate and row["usd_per_hour"] == 0 and "day budget" in row["binding"]


def test_onprem_work_is_never_stopped_for_a_cloud_cap(tmp_path: Path) -> None:
    world = World(tmp_path)
    onprem = StaticNodesDouble()
    world.engine.providers[Tier.ONPREM] = onprem
    world.engine.reconciler.providers[Tier.ONPREM] = onprem
    local = world.submit(public_job("low") | {"placement": {"team": "ml", "priority": "low", "tiers": ["onprem"]}})
    cloud = world.submit(public_job("low"))
    world.engine.round()
    run_all(world)
    assert world.job(local).tier == "onprem" and world.job(cloud).tier == "public"
    capped(world, usd_per_hour=0.0)  # no cloud spend at all
    report = world.engine.round()
    assert [a.job_id for a in report.downscaled] == [cloud]
    assert world.job(local).state is JobState.RUNNING and onprem.terminated == []


def test_a_restart_in_the_middle_of_a_downscale_carries_it_through_once(tmp_path: Path, monkeypatch) -> None:
    world = World(tmp_path)
    job_id = world.submit(public_job("low"))
    world.engine.round()
    run_all(world)
    name = sky_name_of(world.job(job_id))
    capped(world, usd_per_hour=1.0)
    original = FakeSky.down
    monkeypatch.setattr(FakeSky, "down", lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # killed after recording the action, before SkyPilot tore down
        world.engine.round()
    assert world.job(job_id).state is JobState.PENDING and world.engine.store.open_decisions()
    monkeypatch.setattr(FakeSky, "down", original)
    world.engine = world.start()  # resume() finishes the recorded teardown
    assert [c.args for c in world.sky.called("down")] == [(name,)]
    assert world.engine.store.open_decisions() == []
    world.engine.policy = load_policy("balanced").model_copy(update={"caps": Caps(global_=CapSpec(usd_per_hour=1.0))})
    world.engine.round()
    world.engine.round()
    assert len(world.sky.called("down")) == 1 and len(world.sky.launches()) == 1
