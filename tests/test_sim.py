"""The simulated cloud: work moves through its states on the simulated clock, alone and under the real engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from clouds.base import LaunchRequest, WorkStatus
from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalogs
from placement.model import Placement, Tier
from placement.service import Engine, ServiceConfig
from placement.sim import SimulatedCloud
from placement.store import JobState

OFFERS = [o for o in load_catalogs([SHIPPED_CATALOG_DIR]).offers
          if o.cloud == "aws" and o.region == "us-east-1" and o.gpu == "T4"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def request(handle: str, spec: dict) -> LaunchRequest:
    offer = OFFERS[0]
    placement = Placement(job_id=handle, offer_id=offer.id, tier=Tier.PUBLIC, provider=offer.provider,
                          target=offer.name, gpu=offer.gpu, gpus_per_node=1, num_nodes=1, spot=False,
                          rate_per_hour=offer.price_per_hour, expected_cost=0.0, objective=0.0)
    return LaunchRequest(handle=handle, job_id=handle, attempt=1, placement=placement, spec=spec, offer=offer)


def status(cloud: SimulatedCloud, handle: str) -> WorkStatus:
    return cloud.observe([handle])[handle].status


def test_batch_work_starts_after_the_startup_delay_and_ends_after_its_expected_hours() -> None:
    clock = Clock()
    cloud = SimulatedCloud(OFFERS, clock, startup_s=120)
    cloud.launch(request("job-a1", {"placement": {"expected_hours": 0.5}}))
    assert status(cloud, "job-a1") is WorkStatus.STARTING
    clock.now += 119
    assert status(cloud, "job-a1") is WorkStatus.STARTING
    clock.now += 1
    assert status(cloud, "job-a1") is WorkStatus.RUNNING and cloud.running() == ["job-a1"]
    clock.now += 1800 - 1
    assert status(cloud, "job-a1") is WorkStatus.RUNNING
    clock.now += 1
    assert status(cloud, "job-a1") is WorkStatus.SUCCEEDED and cloud.running() == []
    assert status(cloud, "unknown") is WorkStatus.MISSING


def test_a_replica_runs_until_terminated_and_a_repeated_launch_is_a_no_op() -> None:
    clock = Clock()
    cloud = SimulatedCloud(OFFERS, clock, startup_s=0)
    spec = {"service": {"replica_policy": {"min_replicas": 1}}, "placement": {"expected_hours": 0.1}}
    cloud.launch(request("svc-replica-1", spec))
    clock.now += 30 * 86400
    cloud.launch(request("svc-replica-1", spec))  # replayed after a restart: not started again
    assert status(cloud, "svc-replica-1") is WorkStatus.RUNNING and cloud.launched == ["svc-replica-1"]
    cloud.terminate("svc-replica-1", grace_seconds=120)
    cloud.terminate("svc-replica-1")
    assert status(cloud, "svc-replica-1") is WorkStatus.STOPPED
    assert cloud.terminated == [("svc-replica-1", 120)]


def test_set_price_changes_the_listed_offer_and_rejects_unknown_ones() -> None:
    cloud = SimulatedCloud(OFFERS, Clock())
    offer = OFFERS[0]
    raised = cloud.set_price(offer.id, offer.price_per_hour * 2)
    listed = {o.id: o for o in cloud.offers({})}
    assert listed[offer.id].price_per_hour == pytest.approx(offer.price_per_hour * 2) == raised.price_per_hour
    with pytest.raises(ValueError, match="no offer 'nope'"):
        cloud.set_price("nope", 1.0)
    with pytest.raises(ValueError, match="startup_s"):
        SimulatedCloud(OFFERS, Clock(), startup_s=-1)


def test_the_engine_runs_charges_and_finishes_a_job_on_the_simulated_cloud(tmp_path: Path) -> None:
    clock = Clock()
    cloud = SimulatedCloud(OFFERS, clock, startup_s=60)
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None,
                           catalogs=(str(SHIPPED_CATALOG_DIR),))
    engine = Engine(config, {Tier.PUBLIC: cloud}, clock=clock)
    spec = {"name": "train", "run": "python train.py", "resources": {"accelerators": "T4:1"},
            "placement": {"team": "ml", "priority": "normal", "tiers": ["public"], "expected_hours": 1}}
    (job_id,) = engine.submit([{"source": "train.yaml#1", "data": spec}])
    engine.round()
    assert engine.store.job(job_id).state is JobState.LAUNCHING and len(cloud.launched) == 1
    clock.now += 60
    engine.round()
    record = engine.store.job(job_id)
    assert record.state is JobState.RUNNING and record.offer_id in {o.id for o in OFFERS}
    clock.now += 3600
    engine.round()
    assert engine.store.job(job_id).state is JobState.SUCCEEDED
    assert engine.store.spent(job_id) == pytest.approx(record.rate_per_hour)
    assert cloud.terminated == [(record.handle, 0.0)]  # the engine stops paying once the end is seen
