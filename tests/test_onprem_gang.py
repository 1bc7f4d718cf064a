"""Multi-node on-prem jobs on the shared simulated cluster: Ray holds every chosen node, the script runs on each."""

from __future__ import annotations

import os
import time
import uuid

import ray
from ray.util import placement_group_table

from tests.test_service import docs, ray_job, rounds_until, service  # noqa: F401 (the fixture)

TWO_NODE = {"name": "ddp", "num_nodes": 2, "resources": {"accelerators": "A100-80GB:8", "cpus": 2},
            "run": 'echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES ips=$(echo $SKYPILOT_NODE_IPS | wc -w) '
                   'gpus=$CUDA_VISIBLE_DEVICES"',
            "placement": {"team": "nlp", "priority": "critical", "tiers": ["onprem"], "expected_hours": 0.1}}


def _group(name: str) -> dict:
    [group] = [g for g in placement_group_table().values() if g["name"] == name]
    return group


def test_a_two_node_job_holds_both_nodes_and_runs_a_rank_on_each(ray_cluster, service):
    [job_id] = ray.get(service.submit.remote(docs(TWO_NODE), uuid.uuid4().hex))
    row = rounds_until(service, job_id, {"succeeded", "failed"})
    assert row["state"] == "succeeded", (row["reason_code"], row["reason"])
    assert sorted(row["nodes"]) == ["a100-0", "a100-1"]
    assert ray_job(ray_cluster, row["handle"]).driver_node_id == ray_cluster.simulated[row["nodes"][0]].node_id
    # Ray itself held all 8 GPUs of both nodes (not only the driver's), one bundle per node, named by the handle;
    # the group fate-shared with the driver, so both nodes are free again.
    group = _group(row["handle"])
    assert set(group["bundles_to_node_id"].values()) == {
        ray_cluster.simulated[name].node_id for name in ("a100-0", "a100-1")}
    assert [b.get("GPU") for b in group["bundles"].values()] == [8.0, 8.0]
    assert group["state"] == "REMOVED"
    logs = ray.get(service.logs.remote(job_id))
    for rank in (0, 1):
        line = next(line for line in logs.splitlines() if f"rank={rank} of 2" in line)
        assert "ips=2" in line and len(line.split("gpus=")[1].split(",")) == 8


def test_a_failing_rank_fails_the_job(ray_cluster, service):
    spec = {**TWO_NODE, "run": '[ "$SKYPILOT_NODE_RANK" = 1 ] && { sleep 1; exit 3; }; echo fine'}
    [job_id] = ray.get(service.submit.remote(docs(spec), uuid.uuid4().hex))
    row = rounds_until(service, job_id, {"succeeded", "failed"})
    assert row["state"] == "failed", row
    logs = ray.get(service.logs.remote(job_id))
    assert "rank 1 exited with 3" in logs and "(rank 0) fine" in logs


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_cancelling_a_gang_kills_every_ranks_processes_and_frees_the_nodes(ray_cluster, service, tmp_path):
    # Each rank's script leaves a child (sleep) behind it: Ray alone would kill neither across a stop.
    spec = {**TWO_NODE, "run": f'echo $$ > {tmp_path}/rank$SKYPILOT_NODE_RANK.pid; sleep 300'}
    [job_id] = ray.get(service.submit.remote(docs(spec), uuid.uuid4().hex))
    pid_files = [tmp_path / f"rank{rank}.pid" for rank in (0, 1)]
    deadline = time.time() + 90
    while not all(p.exists() and p.read_text().strip() for p in pid_files):
        assert time.time() < deadline, "the ranks did not start"
        ray.get(service.run_round.remote(), timeout=60)
        time.sleep(0.5)
    pids = [int(p.read_text()) for p in pid_files]
    assert all(_group_alive(pid) for pid in pids)
    assert ray.get(service.cancel.remote([job_id])) == [job_id]
    handle = ray.get(service.status.remote(job_id))[0]["handle"]
    deadline = time.time() + 30
    while any(_group_alive(pid) for pid in pids) or _group(handle)["state"] != "REMOVED":
        assert time.time() < deadline, ([_group_alive(pid) for pid in pids], _group(handle)["state"])
        time.sleep(0.5)
