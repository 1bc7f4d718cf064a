"""Loaded specs as the core's `Job`s: ids, pipelines and job groups, and one `Demand` per acceptable shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clouds.catalog import instance_accelerators
from clouds.gpus import gpu_sellers
from placement.memory_estimate import estimate
from placement.model import Demand, Job, Tier
from placement.spec.accelerators import gpu_choices
from placement.spec.job import LoadedSpec
from placement.spec.resources import ResourceOption, Resources
from placement.spec.values import cpus_minimum, launch_name, memory_minimum_gb

_PIN_FIELDS = frozenset({"infra", "cloud", "region", "zone"})


def to_job(loaded: LoadedSpec, job_id: str) -> Job:
    """The core's view of a spec: demands per node, owner, urgency, where it may run.

    The GPU memory each GPU needs is `gpu_memory.per_gpu_gb`, or the estimated peak from the model's facts (to
    which placement adds the policy's memory margin).
    """
    spec, placement = loaded.spec, loaded.spec.placement
    onprem_only = placement.data_residency == "onprem"
    hint = placement.gpu_memory
    gpu_memory_gb = None if hint is None else hint.per_gpu_gb
    facts = None if hint is None else hint.model_facts()
    if facts is not None:
        gpu_memory_gb = estimate(facts).peak_gb
    return Job(
        id=job_id,
        name=spec.name or Path(loaded.file).stem,
        team=placement.team,
        priority=placement.priority,
        demands=_demands(spec.resources),
        num_nodes=spec.num_nodes,
        expected_hours=placement.expected_hours,
        max_wait_hours=placement.max_wait,
        tiers=frozenset({Tier.ONPREM}) if onprem_only else frozenset(placement.tiers),
        spot_ok=placement.spot_ok or spec.resources.use_spot is True,
        budget_usd=placement.budget_usd,
        onprem_only=onprem_only,
        gpu_memory_gb=gpu_memory_gb,
        gpu_memory_estimated=facts is not None,
    )


def to_jobs(loaded: Iterable[LoadedSpec]) -> list[Job]:
    """Jobs with ids from the spec name (or file stem), made unique with -2, -3, ...

    A service becomes one job per replica to place now, `<name>-replica-<k>`: its
    `min_replicas` (none while it may scale to zero), its fixed `replicas`, or one.
    A pipeline's task names the job before it (`after`); a job group's jobs share `group`, the id of its
    first job.
    """
    jobs: list[Job] = []
    used: set[str] = set()
    last_of: dict[tuple[str, int], str] = {}  # (file, document) -> its last job's id
    first_of: dict[tuple[str, str], str] = {}  # (file, job group) -> its first job's id
    for item in loaded:
        service = item.spec.service
        base = launch_name(item.spec.name or Path(item.file).stem)

        def ids(name: str) -> list[str]:
            return [name] if service is None else [f"{name}-replica-{k}" for k in range(1, service.replicas_now + 1)]

        name, n = base, 1
        while name in used or used.intersection(ids(name)):
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        used.update(ids(name))
        after = last_of.get((item.file, item.after)) if item.after is not None else None
        group = first_of.setdefault((item.file, item.group), (ids(name) or [name])[0]) if item.group else None
        made = [dataclasses.replace(to_job(item, job_id), after=after, group=group) for job_id in ids(name)]
        if made:
            last_of[(item.file, item.document)] = made[-1].id
        jobs += made
    return jobs


def _demands(resources: Resources) -> tuple[Demand, ...]:
    """One Demand per acceptable (accelerator, shape), as SkyPilot expands `resources:`:
    `any_of` / `ordered` entries override the top-level fields they set; `ordered`
    and accelerator lists rank the alternatives, first choice 0. An `instance_type` without accelerators
    gets the instance's GPUs from the catalog, as SkyPilot does."""
    options: list[ResourceOption | None] = list(resources.any_of or resources.ordered or [None])
    demands: list[Demand] = []
    for position, option in enumerate(options):
        set_here = option.model_fields_set if option is not None else frozenset()

        def pick(field: str) -> Any:
            return getattr(option, field) if field in set_here else getattr(resources, field)

        gpus_from = option if set_here & {"accelerators", "gpus"} else resources
        cloud, region, zone = (option if set_here & _PIN_FIELDS else resources).pin
        cpus, memory = pick("cpus"), pick("memory")
        rank = position if resources.ordered else 0
        shape = dict(cpus=cpus_minimum(cpus) if cpus is not None else 0.0,
                     memory_gb=memory_minimum_gb(memory) if memory is not None else 0.0,
                     cloud=cloud, region=region, zone=zone, use_spot=pick("use_spot"),
                     instance_type=pick("instance_type"))
        if gpus_from.accelerator_value is None:
            # SkyPilot fills a bare instance type's accelerators in from its catalog: p4d.24xlarge is A100:8.
            gpus = instance_accelerators(shape["instance_type"]) if shape["instance_type"] else None
            demands.append(Demand(rank=rank, **shape) if gpus is None else
                           Demand(accelerator=gpus[0], accelerator_count=gpus[1], rank=rank,
                                  sellers=gpu_sellers(gpus[0]), **shape))
            continue
        choices, in_order = gpu_choices(gpus_from.accelerator_value)
        demands += [Demand(accelerator=c.name, accelerator_count=c.count, rank=rank + i if in_order else rank,
                           sellers=gpu_sellers(c.name), **shape)
                    for i, c in enumerate(choices)]
    return tuple(demands)
