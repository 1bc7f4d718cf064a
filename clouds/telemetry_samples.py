"""What GPU telemetry reports, as plain values: the readings an agent takes and hands over, and its own status.

Kept apart from `clouds.telemetry` (the NVML sampler and the Ray actor that runs it) so that what stores and
accounts for samples (`placement.store`, `placement.debt`) imports neither Ray nor NVML.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuDevice:
    node: str
    index: int
    name: str  # as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"
    uuid: str
    mem_total_bytes: int


@dataclass(frozen=True, slots=True)
class GpuSample:
    node: str
    gpu_index: int
    t: float  # seconds since the epoch
    util_gpu_pct: float  # share of the last sample period a kernel ran, 0-100 (NVML)
    util_mem_pct: float  # share of it memory was read or written, 0-100
    mem_used_bytes: int
    mem_total_bytes: int
    power_w: float | None  # None where the board does not report power


@dataclass(frozen=True, slots=True)
class ProcessSample:
    node: str
    gpu_index: int
    t: float
    pid: int
    handle: str | None  # the launch it belongs to; None when no ancestor names one
    mem_used_bytes: int | None  # None where NVML cannot tell (e.g. Windows WDDM)


@dataclass(frozen=True, slots=True)
class Reading:
    """Everything one `NvmlSampler.sample()` saw at one instant."""

    gpus: tuple[GpuSample, ...]
    processes: tuple[ProcessSample, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """What an agent sampled since its last drain, and how many readings the full buffer dropped."""

    gpus: tuple[GpuSample, ...]
    processes: tuple[ProcessSample, ...]
    dropped: int


@dataclass(frozen=True, slots=True)
class AgentStatus:
    node: str
    available: bool
    reason: str | None  # why there is no telemetry, or the last NVML error while sampling
    interval_s: float
    samples: int  # readings taken since the agent started
    dropped: int  # readings lost to a full buffer since the agent started
    cpu_s_per_sample: float | None  # CPU time the sampling thread spent per reading
