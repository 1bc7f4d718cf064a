"""The service end to end on the shared simulated cluster: real Ray jobs on the nodes the plan chose."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
import ray

from placement.actor import PlacementService, dashboard_http
from placement.service import ServiceConfig

T4_JOB = {"name": "t4-echo", "resources": {"accelerators": "T4:1"},
          "run": 'echo "gpus=$CUDA_VISIBLE_DEVICES job=$PLACEMENT_JOB_ID"',
          "placement": {"team": "vision", "priority": "high", "tiers": ["onprem"], "expected_hours": 0.1}}
CPU_JOB = {"name": "cpu-echo", "resources": {"cpus": 1},
           "run": 'echo "gpus=[$CUDA_VISIBLE_DEVICES]"',
           "placement": {"team": "recsys", "tiers": ["onprem"], "expected_hours": 0.1}}
SLEEPER = {"name": "sleeper", "resources": {"accelerators": "A100-80GB:8"}, "run": "sleep 120",
           "placement": {"team": "nlp", "priority": "critical", "tiers": ["onprem"], "expected_hours": 2}}


def docs(*specs: dict) -> list[dict]:
    return [{"source": f"test.yaml#{i + 1}", "data": spec} for i, spec in enumerate(specs)]


@pytest.fixture(scope="module")
def service(ray_cluster, tmp_path_factory):
    config = ServiceConfig(store_path=str(tmp_path_factory.mktemp("svc") / "placement.db"),
                           round_interval_s=None, catalogs=(), dashboard_url=ray_cluster.webui_url)
    actor = PlacementService.options(name=f"svc-{uuid.uuid4().hex[:6]}", namespace="placement-tests",
                                     lifetime="detached").remote(config)
    yield actor
    ray.kill(actor, no_restart=True)


def rounds_until(service, job_id: str, states: set[str], timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while True:
        ray.get(service.run_round.remote(), timeout=60)
        row = ray.get(service.status.remote(job_id), timeout=30)[0]
        if row["state"] in states or time.time() > deadline:
            return row
        time.sleep(0.5)


def ray_job(ray_cluster, handle: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(dashboard_http(ray_cluster.webui_url)).get_job_info(handle)


def test_job_runs_on_the_node_the_plan_chose_and_finishes(ray_cluster, service):
    [job_id] = ray.get(service.submit.remote(docs(T4_JOB), uuid.uuid4().hex))
    row = rounds_until(service, job_id, {"succeeded", "failed"})
    assert row["state"] == "succeeded", row
    assert row["tier"] == "onprem" and row["nodes"] == ["t4-0"]
    info = ray_job(ray_cluster, row["handle"])
    assert info.driver_node_id == ray_cluster.simulated["t4-0"].node_id
    assert info.metadata["team"] == "vision" and info.metadata["job_id"] == job_id
    assert info.metadata["job_name"] == "t4-echo"  # the Jobs tab's Name column
    assert "put it here: 1 T4 GPU(s) on t4-0" in info.metadata["placed_because"]
    logs = ray.get(service.logs.remote(job_id))
    assert f"job={job_id}" in logs
    visible = logs.split("gpus=")[1].split()[0]
    assert len(visible.split(",")) == 1  # exactly the one GPU it asked for


def test_a_job_without_gpus_sees_none(ray_cluster, service):
    [job_id] = ray.get(service.submit.remote(docs(CPU_JOB), uuid.uuid4().hex))
    row = rounds_until(service, job_id, {"succeeded", "failed"})
    assert row["state"] == "succeeded", row
    assert "gpus=[]" in ray.get(service.logs.remote(job_id))


def test_cancel_stops_the_ray_job(ray_cluster, service):
    [job_id] = ray.get(service.submit.remote(docs(SLEEPER), uuid.uuid4().hex))
    row = rounds_until(service, job_id, {"running"})
    assert row["state"] == "running", row
    assert ray.get(service.cancel.remote([job_id])) == [job_id]
    assert ray.get(service.status.remote(job_id))[0]["state"] == "cancelled"
    deadline = time.time() + 30
    while str(ray_job(ray_cluster, row["handle"]).status) not in ("STOPPED", "JobStatus.STOPPED"):
        assert time.time() < deadline, "the Ray job was not stopped"
        time.sleep(0.5)


def test_submitting_the_same_batch_twice_stores_it_once(service):
    batch = uuid.uuid4().hex
    first = ray.get(service.submit.remote(docs(CPU_JOB, CPU_JOB), batch))
    again = ray.get(service.submit.remote(docs(CPU_JOB, CPU_JOB), batch))
    assert first == again and len(set(first)) == 2


def test_unplaceable_job_says_why(service):
    spec = {"name": "too-big", "resources": {"accelerators": "H100:8"},
            "placement": {"tiers": ["onprem"]}}
    [job_id] = ray.get(service.submit.remote(docs(spec), uuid.uuid4().hex))
    ray.get(service.run_round.remote())
    row = ray.get(service.status.remote(job_id))[0]
    assert row["state"] == "pending"
    assert row["reason_code"] == "NoOfferSellsGpu" and "H100" in row["reason"]  # no offer in this test has one


def test_service_killed_comes_back_with_every_job_and_no_double_launch(ray_cluster, service):
    ids = ray.get(service.submit.remote(docs(SLEEPER, CPU_JOB), uuid.uuid4().hex))
    ray.get(service.run_round.remote())
    os.kill(ray.get(service.pid.remote()), signal.SIGKILL)
    # The actor restarts (max_restarts=-1); calls are retried until it is back.
    rows = {r["id"]: r for r in ray.get(service.status.remote(), timeout=60)}
    assert set(ids) <= set(rows)
    for _ in range(3):
        ray.get(service.run_round.remote(), timeout=60)
    from ray.job_submission import JobSubmissionClient

    launched = [j for j in JobSubmissionClient(dashboard_http(ray_cluster.webui_url)).list_jobs()
                if (j.metadata or {}).get("job_id") in ids]
    per_job = {job_id: [j.submission_id for j in launched if j.metadata["job_id"] == job_id] for job_id in ids}
    assert all(len(handles) == 1 for handles in per_job.values()), per_job
    ray.get(service.cancel.remote(ids))


def test_a_job_whose_node_dies_is_placed_again(ray_cluster, service):
    l4_a = ray_cluster.add_node(num_cpus=2, num_gpus=1, resources={"accelerator_type:L4": 1},
                                labels={"placement.node": "l4-a"})
    spec = {"name": "l4-job", "resources": {"accelerators": "L4:1"}, "run": "sleep 300",
            "placement": {"team": "speech", "priority": "high", "tiers": ["onprem"]}}
    [job_id] = ray.get(service.submit.remote(docs(spec), uuid.uuid4().hex))
    first = rounds_until(service, job_id, {"running"})
    assert first["state"] == "running" and first["nodes"] == ["l4-a"], first
    l4_b = ray_cluster.add_node(num_cpus=2, num_gpus=1, resources={"accelerator_type:L4": 1},
                                labels={"placement.node": "l4-b"})
    ray_cluster.remove_node(l4_a)
    # Ray marks the node dead after its health checks fail (~15 s); the next round re-queues and re-places.
    deadline = time.time() + 90
    while True:
        ray.get(service.run_round.remote(), timeout=60)
        row = ray.get(service.status.remote(job_id))[0]
        if row["attempt"] >= 2 and row["state"] == "running" or time.time() > deadline:
            break
        time.sleep(1)
    assert row["state"] == "running" and row["nodes"] == ["l4-b"] and row["attempt"] == 2, row
    explained = ray.get(service.explain.remote(job_id))
    assert any(e["kind"] == "requeued" and "died" in e["detail"] for e in explained["events"])
    ray.get(service.cancel.remote([job_id]))
    ray_cluster.remove_node(l4_b)
