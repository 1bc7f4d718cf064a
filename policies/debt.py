"""A policy's `debt:` block: when a job counts as inefficient, and how samples are integrated.

Kept with the policy, not with the accounting (`placement.debt`), so the policy model imports no accounting;
its GPU names are made canonical when a policy is validated, never while a round decides.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clouds.gpus import GPU_MODELS, canonical_gpu, suggest_gpu
from placement.yamlio.errors import Invalid


class DebtSettings(BaseModel):
    """When a job counts as inefficient, and how samples are integrated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low_utilization: float = Field(0.3, gt=0, le=1, description=(
        "Mean GPU utilization (0-1) under which a job is flagged, once observed for low_utilization_window_s."))
    low_utilization_window_s: float = Field(1800.0, gt=0, description=(
        "How long a job must be observed before its utilization or lack of GPU use flags it."))
    target_utilization: float = Field(0.8, gt=0, le=1, description=(
        "Utilization a right-sized job would reach: sizes the GPUs or GPU fraction recommended."))
    gpu_fraction_step: float = Field(0.25, gt=0, le=1, description="Granularity of a recommended GPU fraction.")
    memory_fraction: float = Field(0.5, gt=0, le=1, description=(
        "A job whose peak GPU memory is under this share of its GPU's memory is flagged."))
    memory_headroom: float = Field(1.2, ge=1, description=(
        "A recommended smaller GPU must hold the job's peak memory times this."))
    recommendable_gpus: tuple[str, ...] = Field(
        ("T4", "L4", "A10G", "L40S", "A100", "A100-80GB", "H100", "H200", "B200"),
        description="GPU types a memory recommendation may name.")
    max_sample_gap_s: float = Field(60.0, gt=0, description=(
        "A sample holds until the next one, at most this long; a longer gap counts as unobserved."))
    assumed_utilization: float = Field(1.0, ge=0, le=1, description=(
        "GPU utilization assumed for energy where there is no telemetry (Green Algorithms' usage factor)."))

    @field_validator("recommendable_gpus")
    @classmethod
    def _known_gpus(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        canonical = []
        for name in names:
            gpu = canonical_gpu(name)
            if gpu is None:
                close = suggest_gpu(name)
                raise Invalid(f"unknown GPU {name!r}", given=repr(name), valid="GPU names such as "
                              + ", ".join(list(GPU_MODELS)[:8]) + " ...", suggestion=close[0] if close else None)
            canonical.append(gpu)
        return tuple(canonical)
