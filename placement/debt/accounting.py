"""Per-job, per-team and per-node figures over a window: GPU-hours allocated, used and wasted, kWh, CO2e."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from clouds.gpus import gpu_tdp_watts
from placement.debt.flags import flags_for
from placement.debt.power import PowerCurve
from placement.debt.records import Allocation, DebtReport, GpuMinute, JobUsage, Usage, UsageSeries
from placement.debt.samples import NodeTelemetry, Piece, Segment, covered_seconds, overlap, telemetry_by_node
from policies.debt import DebtSettings

if TYPE_CHECKING:
    from clouds.telemetry_samples import GpuSample, ProcessSample

_J_PER_KWH = 3.6e6


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


def _pieces(allocations: list[Allocation], telemetry: dict[str, NodeTelemetry],
            owned: dict[str, set[int]], since: float, until: float) -> dict[str, list[Piece]]:
    """Each launch's slices of its GPUs' segments inside the window, split among co-owners."""
    owners: dict[tuple[str, int], list[tuple[float, float, str]]] = defaultdict(list)
    for allocation in allocations:
        start, end = _span(allocation, since, until)
        for gpu in owned.get(allocation.handle, ()):
            if end > start:
                owners[(allocation.node, gpu)].append((start, end, allocation.handle))
    result: dict[str, list[Piece]] = defaultdict(list)
    for node, node_telemetry in telemetry.items():
        segments_by_gpu: dict[int, list[Segment]] = defaultdict(list)
        for segment in node_telemetry.segments:
            segments_by_gpu[segment.gpu_index].append(segment)
        for gpu, segments in segments_by_gpu.items():
            intervals = sorted(owners.get((node, gpu), ()))
            if intervals:
                _split(segments, intervals, result)
    return result


def _split(segments: list[Segment], intervals: list[tuple[float, float, str]],
           result: dict[str, list[Piece]]) -> None:
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
            result[active[0][2]].append(Piece(segment.start, segment.end, 1.0, segment.utilization, segment.power_w))
            continue
        cuts = sorted({segment.start, segment.end} | {t for o in active for t in o[:2]
                                                      if segment.start < t < segment.end})
        for lo, hi in zip(cuts, cuts[1:]):
            holders = [o[2] for o in active if o[0] <= lo and o[1] >= hi]
            for handle in holders:
                result[handle].append(Piece(lo, hi, 1.0 / len(holders), segment.utilization, segment.power_w))


def _curve(gpu_type: str | None, power_curves: Mapping[str, PowerCurve]) -> PowerCurve | None:
    if gpu_type is None:
        return None
    if gpu_type in power_curves:
        return power_curves[gpu_type]
    tdp = gpu_tdp_watts(gpu_type)
    return PowerCurve.from_tdp(tdp) if tdp is not None else None


def _job_usage(allocation: Allocation, pieces: list[Piece], node: NodeTelemetry | None, peak: int | None,
               since: float, until: float, settings: DebtSettings, curve: PowerCurve | None) -> JobUsage:
    start, end = _span(allocation, since, until)
    seconds = end - start
    observed_s = covered_seconds(node.covered, start, end) if node is not None else 0.0
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
    telemetry = telemetry_by_node(gpu_samples, settings.max_sample_gap_s, gpu_minutes)
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
        total = sum(overlap(s.start, s.end, since, until) * s.utilization for s in node_telemetry.segments) / 3600.0
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
    pieces = _pieces(allocations, telemetry_by_node(gpu_samples, settings.max_sample_gap_s, gpu_minutes), owned, since,
                     until)
    steps = math.ceil((until - since) / step_s)
    allocated, utilized = [0.0] * steps, [0.0] * steps

    def spread(into: list[float], start: float, end: float, rate: float) -> None:
        first, last = int((start - since) // step_s), min(int((end - since) // step_s), steps - 1)
        for i in range(first, last + 1):
            lo = since + i * step_s
            into[i] += overlap(start, end, lo, min(lo + step_s, until)) * rate

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
