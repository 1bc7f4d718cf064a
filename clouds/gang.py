"""Multi-node on-prem work: one Ray placement group over the chosen nodes, the job's script on each of them.

A job with `num_nodes: N` placed on N on-prem nodes runs as one Ray job whose
entrypoint is this module. The driver reserves one bundle per chosen node (a
placement group, STRICT_SPREAD, each bundle pinned by Ray's `ray.io/node-id`
label), so Ray itself holds the GPUs, CPUs and memory of every node the plan
counted on, not only the driver's. It then runs the job's script once per
bundle, as SkyPilot runs a multi-node task: with `SKYPILOT_NODE_RANK`,
`SKYPILOT_NUM_NODES`, `SKYPILOT_NODE_IPS` (head first, one per line) and
`SKYPILOT_NUM_GPUS_PER_NODE`, and with the bundle's GPUs in
`CUDA_VISIBLE_DEVICES`. The job fails when any rank fails.

The placement group, named after the launch handle, fate-shares with the
driver: when the job ends or is stopped, Ray frees every node. Nothing here is a double: the test runs it on
the shared simulated cluster.

    python -m clouds.gang SCRIPT   (reads PLACEMENT_NODE_IDS and PLACEMENT_BUNDLE from the environment)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

from clouds.telemetry import HANDLE_ENV
from placement.secret_exec import SECRET_NAMES_ENV

NODE_IDS_ENV = "PLACEMENT_NODE_IDS"  # comma-separated Ray node ids, rank order
BUNDLE_ENV = "PLACEMENT_BUNDLE"  # JSON: the Ray resources of one node's share, e.g. {"GPU": 8, "CPU": 16}
NODE_ID_LABEL = "ray.io/node-id"
READY_TIMEOUT_S = 300.0
STOP_WAIT_S = 2.0  # Ray's `job stop` sends SIGKILL 3 s after SIGTERM


def bundle(gpus: float, cpus: float, memory_bytes: int) -> dict[str, float]:
    """One node's share as Ray resources; Ray refuses an empty bundle, so a shape asking for nothing holds a sliver
    of a CPU."""
    resources = {k: v for k, v in (("GPU", gpus), ("CPU", cpus), ("memory", float(memory_bytes))) if v}
    return resources or {"CPU": 0.01}


def _run_rank(script: str, env: dict[str, str]) -> tuple[int, str]:
    """One rank: the script in bash with the rank's environment over the worker's (Ray's CUDA_VISIBLE_DEVICES).

    The script runs in its own process group, killed whatever way the task
    ends (done, failed, cancelled): Ray kills only a worker's direct children,
    and processes left behind would hold GPUs the engine counts as free.
    """
    process = subprocess.Popen(["bash", "-c", script], env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate()
        return process.returncode, output
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(script: str, node_ids: list[str], resources: dict[str, float], name: str = "") -> int:
    """Reserve the nodes (a group named `name`, the launch handle), run every rank, return the first failure.

    Ranks are not retried (a retry would wait for its pinned node forever);
    the first failure cancels the other ranks, and so does a stop (SIGTERM).
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray.init(address="auto", log_to_driver=False)
    group = placement_group([dict(resources)] * len(node_ids), strategy="STRICT_SPREAD", name=name,
                            bundle_label_selector=[{NODE_ID_LABEL: node_id} for node_id in node_ids])
    try:
        ray.get(group.ready(), timeout=READY_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        print(f"gang: the chosen nodes did not free {resources} each within {READY_TIMEOUT_S:.0f} s", file=sys.stderr)
        remove_placement_group(group)
        return 1
    ips = _node_ips(node_ids)
    task_resources: dict[str, Any] = {"num_gpus": resources.get("GPU", 0), "num_cpus": resources.get("CPU", 0),
                                      "memory": resources.get("memory", 0) or None, "max_retries": 0}
    remote = ray.remote(_run_rank)
    # The secrets this driver was started with (placement.secret_exec) go to the ranks as task arguments, which
    # the dashboard does not show, rather than in a runtime_env, which it does.
    secrets = {n: os.environ[n] for n in os.environ.get(SECRET_NAMES_ENV, "").split(",") if n in os.environ}
    ranks = {remote.options(**task_resources, scheduling_strategy=PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=rank)).remote(script, {
            **secrets, "SKYPILOT_NODE_RANK": str(rank), "SKYPILOT_NUM_NODES": str(len(node_ids)),
            "SKYPILOT_NODE_IPS": "\n".join(ips), "SKYPILOT_NUM_GPUS_PER_NODE": f"{resources.get('GPU', 0):g}"}): rank
        for rank in range(len(node_ids))}
    signal.signal(signal.SIGTERM, _stopped)
    pending, status = list(ranks), 0
    try:
        while pending and not status:
            [done], pending = ray.wait(pending, num_returns=1)
            status = _report(ranks[done], done)
    finally:
        for ref in pending:  # a failed rank or a stop: the others would wait for it forever (NCCL)
            ray.cancel(ref)
        if pending:  # ranks that ended meanwhile still say what they printed; cancelled ones say nothing
            ended, _ = ray.wait(pending, num_returns=len(pending), timeout=STOP_WAIT_S)
            for ref in ended:
                _report(ranks[ref], ref, quiet_errors=True)
    return status


def _report(rank: int, ref: Any, quiet_errors: bool = False) -> int:
    """Print a finished rank's output, prefixed with its rank; return its exit code (1 if its task failed)."""
    import ray

    try:
        code, output = ray.get(ref)
    except ray.exceptions.RayError as exc:  # its node died, the worker did, or it was cancelled
        if quiet_errors:
            return 1
        code, output = 1, str(exc)
    for line in output.splitlines():
        print(f"(rank {rank}) {line}")
    if code:
        print(f"gang: rank {rank} exited with {code}", file=sys.stderr)
    return code


def _stopped(signum: int, frame: Any) -> None:
    """`ray job stop` sends SIGTERM: leave the wait so the ranks are cancelled before Ray's SIGKILL."""
    raise SystemExit(128 + signum)


def _node_ips(node_ids: list[str]) -> list[str]:
    import ray

    address = {n["NodeID"]: n.get("NodeManagerAddress", "") for n in ray.nodes()}
    return [address.get(node_id, "") for node_id in node_ids]


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m clouds.gang SCRIPT")
    node_ids = [n for n in os.environ[NODE_IDS_ENV].split(",") if n]
    sys.stdout.reconfigure(line_buffering=True)
    raise SystemExit(run(sys.argv[1], node_ids, json.loads(os.environ[BUNDLE_ENV]), os.environ.get(HANDLE_ENV, "")))


if __name__ == "__main__":
    main()
