"""What computational-debt accounting reads and answers: allocations, usage, flags, reports."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum


@dataclass(frozen=True, slots=True)


class Allocation:
    """GPUs held by one launch of a job: what it pays for, whatever it uses."""

    handle: str  # the launch handle its processes are attributed to
    job_id: str
    team: str
    node: str  # as telemetry names it (on-prem node name, public cluster name)
    gpu_type: str | None  # canonical GPU name; None for CPU-only work
    gpus: float
    start: float  # seconds since the epoch
    end: float | None  # None: still running
    rate_per_hour: float  # $ per hour for all its GPUs
    pue: float
    gco2_per_kwh: float

    def __post_init__(self) -> None:
        for name in ("gpus", "rate_per_hour", "gco2_per_kwh"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"Allocation {self.handle}: {name} must be >= 0, got {getattr(self, name)}")
        if not self.pue >= 1:
            raise ValueError(f"Allocation {self.handle}: pue must be >= 1, got {self.pue}")
        if self.end is not None and self.end < self.start:
            raise ValueError(f"Allocation {self.handle}: end ({self.end}) is before start ({self.start})")

    @property
    def price_per_gpu_hour(self) -> float:
        return self.rate_per_hour / self.gpus if self.gpus else 0.0


@dataclass(frozen=True, slots=True)


class Usage:
    """Additive figures over a window; team and node usage are sums of job usage."""

    allocated_gpu_hours: float = 0.0
    observed_gpu_hours: float = 0.0
    utilized_gpu_hours: float = 0.0
    cost_usd: float = 0.0
    debt_usd: float = 0.0
    energy_kwh: float = 0.0
    energy_measured_kwh: float = 0.0  # the part of energy_kwh from NVML power readings
    carbon_kg: float = 0.0
    peak_mem_bytes: int | None = None  # largest GPU memory one job's processes held on one GPU

    @property
    def debt_gpu_hours(self) -> float:
        return self.observed_gpu_hours - self.utilized_gpu_hours

    @property
    def mean_utilization(self) -> float | None:
        """Utilized over observed GPU-hours (0-1); None when nothing was observed."""
        return self.utilized_gpu_hours / self.observed_gpu_hours if self.observed_gpu_hours else None

    def __add__(self, other: Usage) -> Usage:
        peaks = [p for p in (self.peak_mem_bytes, other.peak_mem_bytes) if p is not None]
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
                       if f.name != "peak_mem_bytes"), peak_mem_bytes=max(peaks) if peaks else None)


@dataclass(frozen=True, slots=True)


class JobUsage:
    allocation: Allocation
    usage: Usage
    observed_hours: float  # wall-clock time of the allocation inside the window that telemetry covered


class FlagKind(StrEnum):
    NO_GPU_USE = "NoGpuUse"
    LOW_UTILIZATION = "LowUtilization"
    OVERSIZED_MEMORY = "OversizedGpuMemory"


@dataclass(frozen=True, slots=True)


class Recommendation:
    """What a similar job should ask for next time: `gpus` of `gpu_type` (0 GPUs and None: CPU only)."""

    gpu_type: str | None
    gpus: float
    text: str


@dataclass(frozen=True, slots=True)


class Flag:
    handle: str
    job_id: str
    team: str
    kind: FlagKind
    reason: str
    recommendation: Recommendation


@dataclass(frozen=True, slots=True)


class DebtReport:
    since: float
    until: float
    jobs: tuple[JobUsage, ...]  # worst offenders (largest debt $) first
    teams: dict[str, Usage]
    nodes: dict[str, Usage]
    unattributed_gpu_hours: dict[str, float]  # per node: utilization no job of the report accounts for
    flags: tuple[Flag, ...]

    @property
    def total(self) -> Usage:
        return sum((j.usage for j in self.jobs), Usage())


@dataclass(frozen=True, slots=True)


class UsageSeries:
    """Mean allocated and utilized GPUs per time step (for plotting)."""

    t: tuple[float, ...]  # start of each step
    allocated_gpus: tuple[float, ...]
    utilized_gpus: tuple[float, ...]


@dataclass(frozen=True, slots=True)


class GpuMinute:
    """Raw samples of one GPU folded into one minute: `seconds` of holds from `t` (its first covered instant)."""

    node: str
    gpu_index: int
    t: float
    seconds: float
    util_gpu_pct: float  # mean over the covered seconds, 0-100
    power_w: float | None  # mean over the covered seconds with a power reading; None: none had one
    mem_used_bytes: int  # the largest reading of the minute
    mem_total_bytes: int
