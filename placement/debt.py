"""Computational debt: GPU-hours allocated to jobs against GPU-hours they used, with energy and carbon.

Pure: allocations and telemetry samples in, figures out; no clock, no I/O.

Integration rule (zero-order hold): a GPU sample's values hold from its time until that
GPU's next sample, for at most `DebtSettings.max_sample_gap_s` (a longer gap is a sampler
outage and counts as unobserved). The last sample of a GPU closes the previous interval
and holds for no time. So over samples t0 < t1 < ... < tn of one GPU:
    utilized GPU-hours = sum_i util_i / 100 * (t_{i+1} - t_i) / 3600     (i < n)
    energy kWh         = sum_i power_i * (t_{i+1} - t_i) / 3.6e6 * PUE

Which GPUs are a job's: those on which a process attributed to its launch handle ran at
any time during its allocation (`clouds.telemetry` attributes processes). From its start
to its end the job owns them; a GPU owned by several jobs at once is split equally.

Per job:
- allocated GPU-hours: GPUs x the allocation's time inside the window;
- observed GPU-hours: the part of that during which its node was sampled;
- utilized GPU-hours: utilization x time over its GPUs (above);
- debt GPU-hours: observed - utilized (what telemetry proves was paid for and unused; equal to
  allocated - utilized when telemetry covers the whole allocation); debt $ = that x the
  allocation's price per GPU-hour;
- energy: measured power over its GPUs; where power is not reported, the GPU's power curve at
  the measured utilization; allocated GPUs it never touched draw the curve's idle power;
  unobserved GPU-time draws the curve at `assumed_utilization`; all times the PUE. Carbon: the
  energy x the allocation's grid intensity.
Per team and per node: the sums over their jobs. Utilization on a node that no job accounts
for (unattributed processes, foreign work) is reported per node apart.

Old samples are folded into per-minute rows (`fold_minutes`, run by the store): each row holds the
seconds its GPU was covered by holds in that minute, from its first covered instant, with the mean
utilization and power over them and the largest memory. Accounting reads a row as one hold of that
length, so allocated and utilized GPU-hours come out as from the raw samples (a row is placed at its
first covered instant, so only an allocation starting or ending inside a minute can shift, by less
than that minute).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clouds.gpus import GPU_MODELS, canonical_gpu, gpu_memory_gb, gpu_tdp_watts, suggest_gpu
from placement.yamlio import Invalid

if TYPE_CHECKING:
    from clouds.telemetry_samples import GpuSample, ProcessSample

_GIB = 1024 ** 3
_J_PER_KWH = 3.6e6
_MINUTE = 60.0

# cloud-carbon-footprint's GPU power curve, as a share of full-load watts: every row of
# configs/energy/gpu_power_curve_aws_instances_ccf.csv has these ratios (K520 ... A100).
CCF_CURVE_SHAPE = (0.114, 0.3125, 0.7386, 1.0)  # at 0, 10, 50 and 100% utilization
_CURVE_POINTS = (0.0, 0.1, 0.5, 1.0)


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


@dataclass(frozen=True, slots=True)
class PowerCurve:
    """Watts one GPU draws at 0, 10, 50 and 100% utilization; linear in between."""

    idle_w: float
    at_10_w: float
    at_50_w: float
    at_100_w: float

    @classmethod
    def from_tdp(cls, tdp_w: float) -> PowerCurve:
        """cloud-carbon-footprint's curve shape scaled to a GPU's full-load power."""
        return cls(*(tdp_w * share for share in CCF_CURVE_SHAPE))

    def watts(self, utilization: float) -> float:
        u = min(max(utilization, 0.0), 1.0)
        points = (self.idle_w, self.at_10_w, self.at_50_w, self.at_100_w)
        i = max(bisect.bisect_right(_CURVE_POINTS, u) - 1, 0)
        if i == len(_CURVE_POINTS) - 1:
            return points[-1]
        x0, x1 = _CURVE_POINTS[i], _CURVE_POINTS[i + 1]
        return points[i] + (points[i + 1] - points[i]) * (u - x0) / (x1 - x0)


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


# --- integration ---------------------------------------------------------------------------


class _Segment(NamedTuple):  # NamedTuples: built a million times a day per node, frozen dataclasses cost 5x
    """One sample held over [start, end) on one GPU."""

    gpu_index: int
    start: float
    end: float
    utilization: float  # 0-1
    power_w: float | None


class _Piece(NamedTuple):
    """A slice of a job's time on one of its GPUs, already weighted by its share of that GPU."""

    start: float
    end: float
    share: float
    utilization: float
    power_w: float | None


