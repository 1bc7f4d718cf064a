"""When on-prem capacity frees: a forecast from running work's expected ends, corrected by what finished runs showed.

Each on-prem node's free capacity is a step function of time: what is free now,
plus what each running job on it gives back when it is expected to end. A
running job's end is its start plus its expected hours times its team's (or
its team and job name's) learned ratio of actual to expected duration; one
already past that is expected to run on for half as long again as it has
overrun (the longer it overruns, the less the estimate is worth).

`Forecast.start(job)` is the earliest time `job.num_nodes` identical nodes each
have room for one node of the job, and which nodes. Reservations (`holds`) keep
their nodes from other work from the reservation's start to its end, unless the
other work ends before it starts (EASY backfill). Everything is computed per
job shape once and cached, so a round with 10,000 pending jobs walks the nodes
once per shape, not per job. Times are hours from the snapshot, so the core
needs no clock.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from placement.model import Demand, DurationRatio, Job, Offer, Running, Sharing, Tier
from policies.model import Policy

MIN_RUNS = 3  # finished runs a ratio needs before it is trusted
RATIO_BOUNDS = (0.05, 20.0)  # a learned ratio is clamped to this range
RECENT_RUNS = 50  # the latest runs of a key that count
OVERRUN_FLOOR_HOURS = 5 / 60  # the least a job already past its expected end is given to finish


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """A finished run as the store gives it: who ran it, how long it was expected to run and how long it ran."""

    team: str
    name: str
    expected_hours: float
    actual_hours: float


def learn_ratios(runs: Iterable[FinishedRun], min_runs: int = MIN_RUNS) -> tuple[DurationRatio, ...]:
    """Median actual/expected duration per (team, job name) and per team, over each key's latest runs.

    `runs` come newest first. The median, not the mean: one run killed early or stuck must not move it.
    """
    by_name: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_team: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        if run.expected_hours <= 0 or run.actual_hours < 0:
            continue
        ratio = run.actual_hours / run.expected_hours
        if len(by_name[(run.team, run.name)]) < RECENT_RUNS:
            by_name[(run.team, run.name)].append(ratio)
        if len(by_team[run.team]) < RECENT_RUNS:
            by_team[run.team].append(ratio)
    result = [DurationRatio(team, name, _clamp(statistics.median(r)), len(r))
              for (team, name), r in sorted(by_name.items()) if len(r) >= min_runs]
    result += [DurationRatio(team, None, _clamp(statistics.median(r)), len(r))
               for team, r in sorted(by_team.items()) if len(r) >= min_runs]
    return tuple(result)


def _clamp(ratio: float) -> float:
    return min(max(ratio, RATIO_BOUNDS[0]), RATIO_BOUNDS[1])


class Ratios:
    """Look-up of learned ratios: the team and job name's, else the team's, else 1."""

    def __init__(self, ratios: Iterable[DurationRatio]):
        self._named = {(r.team, r.name): r.ratio for r in ratios if r.name is not None}
        self._team = {r.team: r.ratio for r in ratios if r.name is None}

    def of(self, team: str, name: str) -> float:
        return self._named.get((team, name), self._team.get(team, 1.0))


def remaining_hours(work: Running, ratios: Ratios) -> float | None:
    """Hours until running work is expected to end (None: it has no expected end)."""
    if work.expected_hours is None:
        return None
    corrected = work.expected_hours * ratios.of(work.team, work.name)
    left = corrected - work.elapsed_hours
    return left if left > 0 else max(OVERRUN_FLOOR_HOURS, 0.5 * (work.elapsed_hours - corrected))


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation's hold on a node, in hours from the snapshot."""

    job_id: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Start:
    """Where and when a job is forecast to start on-prem."""

    hours: float  # from the snapshot
    nodes: tuple[Offer, ...]  # the nodes it would start on (their offers as of now)
    demand: Demand

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)


@dataclass(slots=True)
class _Node:
    offer: Offer
    whole: Offer  # the node as if empty: what a job may ever ask of it
    kind: tuple  # identical nodes (for gangs) share a kind
    times: list[float]  # step times of free capacity, ascending, starting at 0
    free: list[tuple[float, float, float]]  # free (GPUs, vCPUs, memory GB) from each step time on
    released: list[tuple[float, float, float]]  # what running work has given back by each step time


