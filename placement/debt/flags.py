"""Which jobs are inefficient, and the smaller shape each is recommended."""

from __future__ import annotations

import math

from clouds.gpus import GPU_MODELS, gpu_memory_gb
from placement.debt.records import Flag, FlagKind, JobUsage, Recommendation
from policies.debt import DebtSettings

GIB = 1024 ** 3


def smaller_gpu(peak_mem_bytes: int, gpu_type: str, settings: DebtSettings) -> str | None:
    """The smallest-memory recommendable GPU that holds the peak with headroom and is smaller than `gpu_type`."""
    current = gpu_memory_gb(gpu_type)
    if current is None:
        return None
    need_gb = peak_mem_bytes * settings.memory_headroom / GIB
    fits = [GPU_MODELS[g] for g in settings.recommendable_gpus
            if need_gb <= GPU_MODELS[g].memory_gb < current]
    if not fits:
        return None
    return min(fits, key=lambda m: (m.memory_gb, m.tdp_watts)).name


def _right_size(job: JobUsage, settings: DebtSettings) -> float:
    """GPUs (or a fraction of one) that would run the job's observed work at the target utilization."""
    busy_gpus = job.usage.utilized_gpu_hours / job.observed_hours
    needed = busy_gpus / settings.target_utilization
    if needed < 1:
        step = settings.gpu_fraction_step
        return max(step, math.ceil(needed / step - 1e-9) * step)
    return float(math.ceil(needed - 1e-9))


def flags_for(job: JobUsage, settings: DebtSettings) -> tuple[Flag, ...]:
    """Why a job is inefficient and what it should ask for instead (empty when it is not)."""
    allocation, usage = job.allocation, job.usage
    if allocation.gpus <= 0 or job.observed_hours * 3600.0 < settings.low_utilization_window_s:
        return ()
    observed = f"{job.observed_hours:.2f} h observed"

    def flag(kind: FlagKind, reason: str, recommendation: Recommendation) -> Flag:
        return Flag(allocation.handle, allocation.job_id, allocation.team, kind, reason, recommendation)

    if usage.utilized_gpu_hours <= 0:
        return (flag(FlagKind.NO_GPU_USE, f"no GPU activity on its {allocation.gpus:g} GPU(s) in {observed}",
                     Recommendation(None, 0.0, "run on CPU only")),)
    result = []
    mean = usage.mean_utilization or 0.0
    if mean < settings.low_utilization:
        gpus = _right_size(job, settings)
        if gpus < allocation.gpus:
            what = f"{gpus:g} of a GPU" if gpus < 1 else f"{gpus:g} GPUs instead of {allocation.gpus:g}"
            result.append(flag(FlagKind.LOW_UTILIZATION,
                               f"mean GPU utilization {mean:.1%} < {settings.low_utilization:.0%} over {observed}",
                               Recommendation(allocation.gpu_type, gpus, f"ask for {what}")))
    gpu_mem = gpu_memory_gb(allocation.gpu_type) if allocation.gpu_type else None
    if usage.peak_mem_bytes is not None and gpu_mem and usage.peak_mem_bytes < settings.memory_fraction * gpu_mem * GIB:
        smaller = smaller_gpu(usage.peak_mem_bytes, allocation.gpu_type, settings)
        if smaller is not None:
            result.append(flag(
                FlagKind.OVERSIZED_MEMORY,
                f"peak GPU memory {usage.peak_mem_bytes / GIB:.1f} GiB of the {allocation.gpu_type}'s {gpu_mem:g} GB",
                Recommendation(smaller, allocation.gpus, f"a {smaller} ({GPU_MODELS[smaller].memory_gb:g} GB) fits")))
    return tuple(result)