@dataclass(frozen=True, slots=True)
class _NodeTelemetry:
    segments: list[_Segment]  # sorted by GPU, then start
    covered: list[tuple[float, float]]  # when any of its GPUs was sampled: merged, sorted


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _segments(samples: list[GpuSample], max_gap_s: float) -> list[_Segment]:
    """Zero-order hold per GPU (module doc); `samples` sorted by GPU, then time."""
    result = []
    for current, following in zip(samples, samples[1:]):
        if current.gpu_index != following.gpu_index or following.t <= current.t:
            continue
        result.append(_Segment(current.gpu_index, current.t, min(following.t, current.t + max_gap_s),
                               current.util_gpu_pct / 100.0, current.power_w))
    return result


def _merge(intervals: Iterable[tuple[float, float]], presorted: bool = False) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in intervals if presorted else sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _coverage(segments: list[_Segment]) -> list[tuple[float, float]]:
    """When any GPU of a node was sampled: each GPU's (sorted) run merged first, then across GPUs."""
    by_gpu: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for segment in segments:
        by_gpu[segment.gpu_index].append((segment.start, segment.end))
    return _merge(interval for runs in by_gpu.values() for interval in _merge(runs, presorted=True))


def _covered_seconds(covered: list[tuple[float, float]], start: float, end: float) -> float:
    first = max(bisect.bisect_right(covered, (start, math.inf)) - 1, 0)
    total = 0.0
    for c0, c1 in covered[first:]:
        if c0 >= end:
            break
        total += _overlap(c0, c1, start, end)
    return total


def _telemetry(gpu_samples: Iterable[GpuSample], max_gap_s: float,
               gpu_minutes: Iterable[GpuMinute] = ()) -> dict[str, _NodeTelemetry]:
    by_node: dict[str, list[GpuSample]] = defaultdict(list)
    for sample in gpu_samples:
        by_node[sample.node].append(sample)
    folded: dict[str, list[_Segment]] = defaultdict(list)
    for minute in gpu_minutes:
        folded[minute.node].append(_Segment(minute.gpu_index, minute.t, minute.t + minute.seconds,
                                            minute.util_gpu_pct / 100.0, minute.power_w))
    result = {}
    for node in by_node.keys() | folded.keys():
        samples = sorted(by_node.get(node, ()), key=lambda s: (s.gpu_index, s.t))
        segments = _segments(samples, max_gap_s)
        if node in folded:  # minute rows and raw samples never overlap (see `fold_minutes`)
            segments = sorted(segments + folded[node], key=lambda s: (s.gpu_index, s.start))
        result[node] = _NodeTelemetry(segments, _coverage(segments))
    return result