def _whole(offer: Offer) -> Offer:
    gpus, vcpus, memory_gb = offer.whole or (offer.gpu_count, offer.vcpus, offer.memory_gb)
    return dataclasses.replace(offer, gpu_count=gpus, vcpus=vcpus, memory_gb=memory_gb, reserved_for=None,
                               free_for_hours=None)


class Forecast:
    """Free on-prem capacity over time (see the module docstring)."""

    def __init__(self, offers: Iterable[Offer], running: Iterable[Running], ratios: Iterable[DurationRatio] = (),
                 holds: dict[str, Hold] | None = None):
        self.ratios = Ratios(ratios)
        self.holds = holds or {}
        releases: dict[str, list[tuple[float, tuple[float, float, float]]]] = defaultdict(list)
        for work in running:
            if work.tier is not Tier.ONPREM or not work.nodes:
                continue
            left = remaining_hours(work, self.ratios)
            if left is not None:
                for node in work.nodes:
                    releases[node].append((left, work.per_node))
        self.nodes: list[_Node] = []
        for offer in offers:
            if offer.tier is not Tier.ONPREM or offer.sharing is not Sharing.SHARED or offer.capacity is None:
                continue
            whole = _whole(offer)
            times, free, released = [0.0], [(offer.gpu_count, offer.vcpus, offer.memory_gb)], [(0.0, 0.0, 0.0)]
            for at, (g, c, m) in sorted(releases.get(offer.name, ())):
                f, r = free[-1], released[-1]
                cap = (whole.gpu_count, whole.vcpus, whole.memory_gb)
                new_free = tuple(min(a + b, w) for a, b, w in zip(f, (g, c, m), cap))
                new_released = tuple(a + b for a, b in zip(r, (g, c, m)))
                if at <= times[-1]:
                    free[-1], released[-1] = new_free, new_released
                else:
                    times.append(at)
                    free.append(new_free)
                    released.append(new_released)
            kind = (offer.gpu, whole.gpu_count, whole.vcpus, whole.memory_gb, offer.gpu_memory_gb,
                    offer.price_per_hour, offer.labels, offer.region)
            self.nodes.append(_Node(offer, whole, kind, times, free, released))
        # Identical nodes share a kind: one fits() check for all. A single-node job is only ever forecast on
        # nodes running work gives capacity back on (`busy_kinds`): an idle node that has no room for it now
        # never will, and one that has room now is a placement the round already sees.
        self.kinds: dict[tuple, list[int]] = defaultdict(list)
        self.busy_kinds: dict[tuple, list[int]] = defaultdict(list)
        self.largest: dict[str | None, float] = defaultdict(float)  # most GPUs of one node, per GPU type
        for index, node in enumerate(self.nodes):
            self.kinds[node.kind].append(index)
            if len(node.times) > 1:
                self.busy_kinds[node.kind].append(index)
            self.largest[node.offer.gpu] = max(self.largest[node.offer.gpu], node.whole.gpu_count)
        # By a demand's GPU type, for gangs (all nodes) or single nodes (busy ones): each kind's node indices
        # with its step times and free (GPUs, CPUs, memory), as (nodes x steps) arrays padded with each node's
        # last step (free capacity only grows, so padding never finds room earlier), for what is free and for
        # what running work gives back.
        self._by_gpu: dict[tuple[bool, str | None], list[tuple]] = defaultdict(list)
        for gang, kinds in ((True, self.kinds), (False, self.busy_kinds)):
            for kind, indices in kinds.items():
                arrays = (indices, *self._arrays(indices))
                self._by_gpu[(gang, kind[0])].append(arrays)
                if kind[0] is not None:
                    self._by_gpu[(gang, None)].append(arrays)  # a CPU-only job may use a GPU node's CPUs
        # Per job shape: (the kind's earliest start for num_nodes nodes, demand, the kind's (time, node) list),
        # earliest first; and the answer when no reservation holds a node.
        self._entries: dict[tuple, list[tuple[float, int, Demand, tuple[np.ndarray, np.ndarray]]]] = {}
        self._free_answers: dict[tuple, Start | None] = {}

    def __bool__(self) -> bool:
        return bool(self.nodes)

    def _arrays(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        steps = max(len(self.nodes[i].times) for i in indices)
        times = np.full((len(indices), steps), np.inf)
        free = np.zeros((3, len(indices), steps))
        released = np.zeros((3, len(indices), steps))
        for row, index in enumerate(indices):
            node = self.nodes[index]
            times[row, :len(node.times)] = node.times
            for target, profile in ((free, node.free), (released, node.released)):
                values = np.array(profile).T
                target[:, row, :values.shape[1]] = values
                target[:, row, values.shape[1]:] = values[:, -1:]
        return np.array(indices), times, free, released

    def _fit_times(self, job: Job, policy: Policy, releases_only: bool, key: tuple
                   ) -> list[tuple[float, int, Demand, tuple[np.ndarray, np.ndarray]]]:
        from placement.solve.candidates import fits  # candidates imports this module

        cached = self._entries.get(key)
        if cached is not None:
            return cached
        entries = []
        for position, demand in enumerate(job.demands):
            need = np.array([demand.accelerator_count, demand.cpus, demand.memory_gb])[:, None, None] - 1e-9
            for indices, nodes, times, free, released in self._by_gpu.get((job.num_nodes > 1, demand.accelerator),
                                                                          ()):
                if len(indices) < job.num_nodes or not fits(job, demand, self.nodes[indices[0]].whole, policy):
                    continue
                room = ((released if releases_only else free) >= need).all(axis=0)  # nodes x steps
                ok = room[:, -1]
                if ok.sum() < job.num_nodes:
                    continue
                at = times[np.arange(len(nodes)), room.argmax(axis=1)][ok]
                order = np.lexsort((nodes[ok], at))
                at, which = at[order], nodes[ok][order]
                entries.append((float(at[job.num_nodes - 1]), position, demand, (at, which)))
        entries.sort(key=lambda e: (e[0], e[1], int(e[3][1][0])))
        self._entries[key] = entries
        return entries

    def start(self, job: Job, policy: Policy, *, releases_only: bool = False) -> Start | None:
        """The earliest forecast on-prem start of `job` on nodes running work gives capacity back on (for a
        gang, with idle nodes that have room now); None: none of them ever has room for it. Whether an idle
        node has room now is for the round's options to say.

        `releases_only` counts only what running work gives back, as if what is free now were taken by
        others this round: when the job would next have room if it lost the capacity free now.
        """
        key = (job.demands, job.num_nodes, job.tiers, job.onprem_only, job.gpu_memory_gb, releases_only)
        if not self.holds and key in self._free_answers:
            return self._free_answers[key]
        best: Start | None = None
        for earliest, _, demand, times in self._fit_times(job, policy, releases_only, key):
            if best is not None and earliest >= best.hours - 1e-12:
                break  # holds only delay nodes: no later kind can beat the best found
            chosen = self._earliest_nodes(job, times)
            if chosen is not None and (best is None or chosen[0] < best.hours - 1e-12):
                best = Start(chosen[0], tuple(self.nodes[i].offer for i in chosen[1]), demand)
        if not self.holds:
            self._free_answers[key] = best
        return best

    def _earliest_nodes(self, job: Job, times: tuple[np.ndarray, np.ndarray]) -> tuple[float, list[int]] | None:
        """The `num_nodes` nodes of one kind that free first (`times`: when each has room, earliest first, and
        which node), reservations of other jobs respected."""
        at, which = times
        if not self.holds:
            return float(at[job.num_nodes - 1]), [int(i) for i in which[:job.num_nodes]]
        adjusted: list[tuple[float, int]] = []
        for at, index in zip(at.tolist(), which.tolist()):
            if len(adjusted) >= job.num_nodes and sorted(adjusted)[job.num_nodes - 1][0] <= at:
                break  # the nodes still to come free no earlier than those already picked
            hold = self.holds.get(self.nodes[index].offer.name)
            if hold is not None and hold.job_id != job.id and at + job.expected_hours > hold.start:
                at = max(at, hold.end)
            adjusted.append((at, index))
        adjusted.sort()
        picked = adjusted[:job.num_nodes]
        return (picked[-1][0], [i for _, i in picked]) if len(picked) == job.num_nodes else None

