"""Rightsizing: a flagged job's recommendations become alternative demands of the next similar job.

`rightsize` turns the flags of a job's latest flagged run into alternative demands for the next
submission of a job with the same team and name. Pure: a job and flags in, a job and notes out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from clouds.gpus import gpu_memory_gb, gpu_sellers
from placement.debt import FlagKind, Recommendation
from placement.model import Demand, Job
from policies.debt import DebtSettings

_GIB = 1024 ** 3
# vCPUs SkyPilot gives a task that asks for none on AWS, GCP and Azure (`_DEFAULT_NUM_VCPUS` of their catalogs):
# what a CPU-only alternative asks for when the job's own demand named no CPUs.
SKY_DEFAULT_CPUS = 8.0


@dataclass(frozen=True, slots=True)
class SimilarJobFlag:
    """A flag of the latest flagged run of a job with the same team and name, as the store keeps it."""

    job_id: str  # the flagged run
    kind: FlagKind
    reason: str
    recommendation: Recommendation
    ran_on: str | None  # the GPU type that run held
    peak_mem_bytes: int | None  # the largest GPU memory it held on one GPU


@dataclass(frozen=True, slots=True)
class Rightsizing:
    """What one similar job's flag does to a job: the alternative demand it adds (None: none), and why."""

    flag: SimilarJobFlag
    demand: Demand | None
    note: str  # "similar job X was flagged (...): <recommendation>; <what was done>"


def shape(demand: Demand) -> str:
    """`L4:1`, `A100-80GB:0.25` or `CPU`, as specs and `placement validate` write a demand."""
    return f"{demand.accelerator}:{demand.accelerator_count:g}" if demand.accelerator else "CPU"


def rightsize(job: Job, flags: Sequence[SimilarJobFlag], settings: DebtSettings,
              apply: bool) -> tuple[Job, tuple[Rightsizing, ...]]:
    """The job with each flag's recommendation added as an alternative demand (when `apply`), and what was done.

    Added as if the user had listed it with their own (`accelerators: {A100: 1, L4: 1}`): after the job's
    demands, at the rank of its first choice, so the solver takes it when it is cheaper. The job's own
    demands are never removed and its GPU memory floor never lowered. The flagged run's peak memory
    times `memory_headroom` is a floor for the recommended GPU: an alternative whose GPU is smaller than
    that (or than the job's own floor) is not added; the job's floor is raised to it where that excludes
    none of the job's own GPU types. A spec that pins an instance type, and a multi-node job, keep
    their shape. A CPU-only recommendation asks for the job's CPUs and memory (SkyPilot's default CPUs
    if it named none); a fraction of a GPU fits only tiers that share GPUs (on-prem nodes, private pools).
    """
    notes: list[Rightsizing] = []
    added: list[Demand] = []
    floors: list[float] = []
    for flag in flags:
        head = f"similar job {flag.job_id} was flagged ({flag.kind.value}): {flag.recommendation.text}"
        if not apply:
            notes.append(Rightsizing(flag, None, f"{head}; shown only (policy debt.apply_recommendations is off)"))
            continue
        demand, floor, why_not = _alternative(job, flag, settings, added)
        if demand is None:
            notes.append(Rightsizing(flag, None, f"{head}; not applied: {why_not}"))
            continue
        added.append(demand)
        if floor is not None:
            floors.append(floor)
        notes.append(Rightsizing(flag, demand, f"{head}; offered {shape(demand)} as an alternative"))
    if not added:
        return job, tuple(notes)
    floor = max([job.gpu_memory_gb or 0.0, *floors])
    own_gpus = [gpu_memory_gb(d.accelerator) for d in job.demands if d.accelerator]
    if floor > (job.gpu_memory_gb or 0.0) and all(m is not None and m >= floor for m in own_gpus):
        job = dataclasses.replace(job, gpu_memory_gb=floor)
    return dataclasses.replace(job, demands=job.demands + tuple(added)), tuple(notes)


def _alternative(job: Job, flag: SimilarJobFlag, settings: DebtSettings, added: list[Demand]
                 ) -> tuple[Demand | None, float | None, str]:
    """The alternative demand for one flag and the GPU memory floor it brings, or None and why not."""
    if any(d.instance_type for d in job.demands):
        return None, None, "the spec pins an instance type"
    if job.num_nodes > 1:
        return None, None, f"a {job.num_nodes}-node job keeps its shape"
    recommendation = flag.recommendation
    base = next((d for d in job.demands if d.accelerator == flag.ran_on), job.demands[0])
    rank = min(d.rank for d in job.demands)
    floor = None
    if recommendation.gpu_type is None:
        demand = dataclasses.replace(base, accelerator=None, accelerator_count=0,
                                     cpus=base.cpus or SKY_DEFAULT_CPUS, rank=rank, sellers=())
    else:
        if flag.peak_mem_bytes is not None:
            floor = flag.peak_mem_bytes * settings.memory_headroom / _GIB
        need = max((f for f in (floor, job.gpu_memory_gb) if f is not None), default=None)
        memory = gpu_memory_gb(recommendation.gpu_type)
        usable = memory * min(recommendation.gpus, 1.0) if memory is not None else None  # a fraction shares it
        if need is not None and usable is not None and usable < need:
            return None, None, (f"it needs {need:.1f} GB per GPU and {recommendation.gpus:g} of a "
                                f"{recommendation.gpu_type} has {usable:g} GB")
        if (flag.kind is FlagKind.LOW_UTILIZATION and recommendation.gpus >= 1 and floor is not None
                and memory is not None and floor > memory / 2):
            # Fewer GPUs of the same type: a model sharded over the GPUs it ran on may not fit on fewer.
            return None, None, f"its peak memory ({floor:.1f} GB with headroom) may be one shard of a larger model"
        demand = dataclasses.replace(base, accelerator=recommendation.gpu_type,
                                     accelerator_count=recommendation.gpus, rank=rank,
                                     sellers=gpu_sellers(recommendation.gpu_type))
    if any((d.accelerator, d.accelerator_count) == (demand.accelerator, demand.accelerator_count)
           for d in (*job.demands, *added)):
        return None, None, f"{shape(demand)} is already among its demands"
    return demand, floor, ""
