"""On-prem capacity: the Ray cluster's own nodes, and Ray jobs pinned to them.

Offers come from `ray.nodes()`: each alive node's GPUs, accelerator type,
CPUs and memory, minus what the engine already holds there. The inventory
adds what Ray cannot see (GPU memory, amortised price, power, grid
intensity), matched by node name. A node is named by its `placement.node`
label (`ray start --labels placement.node=a100-0`), else by its Ray node id.

A placement runs as a Ray job through the job submission API, so it shows in
the dashboard's Jobs tab with its metadata: the submission id is the launch
handle, the entrypoint label selector pins it to the chosen node by Ray's own
`ray.io/node-id` label, and entrypoint resources reserve its GPUs, CPUs and
memory there (Ray then sets CUDA_VISIBLE_DEVICES for its GPUs; a job with no
GPUs gets an empty CUDA_VISIBLE_DEVICES so it cannot see the node's GPUs).
Secret values (`placement.secrets`) are not in the runtime_env, which the job
API shows: the entrypoint fetches them from the service when it starts
(`placement.secret_exec`).
A multi-node job's driver instead reserves every chosen node with a placement
group and runs the script on each (clouds/gang.py).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

from clouds import gang
from clouds.base import LaunchError, LaunchRequest, Observation, WorkStatus
from clouds.gpus import canonical_gpu, gpu_memory_gb, gpu_tdp_watts
from clouds.inventory import Inventory, amortised_price_per_hour
from clouds.telemetry import HANDLE_ENV
from placement.model import Offer, Placement, Sharing, Tier
from placement.secrets import split_env

NODE_LABEL = "placement.node"
NODE_ID_LABEL = gang.NODE_ID_LABEL  # Ray's own label of a node's id
JOB_NAME = "job_name"  # the metadata key the Ray dashboard's Jobs tab shows in its Name column
GANG_NODES = "gang_node_ids"  # job metadata of a multi-node job: the Ray node ids it holds
_GIB = 1024 ** 3

_RAY_STATUS = {
    "PENDING": WorkStatus.STARTING,
    "RUNNING": WorkStatus.RUNNING,
    "SUCCEEDED": WorkStatus.SUCCEEDED,
    "FAILED": WorkStatus.FAILED,
    "STOPPED": WorkStatus.STOPPED,
}


def node_name(node: dict[str, Any]) -> str:
    return (node.get("Labels") or {}).get(NODE_LABEL) or node["NodeID"][:12]


def node_gpu(node: dict[str, Any]) -> str | None:
    """The GPU type of a Ray node: Ray's `accelerator_type:<X>` resource, canonicalised."""
    for resource in node.get("Resources", {}):
        if resource.startswith("accelerator_type:"):
            return canonical_gpu(resource.split(":", 1)[1]) or resource.split(":", 1)[1]
    return None


def node_offer(name: str, gpu: str | None, gpus: float, cpus: float, memory_gb: float,
               held: tuple[float, float, float], facts: Offer | None, provider: str = "onprem") -> Offer:
    """The offer of one on-prem node: its whole capacity less what the engine holds there, priced for the whole
    machine, with what the inventory knows about it (`facts`: price, GPU memory, power, grid, labels).
    The Ray provider and the replay's simulated nodes both build their offers here."""
    held_gpus, held_cpus, held_memory = held
    price = facts.price_per_hour if facts else amortised_price_per_hour(gpu, gpus, cpus, memory_gb)
    return Offer(
        id=f"onprem/{name}", tier=Tier.ONPREM, provider=provider, name=name, sharing=Sharing.SHARED,
        gpu=gpu, gpu_count=max(gpus - held_gpus, 0.0),
        gpu_memory_gb=(facts.gpu_memory_gb if facts else None) or (gpu_memory_gb(gpu) if gpu else 0.0) or 0.0,
        vcpus=max(cpus - held_cpus, 0.0), memory_gb=max(memory_gb - held_memory, 0.0),
        price_per_hour=price if price is not None else 0.0, capacity=1, whole=(gpus, cpus, memory_gb),
        region=facts.region if facts else None,
        gco2_per_kwh=facts.gco2_per_kwh if facts else None,
        gpu_watts=(facts.gpu_watts if facts else None) or (gpu_tdp_watts(gpu) if gpu else None),
        host_watts=facts.host_watts if facts else 0.0,
        labels=facts.labels if facts else ())  # not the node id: identical nodes must group for gangs


