"""What `placement estimate` shows: a job's GPU memory need term by term, and the GPUs it fits with the margin."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from placement.memory_estimate import Estimate
from placement.model import Job, Offer


@dataclass(frozen=True, slots=True)
class GpuFit:
    gpu: str
    memory_gb: float  # the most memory an offer of this GPU type has per GPU
    fits: bool
    asked: bool  # among the job's own accelerators


def gpu_fits(offers: Iterable[Offer], needed_gb: float, job: Job) -> list[GpuFit]:
    """Every GPU type the offers (catalogs, inventory) carry, with its memory, smallest first."""
    memory: dict[str, float] = {}
    for offer in offers:
        if offer.gpu:
            memory[offer.gpu] = max(memory.get(offer.gpu, 0.0), offer.gpu_memory_gb)
    asked = {d.accelerator for d in job.demands if d.accelerator}
    return [GpuFit(gpu, gb, gb >= needed_gb, gpu in asked)
            for gpu, gb in sorted(memory.items(), key=lambda item: (item[1], item[0]))]


def breakdown(figures: Estimate) -> list[tuple[str, float]]:
    """The terms, in GB. Two phases: the activations (forward pass), the gradients and the optimizer step's
    temporaries (step); the peak holds the larger."""
    return [("weights", figures.weights_gb), ("optimizer (state, master weights)", figures.optimizer_gb),
            ("activations (forward pass)", figures.activations_gb), ("gradients (step)", figures.gradients_gb),
            ("optimizer step temporaries (step)", figures.step_gb),
            ("allocator reserve", figures.reserve_gb), ("CUDA context", figures.cuda_context_gb)]


def as_json(job: Job, figures: Estimate | None, margin: float, needed_gb: float, fits: list[GpuFit]) -> dict[str, Any]:
    answer: dict[str, Any] = {"job": job.id, "needed_gb": needed_gb, "fits": [f.gpu for f in fits if f.fits],
                              "gpus": [{"gpu": f.gpu, "memory_gb": f.memory_gb, "fits": f.fits, "asked": f.asked}
                                       for f in fits]}
    if figures is None:
        return answer | {"given_gb": job.gpu_memory_gb}
    return answer | {"terms_gb": {name: round(value, 3) for name, value in breakdown(figures)},
                     "estimate_gb": round(figures.total_gb, 3), "margin": margin,
                     "assumptions": list(figures.assumptions)}
