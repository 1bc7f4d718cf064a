"""A placement as SkyPilot sees it: a real `sky.Task` with `sky.Resources` pinned to the chosen offer.

The task is the user's own spec (setup, run, envs, workdir, file_mounts, num_nodes, secrets
... everything SkyPilot's task YAML says) with its resource *choices* replaced by the one the
engine made: cloud and region (and zone, when the spec pinned one), the instance type, and
spot or on-demand. Resource fields that are not choices (disk size, image, ports, labels,
job recovery) are kept. The engine's `placement:` block and a service's `service:` block are
not SkyPilot's concern here: a service replica runs as a task.
"""

from __future__ import annotations

from typing import Any

from placement.model import Offer, Placement, Tier
from placement.secrets import sky_env

# Fields of `resources:` that choose where to run: the engine has chosen, so they are replaced.
_CHOICE_FIELDS = frozenset({"infra", "cloud", "region", "zone", "instance_type", "accelerators", "gpus",
                            "use_spot", "cpus", "memory", "any_of", "ordered", "accelerator_args"})
# Top-level fields of the spec that are the engine's or SkyServe's, not a task's.
_NOT_TASK_FIELDS = frozenset({"placement", "service", "resources"})


def sky_name(handle: str) -> str:
    """A SkyPilot cluster / managed-job name for a launch handle.

    SkyPilot names match `[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?`; handles are `<job>-a<n>-<uid>`
    with job names from specs, so anything else becomes `-`, and a leading digit gets a `p`.
    """
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in handle.lower()).strip("-_.")
    return name if name[:1].isalpha() else f"p{name}"


def resource_config(spec: dict[str, Any], placement: Placement, offer: Offer) -> dict[str, Any]:
    """The `resources:` mapping that pins the task to `offer` (SkyPilot YAML spelling)."""
    kept = {k: v for k, v in (spec.get("resources") or {}).items() if k not in _CHOICE_FIELDS}
    if offer.tier is Tier.PRIVATE:
        infra = dict(offer.labels).get("infra") or f"{offer.cloud}/{offer.region}"
        pinned: dict[str, Any] = {"infra": infra, "cpus": _count(placement.cpus_per_node) or None,
                                  "memory": _count(placement.memory_gb_per_node) or None}
        if offer.gpu and placement.gpus_per_node:
            pinned["accelerators"] = {offer.gpu: _count(placement.gpus_per_node)}
    else:
        zone = _spec_zone(spec)
        pinned = {"infra": "/".join(p for p in (offer.cloud, offer.region, zone) if p),
                  "instance_type": offer.name, "use_spot": offer.spot}
        accelerator = dict(offer.labels).get("accelerator")
        if offer.cloud == "gcp" and accelerator and "+" in offer.id:
            # An N1 host with GPUs attached: the GPUs are not part of the machine type.
            pinned["accelerators"] = {accelerator: _count(offer.gpu_count)}
    return kept | {k: v for k, v in pinned.items() if v is not None}


def task_config(spec: dict[str, Any], placement: Placement, offer: Offer) -> dict[str, Any]:
    """The whole task YAML mapping for this placement; secret values under `secrets:`, which SkyPilot redacts."""
    config = {k: v for k, v in sky_env(spec).items() if k not in _NOT_TASK_FIELDS}
    config["resources"] = resource_config(spec, placement, offer)
    return config


def build_task(spec: dict[str, Any], placement: Placement, offer: Offer):  # -> sky.Task
    """A real `sky.Task`, validated by SkyPilot (its schema, and its catalog for the instance type)."""
    import sky

    return sky.Task.from_yaml_config(task_config(spec, placement, offer))


def _count(amount: float) -> int | float:
    return int(amount) if float(amount).is_integer() else amount


def _spec_zone(spec: dict[str, Any]) -> str | None:
    resources = spec.get("resources") or {}
    if zone := resources.get("zone"):
        return zone
    parts = str(resources.get("infra") or "").split("/")
    return parts[2] if len(parts) > 2 and parts[2] not in ("", "*") else None