class RayNodesProvider:
    """Offers from the Ray cluster's alive nodes; work as Ray jobs pinned to one node."""

    tier = Tier.ONPREM
    name = "onprem"

    def __init__(self, jobs_client: Any, inventory: Inventory | None = None,
                 list_nodes: Callable[[], list[dict[str, Any]]] | None = None):
        """`jobs_client`: a `ray.job_submission.JobSubmissionClient`; `list_nodes` defaults to `ray.nodes`."""
        import ray

        self._client = jobs_client
        self._list_nodes = list_nodes or ray.nodes
        self._facts = {o.name: o for o in inventory.offers() if o.tier is Tier.ONPREM} if inventory else {}
        self._node_ids: dict[str, str] = {}  # node name -> Ray node id, for pinning and liveness

    def _alive(self) -> list[dict[str, Any]]:
        nodes = [n for n in self._list_nodes() if n.get("Alive")]
        self._node_ids = {node_name(n): n["NodeID"] for n in nodes}
        return nodes

    def offers(self, reserved: dict[str, tuple[float, float, float]]) -> list[Offer]:
        offers = []
        nodes = self._alive()
        for node in nodes:
            name = node_name(node)
            resources = node.get("Resources", {})
            gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
            memory = resources.get("memory", 0.0) / _GIB
            if "node:__internal_head__" in resources and not gpus and len(nodes) > 1:
                continue  # a GPU-less head of a larger cluster hosts the service and Ray itself, not jobs
            gpu = node_gpu(node) if gpus else None
            offers.append(node_offer(name, gpu, gpus, cpus, memory, reserved.get(name, (0.0, 0.0, 0.0)),
                                     self._facts.get(name), self.name))
        return offers

    def launch(self, request: LaunchRequest) -> None:
        placement = request.placement
        node_ids = [self._node_ids.get(name) for name in placement.nodes]
        if not node_ids or None in node_ids:
            self._alive()
            node_ids = [self._node_ids.get(name) for name in placement.nodes]
        if not node_ids or None in node_ids:
            raise LaunchError(f"node {placement.target} is not in the Ray cluster (any more)")
        if self._exists(request.handle):
            return
        spec = request.spec
        env, secret = split_env(spec)
        if not placement.gpus_per_node:
            env["CUDA_VISIBLE_DEVICES"] = ""
        env.update({"PLACEMENT_JOB_ID": request.job_id, "PLACEMENT_ATTEMPT": str(request.attempt),
                    HANDLE_ENV: request.handle})  # attributes the job's Ray tasks and actors too
        memory = int(placement.memory_gb_per_node * _GIB)
        metadata = {**request.metadata, "job_id": request.job_id, "attempt": str(request.attempt),
                    JOB_NAME: spec.get("name") or request.job_id, "placed_because": placed_because(placement)}
        if len(node_ids) == 1:  # the entrypoint's own resources hold the node
            command, held = entrypoint(spec), {
                "entrypoint_num_gpus": placement.gpus_per_node or None,
                "entrypoint_num_cpus": placement.cpus_per_node or None, "entrypoint_memory": memory or None}
        else:  # a placement group, made by the driver, holds every node (clouds/gang.py)
            command, held = f"python -m clouds.gang {shlex.quote(script(spec))}", {}
            metadata[GANG_NODES] = ",".join(node_ids)  # observe: the job is lost when any of them dies
            env.update({gang.NODE_IDS_ENV: ",".join(node_ids), gang.BUNDLE_ENV: json.dumps(
                gang.bundle(placement.gpus_per_node, placement.cpus_per_node, memory))})
        if secret:
            command = f"python -m placement.secret_exec {shlex.quote(request.handle)} {command}"
        try:
            self._client.submit_job(
                entrypoint=command, submission_id=request.handle,
                runtime_env={"env_vars": env},
                metadata=metadata, entrypoint_label_selector={NODE_ID_LABEL: node_ids[0]}, **held)
        except Exception as exc:  # the SDK raises RuntimeError with the HTTP body; a race may mean it exists
            if self._exists(request.handle):
                return
            raise LaunchError(f"Ray refused job {request.handle}: {exc}") from exc

    def _exists(self, handle: str) -> bool:
        try:
            self._client.get_job_info(handle)
            return True
        except Exception:  # the SDK signals an unknown id with a RuntimeError (HTTP 404)
            return False

    def observe(self, handles: list[str]) -> dict[str, Observation]:
        alive = {n["NodeID"] for n in self._alive()}
        result = {}
        for handle in handles:
            try:
                info = self._client.get_job_info(handle)
            except Exception:
                result[handle] = Observation(WorkStatus.MISSING, "Ray knows no job by this id")
                continue
            status = _RAY_STATUS.get(str(info.status).split(".")[-1], WorkStatus.RUNNING)
            nodes = [getattr(info, "driver_node_id", None), *((info.metadata or {}).get(GANG_NODES, "").split(","))]
            dead = next((node for node in nodes if node and node not in alive), None)
            if status in (WorkStatus.STARTING, WorkStatus.RUNNING, WorkStatus.FAILED) and dead:
                result[handle] = Observation(WorkStatus.LOST, f"node {dead[:12]} died" +
                                             (f": {info.message}" if info.message else ""))
            else:
                result[handle] = Observation(status, info.message or "")
        return result

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        """Ray stops a job with SIGTERM, then SIGKILL after its own grace period (on-prem is never downscaled)."""
        del grace_seconds
        try:
            self._client.stop_job(handle)
        except Exception:  # already gone: stopping is idempotent
            pass

    def logs(self, handle: str) -> str:
        return self._client.get_job_logs(handle)


def script(spec: dict[str, Any]) -> str:
    """`setup` then `run`, as one bash script that stops at the first failing command."""
    return "\n".join(["set -e", *(part for part in (spec.get("setup"), spec.get("run")) if part)])


def entrypoint(spec: dict[str, Any]) -> str:
    return "bash -c " + shlex.quote(script(spec))


def placed_because(placement: Placement) -> str:
    """Why the job is on this node, for the Jobs tab: the round's plan (least total policy cost) put it there."""
    gpus = f"{placement.gpus_per_node:g} {placement.gpu} GPU(s)" if placement.gpu and placement.gpus_per_node \
        else "no GPU"
    return (f"the round's plan (least total policy cost) put it here: {gpus} on {placement.target}, "
            f"${placement.rate_per_hour:.2f}/h, ~${placement.expected_cost:.2f} expected, policy cost "
            f"{placement.objective:.2f}")
