"""GPU samples as held intervals (the zero-order hold), and their folding into per-minute rows."""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from typing import TYPE_CHECKING

from placement.debt.records import GpuMinute

if TYPE_CHECKING:
    from clouds.telemetry_samples import GpuSample

_MINUTE = 60.0


class Segment(NamedTuple):  # NamedTuples: built a million times a day per node, frozen dataclasses cost 5x
    """One sample held over [start, end) on one GPU."""

    gpu_index: int
    start: float
    end: float
    utilization: float  # 0-1
    power_w: float | None


class Piece(NamedTuple):
    """A slice of a job's time on one of its GPUs, already weighted by its share of that GPU."""

    start: float
    end: float
    share: float
    utilization: float
    power_w: float | None


@dataclass(frozen=True, slots=True)


class NodeTelemetry:
    segments: list[Segment]  # sorted by GPU, then start
    covered: list[tuple[float, float]]  # when any of its GPUs was sampled: merged, sorted


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _segments(samples: list[GpuSample], max_gap_s: float) -> list[Segment]:
    """Zero-order hold per GPU (module doc); `samples` sorted by GPU, then time."""
    result = []
    for current, following in zip(samples, samples[1:]):
        if current.gpu_index != following.gpu_index or following.t <= current.t:
            continue
        result.append(Segment(current.gpu_index, current.t, min(following.t, current.t + max_gap_s),
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


def _coverage(segments: list[Segment]) -> list[tuple[float, float]]:
    """When any GPU of a node was sampled: each GPU's (sorted) run merged first, then across GPUs."""
    by_gpu: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for segment in segments:
        by_gpu[segment.gpu_index].append((segment.start, segment.end))
    return _merge(interval for runs in by_gpu.values() for interval in _merge(runs, presorted=True))


def covered_seconds(covered: list[tuple[float, float]], start: float, end: float) -> float:
    first = max(bisect.bisect_right(covered, (start, math.inf)) - 1, 0)
    total = 0.0
    for c0, c1 in covered[first:]:
        if c0 >= end:
            break
        total += overlap(c0, c1, start, end)
    return total


def telemetry_by_node(gpu_samples: Iterable[GpuSample], max_gap_s: float,
               gpu_minutes: Iterable[GpuMinute] = ()) -> dict[str, NodeTelemetry]:
    by_node: dict[str, list[GpuSample]] = defaultdict(list)
    for sample in gpu_samples:
        by_node[sample.node].append(sample)
    folded: dict[str, list[Segment]] = defaultdict(list)
    for minute in gpu_minutes:
        folded[minute.node].append(Segment(minute.gpu_index, minute.t, minute.t + minute.seconds,
                                            minute.util_gpu_pct / 100.0, minute.power_w))
    result = {}
    for node in by_node.keys() | folded.keys():
        samples = sorted(by_node.get(node, ()), key=lambda s: (s.gpu_index, s.t))
        segments = _segments(samples, max_gap_s)
        if node in folded:  # minute rows and raw samples never overlap (see `fold_minutes`)
            segments = sorted(segments + folded[node], key=lambda s: (s.gpu_index, s.start))
        result[node] = NodeTelemetry(segments, _coverage(segments))
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
