"""CapGuard turns the store's running records into what the downscaler weighs (placement/caps.py).

Real SQLite store; offers are plain `Offer` values. Each field of `RunningWork` is worked out by hand
from the record: GPUs x nodes (or vCPUs / 8 for CPU-only work) x the priority's $ per GPU-hour is its
value, expected hours minus hours run is what is left, and a spot twin is the same offer id ending in
`/spot` instead of `/on-demand`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from placement.caps import CapGuard
from placement.model import Tier
from placement.solve.downscale import RunningWork, WorkKind
from placement.store import JobChange, JobState, NewJob, NewService, Store
from policies import load_policy
from tests.solver_fixtures import PRIORITY_RATE, public

NOW = 1_000_000.0
ON_DEMAND = dataclasses.replace(public("p4d", price=32.0), id="aws/us-east-1/p4d/on-demand")
SPOT = dataclasses.replace(public("p4d", price=12.0, spot=True), id="aws/us-east-1/p4d/spot")
LONELY = dataclasses.replace(public("g5", price=5.0, gpus=1), id="aws/us-east-1/g5/on-demand")  # no spot twin


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "p.db")
    yield store
    store.close()


def started(store: Store, job_id: str, *, offer_id: str, gpus: float, cpus: float, nodes: tuple[str, ...] = (),
            rate: float, tier: str = "public", ran_hours: float = 0.5) -> None:
    store.update_job(job_id, NOW, JobChange(state=JobState.RUNNING, attempt=1, tier=Tier(tier), target="x",
                                            offer_id=offer_id, handle=f"{job_id}-a1", nodes=nodes, gpus=gpus,
                                            cpus=cpus, memory_gb=8.0, rate_per_hour=rate,
                                            started_at=NOW - ran_hours * 3600), event="running")


def batch(store: Store, name: str, priority: str, placement: dict) -> str:
    (job_id,) = store.add_jobs([NewJob(name, name, "ml", priority, {"name": name, "placement": placement},
                                       f"{name}.yaml#1")], NOW, batch=name)
    return job_id


def test_running_records_become_the_work_the_downscaler_weighs(store):
    policy = load_policy("balanced")
    gpu_job = batch(store, "train", "high", {"expected_hours": 2, "spot_ok": True})
    started(store, gpu_job, offer_id=ON_DEMAND.id, gpus=8, cpus=16, rate=32.0)
    cpu_job = batch(store, "etl", "low", {"expected_hours": 0.25})
    started(store, cpu_job, offer_id=LONELY.id, gpus=0, cpus=4, rate=5.0, ran_hours=1.0)
    gang = batch(store, "gang", "normal", {})  # no expected hours: 1 h assumed; two on-prem nodes
    started(store, gang, offer_id="onprem/a100-0", gpus=2, cpus=4, nodes=("a100-0", "a100-1"), rate=4.0,
            tier="onprem", ran_hours=0.25)
    (pending,) = store.add_jobs([NewJob("wait", "wait", "ml", "low", {"name": "wait"}, "w.yaml#1")], NOW, "w")

    guard = CapGuard(store, {o.id: o for o in (ON_DEMAND, SPOT, LONELY)})
    work = {w.job_id: w for w in guard.running_work(policy, NOW, idle=frozenset({cpu_job}))}
    assert set(work) == {gpu_job, cpu_job, gang}  # the pending job holds nothing
    assert work[gpu_job] == RunningWork(
        job_id=gpu_job, team="ml", tier=Tier.PUBLIC, rate_per_hour=32.0, value_per_hour=PRIORITY_RATE["high"] * 8,
        remaining_hours=1.5, kind=WorkKind.BATCH, service=None, min_replicas=0, spot_ok=True,
        spot_rate_per_hour=12.0, idle=False)
    assert work[cpu_job] == RunningWork(
        job_id=cpu_job, team="ml", tier=Tier.PUBLIC, rate_per_hour=5.0, value_per_hour=PRIORITY_RATE["low"] * 4 / 8,
        remaining_hours=0.0, kind=WorkKind.BATCH, service=None, min_replicas=0, spot_ok=False,
        spot_rate_per_hour=None, idle=True)
    assert work[gang] == RunningWork(
        job_id=gang, team="ml", tier=Tier.ONPREM, rate_per_hour=4.0, value_per_hour=PRIORITY_RATE["normal"] * 2 * 2,
        remaining_hours=0.75, kind=WorkKind.BATCH, service=None, min_replicas=0, spot_ok=False,
        spot_rate_per_hour=None, idle=False)
    assert pending not in work


def test_a_service_replica_is_open_ended_and_never_moves_to_spot(store):
    policy = load_policy("balanced")
    spec = {"name": "serve", "placement": {"spot_ok": True, "expected_hours": 3}}
    (replica,) = store.add_jobs([NewJob("serve", "serve", "ml", "normal", spec, "s.yaml#1", service="serve")], NOW,
                                batch="s", services=[NewService("serve", "ml", "normal", spec, "s.yaml#1",
                                                                min_replicas=1, max_replicas=4, target_qps=10.0)])
    started(store, replica, offer_id=ON_DEMAND.id, gpus=1, cpus=4, rate=4.0)
    (service,) = store.services()
    (work,) = CapGuard(store, {o.id: o for o in (ON_DEMAND, SPOT)}).running_work(policy, NOW)
    assert (work.kind, work.service, work.min_replicas, work.remaining_hours) == (WorkKind.REPLICA, service.id, 1,
                                                                                  None)
    assert work.spot_ok is False and work.spot_rate_per_hour == 12.0
    assert work.value_per_hour == PRIORITY_RATE["normal"] * 1


def test_ended_work_is_neither_weighed_nor_repriced(store):
    policy = load_policy("balanced")
    job_id = batch(store, "train", "high", {"expected_hours": 2})
    started(store, job_id, offer_id=ON_DEMAND.id, gpus=8, cpus=16, rate=32.0)
    store.update_job(job_id, NOW, JobChange(state=JobState.SUCCEEDED, finished_at=NOW), event="succeeded")
    dearer = dataclasses.replace(ON_DEMAND, price_per_hour=64.0)
    guard = CapGuard(store, {dearer.id: dearer})
    assert guard.running_work(policy, NOW) == []
    assert guard.reprice(NOW) == 0 and store.job(job_id).rate_per_hour == 32.0


def test_repricing_a_share_of_a_shared_machine_counts_its_gpus_cpus_and_nodes(store):
    # A pool shape of 8 GPUs, 96 vCPUs, 1,024 GB at $20/h, raised to $40/h: 4 GPUs on each of 2 nodes pay
    # 2 x 4/8 x $40 = $40/h; a CPU-only job of 24 vCPUs and 64 GB pays max(24/96, 64/1024) x $40 = $10/h.
    from tests.solver_fixtures import private

    pool = private("pool-a", price=40.0)
    gang = batch(store, "gang", "normal", {})
    store.update_job(gang, NOW, JobChange(spec={"name": "gang", "num_nodes": 2}), event="x")
    started(store, gang, offer_id=pool.id, gpus=4, cpus=8, rate=20.0, tier="private")
    etl = batch(store, "etl", "low", {})
    started(store, etl, offer_id=pool.id, gpus=0, cpus=24, rate=5.0, tier="private")
    assert CapGuard(store, {pool.id: pool}).reprice(NOW) == 2
    assert store.job(gang).rate_per_hour == pytest.approx(40.0)
    assert store.job(etl).rate_per_hour == pytest.approx(10.0)
    assert "$20.0000/h -> $40.0000/h" in [d for _, k, d in store.events(gang) if k == "repriced"][0]