def fold_minutes(samples: Sequence[GpuSample], successors: Mapping[tuple[str, int], float], cutoff: float,
                 max_gap_s: float) -> tuple[list[GpuMinute], dict[tuple[str, int], float]]:
    """Per-minute rows of the holds of raw samples taken before `cutoff` (sorted by node, GPU and time).

    `successors` gives, per (node, GPU), the time of its first sample at or after `cutoff` (none: the
    GPU's last sample before it holds no time, as in `account`). A hold that reaches past `cutoff`
    (only a GPU's last sample before it can) is not folded: that sample stays raw until the next fold,
    which adds the rest of its minute to the same row. Returns the rows and, per GPU, the time before
    which its raw samples are folded (and may be deleted).
    """
    buckets: dict[tuple[str, int, int], list[float]] = {}  # [first t, seconds, util x s, W x s, s with W, mem, total]
    folded_before: dict[tuple[str, int], float] = {}

    def bucket(sample: GpuSample, minute: int) -> list[float]:
        key = (sample.node, sample.gpu_index, minute)
        if key not in buckets:
            buckets[key] = [math.inf, 0.0, 0.0, 0.0, 0.0, 0, sample.mem_total_bytes]
        return buckets[key]

    for i, sample in enumerate(samples):
        gpu = (sample.node, sample.gpu_index)
        following = samples[i + 1].t if i + 1 < len(samples) and (samples[i + 1].node,
                                                                   samples[i + 1].gpu_index) == gpu \
            else successors.get(gpu)
        end = sample.t if following is None or following <= sample.t else min(following, sample.t + max_gap_s)
        if end > cutoff:
            folded_before[gpu] = sample.t
            continue
        folded_before.setdefault(gpu, cutoff)
        row = bucket(sample, int(sample.t // _MINUTE))
        row[5] = max(row[5], sample.mem_used_bytes)
        start = sample.t
        while start < end:
            minute = int(start // _MINUTE)
            stop = min(end, (minute + 1) * _MINUTE)
            row = bucket(sample, minute)
            row[0] = min(row[0], start)
            row[1] += stop - start
            row[2] += (stop - start) * sample.util_gpu_pct
            if sample.power_w is not None:
                row[3] += (stop - start) * sample.power_w
                row[4] += stop - start
            start = stop
    rows = [GpuMinute(node, gpu, first, seconds, util_s / seconds, watt_s / powered_s if powered_s else None,
                      int(mem), int(total))
            for (node, gpu, _), (first, seconds, util_s, watt_s, powered_s, mem, total) in buckets.items()
            if seconds > 0]
    return rows, folded_before


def _span(allocation: Allocation, since: float, until: float) -> tuple[float, float]:
    end = until if allocation.end is None else min(allocation.end, until)
    start = max(allocation.start, since)
    return start, max(start, end)


def _owned_gpus(allocations: list[Allocation], process_samples: Iterable[ProcessSample], since: float,
                until: float) -> tuple[dict[str, set[int]], dict[str, int]]:
    """GPUs each launch ran a process on during its allocation, and its peak memory on one GPU in the window."""
    by_handle = {a.handle: a for a in allocations}
    owned: dict[str, set[int]] = defaultdict(set)
    memory: dict[tuple[str, int, float], int] = defaultdict(int)
    for sample in process_samples:
        allocation = by_handle.get(sample.handle) if sample.handle is not None else None
        if allocation is None or sample.node != allocation.node or sample.t < allocation.start or (
                allocation.end is not None and sample.t > allocation.end):
            continue
        owned[allocation.handle].add(sample.gpu_index)
        if sample.mem_used_bytes is not None and since <= sample.t < until:
            memory[(allocation.handle, sample.gpu_index, sample.t)] += sample.mem_used_bytes
    peaks: dict[str, int] = {}
    for (handle, _, _), used in memory.items():
        peaks[handle] = max(peaks.get(handle, 0), used)
    return owned, peaks


def _pieces(allocations: list[Allocation], telemetry: dict[str, _NodeTelemetry],
            owned: dict[str, set[int]], since: float, until: float) -> dict[str, list[_Piece]]:
    """Each launch's slices of its GPUs' segments inside the window, split among co-owners."""
    owners: dict[tuple[str, int], list[tuple[float, float, str]]] = defaultdict(list)
    for allocation in allocations:
        start, end = _span(allocation, since, until)
        for gpu in owned.get(allocation.handle, ()):
            if end > start:
                owners[(allocation.node, gpu)].append((start, end, allocation.handle))
    result: dict[str, list[_Piece]] = defaultdict(list)
    for node, node_telemetry in telemetry.items():
        segments_by_gpu: dict[int, list[_Segment]] = defaultdict(list)
        for segment in node_telemetry.segments:
            segments_by_gpu[segment.gpu_index].append(segment)
        for gpu, segments in segments_by_gpu.items():
            intervals = sorted(owners.get((node, gpu), ()))
            if intervals:
                _split(segments, intervals, result)
    return result


def _split(segments: list[_Segment], intervals: list[tuple[float, float, str]],
           result: dict[str, list[_Piece]]) -> None:
    """Sweep a GPU's segments (sorted) against its owners' intervals (sorted by start)."""
    active: list[tuple[float, float, str]] = []
    next_owner = 0
    for segment in segments:
        while next_owner < len(intervals) and intervals[next_owner][0] < segment.end:
            active.append(intervals[next_owner])
            next_owner += 1
        active = [o for o in active if o[1] > segment.start]
        if not active:
            continue
        if len(active) == 1 and active[0][0] <= segment.start and active[0][1] >= segment.end:  # the usual case
            result[active[0][2]].append(_Piece(segment.start, segment.end, 1.0, segment.utilization, segment.power_w))
            continue
        cuts = sorted({segment.start, segment.end} | {t for o in active for t in o[:2]
                                                      if segment.start < t < segment.end})
        for lo, hi in zip(cuts, cuts[1:]):
            holders = [o[2] for o in active if o[0] <= lo and o[1] >= hi]
            for handle in holders:
                result[handle].append(_Piece(lo, hi, 1.0 / len(holders), segment.utilization, segment.power_w))


def _curve(gpu_type: str | None, power_curves: Mapping[str, PowerCurve]) -> PowerCurve | None:
    if gpu_type is None:
        return None
    if gpu_type in power_curves:
        return power_curves[gpu_type]
    tdp = gpu_tdp_watts(gpu_type)
    return PowerCurve.from_tdp(tdp) if tdp is not None else None


def _job_usage(allocation: Allocation, pieces: list[_Piece], node: _NodeTelemetry | None, peak: int | None,
               since: float, until: float, settings: DebtSettings, curve: PowerCurve | None) -> JobUsage:
    start, end = _span(allocation, since, until)
    seconds = end - start
    observed_s = _covered_seconds(node.covered, start, end) if node is not None else 0.0
    utilized_s = measured_j = estimated_j = owned_gpu_s = 0.0
    for piece in pieces:
        weight = (piece.end - piece.start) * piece.share
        owned_gpu_s += weight
        utilized_s += weight * piece.utilization
        if piece.power_w is not None:
            measured_j += weight * piece.power_w
        elif curve is not None:
            estimated_j += weight * curve.watts(piece.utilization)
    if curve is not None:
        idle_gpu_s = max(0.0, allocation.gpus * observed_s - owned_gpu_s)
        unobserved_gpu_s = allocation.gpus * (seconds - observed_s)
        estimated_j += idle_gpu_s * curve.idle_w + unobserved_gpu_s * curve.watts(settings.assumed_utilization)
    allocated_h = allocation.gpus * seconds / 3600.0
    observed_h = allocation.gpus * observed_s / 3600.0
    utilized_h = utilized_s / 3600.0
    energy_kwh = (measured_j + estimated_j) / _J_PER_KWH * allocation.pue
    usage = Usage(
        allocated_gpu_hours=allocated_h, observed_gpu_hours=observed_h, utilized_gpu_hours=utilized_h,
        cost_usd=allocated_h * allocation.price_per_gpu_hour,
        debt_usd=(observed_h - utilized_h) * allocation.price_per_gpu_hour,
        energy_kwh=energy_kwh, energy_measured_kwh=measured_j / _J_PER_KWH * allocation.pue,
        carbon_kg=energy_kwh * allocation.gco2_per_kwh / 1000.0, peak_mem_bytes=peak)
    return JobUsage(allocation, usage, observed_s / 3600.0)


# --- flags ---------------------------------------------------------------------------------


def smaller_gpu(peak_mem_bytes: int, gpu_type: str, settings: DebtSettings) -> str | None:
    """The smallest-memory recommendable GPU that holds the peak with headroom and is smaller than `gpu_type`."""
    current = gpu_memory_gb(gpu_type)
    if current is None:
        return None
    need_gb = peak_mem_bytes * settings.memory_headroom / _GIB
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
    if usage.peak_mem_bytes is not None and gpu_mem and usage.peak_mem_bytes < settings.memory_fraction * gpu_mem * _GIB:
        smaller = smaller_gpu(usage.peak_mem_bytes, allocation.gpu_type, settings)
        if smaller is not None:
            result.append(flag(
                FlagKind.OVERSIZED_MEMORY,
                f"peak GPU memory {usage.peak_mem_bytes / _GIB:.1f} GiB of the {allocation.gpu_type}'s {gpu_mem:g} GB",
                Recommendation(smaller, allocation.gpus, f"a {smaller} ({GPU_MODELS[smaller].memory_gb:g} GB) fits")))
    return tuple(result)


# --- entry points --------------------------------------------------------------------------


def _check_window(since: float, until: float) -> None:
    if not until > since:
        raise ValueError(f"the window must end after it starts: since={since}, until={until}")


def account(allocations: Iterable[Allocation], gpu_samples: Iterable[GpuSample],
            process_samples: Iterable[ProcessSample], since: float, until: float,
            settings: DebtSettings = DebtSettings(),
            power_curves: Mapping[str, PowerCurve] | None = None, gpu_minutes: Iterable[GpuMinute] = ()) -> DebtReport:
    """Debt per job, team and node over [since, until), with flags; curves default to `PowerCurve.from_tdp`.

    `gpu_minutes` are older samples already folded (`fold_minutes`); they count as the samples they replaced.
    """
    _check_window(since, until)
    allocations = [a for a in allocations if _span(a, since, until)[1] > max(a.start, since)]  # overlaps the window
    telemetry = _telemetry(gpu_samples, settings.max_sample_gap_s, gpu_minutes)
    owned, peaks = _owned_gpus(allocations, process_samples, since, until)
    pieces = _pieces(allocations, telemetry, owned, since, until)
    curves = power_curves or {}
    jobs = sorted((_job_usage(a, pieces.get(a.handle, []), telemetry.get(a.node), peaks.get(a.handle),
                              since, until, settings, _curve(a.gpu_type, curves)) for a in allocations),
                  key=lambda j: (-j.usage.debt_usd, -j.usage.debt_gpu_hours, j.allocation.handle))
    teams: dict[str, Usage] = defaultdict(Usage)
    nodes: dict[str, Usage] = defaultdict(Usage)
    for job in jobs:
        teams[job.allocation.team] += job.usage
        nodes[job.allocation.node] += job.usage
    unattributed = {}
    for node, node_telemetry in telemetry.items():
        total = sum(_overlap(s.start, s.end, since, until) * s.utilization for s in node_telemetry.segments) / 3600.0
        unattributed[node] = total - (nodes[node].utilized_gpu_hours if node in nodes else 0.0)
    flags = tuple(f for job in jobs for f in flags_for(job, settings))
    return DebtReport(since, until, tuple(jobs), dict(teams), dict(nodes), unattributed, flags)


def usage_series(allocations: Iterable[Allocation], gpu_samples: Iterable[GpuSample],
                 process_samples: Iterable[ProcessSample], since: float, until: float, step_s: float,
                 settings: DebtSettings = DebtSettings(), gpu_minutes: Iterable[GpuMinute] = ()) -> UsageSeries:
    """Mean allocated and utilized GPUs in each `step_s` of [since, until), by the same rules as `account`."""
    _check_window(since, until)
    if not step_s > 0:
        raise ValueError(f"step_s must be > 0 seconds, got {step_s}")
    allocations = list(allocations)
    owned, _ = _owned_gpus(allocations, process_samples, since, until)
    pieces = _pieces(allocations, _telemetry(gpu_samples, settings.max_sample_gap_s, gpu_minutes), owned, since,
                     until)
    steps = math.ceil((until - since) / step_s)
    allocated, utilized = [0.0] * steps, [0.0] * steps

    def spread(into: list[float], start: float, end: float, rate: float) -> None:
        first, last = int((start - since) // step_s), min(int((end - since) // step_s), steps - 1)
        for i in range(first, last + 1):
            lo = since + i * step_s
            into[i] += _overlap(start, end, lo, min(lo + step_s, until)) * rate

    for allocation in allocations:
        start, end = _span(allocation, since, until)
        if end > start:
            spread(allocated, start, end, allocation.gpus)
    for job_pieces in pieces.values():
        for piece in job_pieces:
            spread(utilized, piece.start, piece.end, piece.share * piece.utilization)
    widths = [min(step_s, until - since - i * step_s) for i in range(steps)]
    return UsageSeries(tuple(since + i * step_s for i in range(steps)),
                       tuple(a / w for a, w in zip(allocated, widths)),
                       tuple(u / w for u, w in zip(utilized, widths)))
