"""A service SIGKILLed and restarted by Ray finds its telemetry agents again and places work at once."""

from __future__ import annotations

import os
import signal
import time
import uuid

import ray

from placement.actor import NAMESPACE, PlacementService
from placement.service import ServiceConfig
from placement.store import NewJob, Store

JOB = {"name": "after-restart", "resources": {"cpus": 1}, "run": "true",
       "placement": {"team": "platform", "tiers": ["onprem"], "expected_hours": 0.01}}


def _agents(uid: str) -> dict[str, str]:
    prefix = f"placement-telemetry-{uid}-"
    return {a["name"]: ray.get_actor(a["name"], namespace=NAMESPACE)._actor_id.hex()
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == NAMESPACE and a["name"].startswith(prefix)}


def _answering(service, timeout_s: float = 60.0) -> int:
    deadline = time.time() + timeout_s
    while True:
        try:
            return ray.get(service.pid.remote(), timeout=5)
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
            if time.time() > deadline:
                raise


def test_a_restarted_service_keeps_its_agents_and_rounds_at_once(ray_cluster, tmp_path):
    path = tmp_path / "p.db"
    # Rounds every 10 minutes: only the round a restart runs at once can place the job within the test.
    config = ServiceConfig(store_path=str(path), round_interval_s=600.0, catalogs=(), telemetry_interval_s=5.0,
                           dashboard_url=ray_cluster.webui_url)
    service = PlacementService.options(name=f"churn-{uuid.uuid4().hex[:6]}", namespace="placement-tests",
                                       lifetime="detached").remote(config)
    try:
        pid = _answering(service)
        uid = Store(path).uid
        deadline = time.time() + 60
        while len(before := _agents(uid)) < 3 and time.time() < deadline:  # one per GPU node of the cluster
            time.sleep(0.5)
        assert len(before) == 3, before

        store = Store(path)  # a job arrives while the service is down: no submit wakes it
        os.kill(pid, signal.SIGKILL)
        [job_id] = store.add_jobs([NewJob(id="after-restart", name="after-restart", team="platform",
                                          priority="normal", spec=JOB, source="t.yaml#1")], time.time(), "b1")
        assert _answering(service) != pid
        deadline = time.time() + 60
        while store.job(job_id).state.value == "pending" and time.time() < deadline:
            time.sleep(0.5)
        assert store.job(job_id).state.value in ("launching", "running", "succeeded"), store.job(job_id)
        assert _agents(uid) == before  # the same actors, found again by name
    finally:
        ray.get(service.stop_agents.remote(), timeout=30)
        ray.kill(service, no_restart=True)
    assert _agents(uid) == {}
