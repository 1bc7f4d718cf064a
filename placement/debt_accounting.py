"""Computational debt in the service: the store's launches and telemetry turned into `placement.debt`'s figures.

What the engine keeps of them, each round: finished jobs' figures worked out once (`assess_finished`),
running launches' usage checkpointed (`checkpoint_usage`), old telemetry folded (`compact_telemetry`).
What it answers: `debt`, a job's `efficiency`, each job's `usage` for `status`, the dashboard's `team_debt`,
and the `idle_work` a cap exceeded stops first. The figures themselves are `placement.debt`'s (pure).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clouds.energy import grid_intensity, power_curves, pue
from clouds.gpus import canonical_gpu, gpu_memory_gb
from clouds.telemetry_samples import GpuSample, ProcessSample
from placement.debt import (Allocation, DebtReport, Flag, GpuMinute, JobUsage, Usage, account,
                            flags_for, usage_series)
from placement.memory_history import MemoryPeak, facts_key
from placement.model import Offer, Tier
from placement.rightsizing import SimilarJobFlag
from placement.solve.limits import capped_scopes
from placement.state_builder import idle_jobs
from placement.store import ACTIVE, Compaction, JobRecord, JobState, JobUsageRecord, Store, UsageCheckpoint
from policies.model import Policy

log = logging.getLogger(__name__)


COMPACTION_INTERVAL_S = 3600.0  # telemetry is folded and expired at most this often
COMPACTION_CHUNK_S = 3600.0  # a backlog is folded this much sample time per transaction...
COMPACTION_BUDGET_S = 1.0  # ...for at most about this long per round
_COMPACTED_AT = "telemetry_compacted_at"  # store meta: when the last compaction ran (engine clock)
CHECKPOINT_INTERVAL_S = 600.0  # running launches' usage is checkpointed at most this often...
SAMPLE_LAG_S = 300.0  # ...up to this long ago: samples still on their way (a drain left for a later round) count
_CHECKPOINTED_AT = "usage_checkpointed_at"  # store meta: when the last checkpoint pass ran (engine clock)
_ASSESS_PER_ROUND = 50  # finished jobs whose figures one round works out (a store from before this keeps up)
UTILIZED_NOW_S = 60.0  # `team_debt`'s "utilized now" is the mean over this much of the latest samples


@dataclass(frozen=True, slots=True)
class TeamDebt:
    """A team's figures for the dashboard (`DebtAccounting.team_debt`)."""

    utilized_gpus: float  # GPU-equivalents busy now: mean utilization over the latest samples of its jobs' GPUs
    debt_usd: float  # over the window
    energy_kwh: float
    carbon_kg: float


@dataclass(frozen=True, slots=True)
class _Telemetry:
    """What the store holds for some nodes and launches over a window: raw samples and folded minute rows."""

    gpu_samples: list[GpuSample]
    gpu_minutes: list[GpuMinute]
    process_samples: list[ProcessSample]

    def after(self, t: float, max_gap_s: float) -> _Telemetry:
        """Only what was sampled from `t` on (GPU readings up to a hold earlier too: they may reach `t`)."""
        return _Telemetry([g for g in self.gpu_samples if g.t >= t - max_gap_s],
                          [m for m in self.gpu_minutes if m.t >= t - 60.0],  # a minute row holds under a minute
                          [p for p in self.process_samples if p.t >= t])


class DebtAccounting:
    """The service's computational-debt bookkeeping and answers, over the store's records and telemetry."""

    def __init__(self, store: Store, policy: Policy, offers: Mapping[str, Offer], clock: Callable[[], float],
                 raw_retention_s: float, minute_retention_s: float):
        """`offers`: the static offers by id (a launch's grid intensity); the retentions: `ServiceConfig`'s
        `telemetry_raw_retention_s` and `telemetry_minute_retention_s`."""
        self.store = store
        self.policy = policy
        self.offers = offers
        self.clock = clock
        self.raw_retention_s = raw_retention_s
        self.minute_retention_s = minute_retention_s

    def idle_work(self, now: float) -> frozenset[str]:
        """Running cloud work whose GPUs telemetry saw do nothing over the policy's window (`debt.
        low_utilization_window_s`): what a cap exceeded stops first. Only read where a cap could act."""
        if not capped_scopes(self.policy.caps):
            return frozenset()
        records = [r for r in self.store.jobs(states=[JobState.RUNNING]) if r.tier and r.tier is not Tier.ONPREM
                   and r.gpus]
        if not records:
            return frozenset()
        window = self.policy.debt.low_utilization_window_s
        try:
            report, _, _ = self.report(records, now - window, now)
        except Exception:  # telemetry that cannot be read leaves no work idle; placement goes on
            log.exception("reading telemetry for idle work failed; no work counts as idle this round")
            return frozenset()
        return idle_jobs(report.jobs, window)

    def usage(self, records: list[JobRecord], now: float) -> dict[str, JobUsageRecord]:
        """Each job's figures over its whole run so far, as `debt` works them out: stored once a job has
        finished (`assess_finished`), else its checkpoints and the telemetry since."""
        ran = [r for r in records if r.started_at is not None and r.tier]
        result = self.store.job_usage(r.id for r in ran if r.state.terminal)
        live = [r for r in ran if r.id not in result]
        result.update({job_id: _usage_record(parts)
                       for job_id, parts in _by_job(self._run_usage(live, now)).items()})
        return result

    def debt(self, team: str | None = None, since_s: float = 7 * 86400, series: bool = False,
             plot_path: str | None = None) -> dict[str, Any]:
        """Allocated against utilized GPU-hours over the last `since_s` seconds, per team and job, worst first.

        Jobs are the launches the store recorded (the latest attempt of each); their GPUs' telemetry
        comes from the store. Where there is none (public and private launches, nodes without NVML)
        a job's figures are allocation-only: no debt is claimed, and energy is the GPU's power curve at
        `DebtSettings.assumed_utilization`. `series` adds allocated and utilized GPUs over time (what
        `plot_path`, a PNG, draws).
        """
        if not since_s > 0:
            raise ValueError(f"since must be a positive duration, got {since_s} s")
        until = self.clock()
        since = until - since_s
        report, allocations, telemetry = self.report(self.store.jobs(team=team), since, until)
        flags: dict[str, list[Flag]] = defaultdict(list)
        for flag in report.flags:
            flags[flag.job_id].append(flag)
        job_rows = [_job_debt_row(job_id, parts, flags.get(job_id, []))
                    for job_id, parts in _by_job(report.jobs).items()]
        job_rows.sort(key=lambda r: (-r["debt_usd"], -r["debt_gpu_hours"], r["job"]))
        team_rows = sorted(({"team": name, **_usage_row(usage)} for name, usage in report.teams.items()),
                           key=lambda r: (-r["debt_usd"], -r["debt_gpu_hours"], r["team"]))
        agents = [{"node": status.node, "available": status.available, "reason": status.reason,
                   "samples": status.samples, "dropped": status.dropped,
                   "cpu_ms_per_sample": round(status.cpu_s_per_sample * 1000, 3)
                   if status.cpu_s_per_sample is not None else None, "reported_at": at}
                  for status, at in self.store.agent_statuses()]
        answer: dict[str, Any] = {
            "since": since, "until": until, "team": team,
            "telemetry": {"available": any(a["available"] for a in agents), "gpu_samples": len(telemetry.gpu_samples),
                          "gpu_minute_rows": len(telemetry.gpu_minutes), "agents": agents},
            "total": _usage_row(report.total), "teams": team_rows, "jobs": job_rows,
            "unattributed_gpu_hours": {node: round(hours, 4) for node, hours in report.unattributed_gpu_hours.items()}}
        if series or plot_path:
            points = usage_series(allocations, telemetry.gpu_samples, telemetry.process_samples, since, until,
                                  step_s=max(60.0, since_s / 240), settings=self.policy.debt,
                                  gpu_minutes=telemetry.gpu_minutes)
            answer["series"] = {"t": list(points.t), "allocated_gpus": [round(v, 4) for v in points.allocated_gpus],
                                "utilized_gpus": [round(v, 4) for v in points.utilized_gpus]}
            if plot_path:
                from placement.debt_plot import plot_allocation_vs_utilization  # matplotlib: only when drawing

                answer["plot"] = str(plot_allocation_vs_utilization(points, plot_path, _plot_title(team, since_s)))
        return answer

    def report(self, records: list[JobRecord], since: float, until: float
                     ) -> tuple[DebtReport, list[Allocation], _Telemetry]:
        allocations = [a for r in records for a in self._allocations(r)]
        telemetry = self._telemetry(records, allocations, since, until)
        return self._account(allocations, telemetry, since, until), allocations, telemetry

    def _telemetry(self, records: list[JobRecord], allocations: list[Allocation], since: float, until: float
                   ) -> _Telemetry:
        """The samples of these jobs' launches (their nodes and processes) over the window."""
        handles = {r.handle for r in records if r.handle}
        per_node = {a.handle for a in allocations if a.handle not in handles}  # `<handle>@<node>` of multi-node jobs
        nodes = {a.node for a in allocations}
        gap = self.policy.debt.max_sample_gap_s
        with self.store.consistent_reads():  # a compaction between the reads would return samples twice
            return _Telemetry(
                self.store.gpu_samples(since - gap, until, nodes) if nodes else [],
                self.store.gpu_minutes(since, until, nodes) if nodes else [],
                [dataclasses.replace(p, handle=f"{p.handle}@{p.node}") if f"{p.handle}@{p.node}" in per_node else p
                 for p in (self.store.process_samples(since, until, handles) if handles else [])])

    def _run_usage(self, records: list[JobRecord], until: float) -> list[JobUsage]:
        """Each launch's usage from its start up to `until`: its checkpoint (`checkpoint_usage`) plus what the
        telemetry since says, so that only the samples after the checkpoint are read."""
        allocations = [a for r in records for a in self._allocations(r)]
        checkpoints = self.store.usage_checkpoints(a.handle for a in allocations)
        by_start: dict[float, list[Allocation]] = defaultdict(list)  # launches checkpointed together start together
        for allocation in allocations:
            checkpoint = checkpoints.get(allocation.handle)
            by_start[checkpoint.until if checkpoint else allocation.start].append(allocation)
        result = []
        for since, group in by_start.items():
            later = {}
            if until > since:
                jobs = {a.job_id for a in group}
                telemetry = self._telemetry([r for r in records if r.id in jobs], group, since, until)
                report = self._account(group, telemetry, since, until)
                later = {job.allocation.handle: job for job in report.jobs}
            for allocation in group:
                parts = [p for p in (checkpoints.get(allocation.handle), later.get(allocation.handle)) if p]
                if parts:
                    result.append(JobUsage(allocation, sum((p.usage for p in parts), Usage()),
                                           sum(p.observed_hours for p in parts)))
        return result

    def _account(self, allocations: list[Allocation], telemetry: _Telemetry, since: float, until: float) -> DebtReport:
        return account(allocations, telemetry.gpu_samples, telemetry.process_samples, since, until, self.policy.debt,
                       power_curves(), gpu_minutes=telemetry.gpu_minutes)

    def _allocations(self, record: JobRecord) -> list[Allocation]:
        """The GPUs a job's latest launch held, one allocation per on-prem node (none if it never ran)."""
        if not record.tier or record.started_at is None or not record.handle or record.state is JobState.PLANNED:
            return []
        launch = next((d.payload for d in reversed(self.store.decisions(record.id))
                       if d.action == "launch" and d.handle == record.handle), {})
        provider = launch.get("provider") or record.tier
        offer = self.offers.get(record.offer_id or "")
        grid = offer.gco2_per_kwh if offer is not None and offer.gco2_per_kwh is not None else \
            grid_intensity(provider, launch.get("region")).gco2_per_kwh
        gpu_type = canonical_gpu(launch["gpu"]) if launch.get("gpu") else None
        end = (record.finished_at or record.updated_at) if record.state.terminal else None
        if record.tier is Tier.ONPREM and record.nodes:
            nodes = list(record.nodes)
            handles = [record.handle] if len(nodes) == 1 else [f"{record.handle}@{n}" for n in nodes]
            gpus = record.gpus or 0.0
        else:  # dedicated instances: telemetry (if any) names the cluster by its launch handle
            nodes, handles = [record.handle], [record.handle]
            gpus = (record.gpus or 0.0) * int(launch.get("num_nodes") or 1)
        rate = (record.rate_per_hour or 0.0) / len(nodes)
        return [Allocation(handle, record.id, record.team, node, gpu_type, gpus, record.started_at,
                           max(end, record.started_at) if end is not None else None, rate, pue(provider), grid)
                for handle, node in zip(handles, nodes)]

    def efficiency(self, record: JobRecord, since_s: float = 7 * 86400) -> dict[str, Any] | None:
        """A job's usage and flags over the last `since_s` seconds (None if it held no GPUs then)."""
        until = self.clock()
        report, _, _ = self.report([record], until - since_s, until)
        if not report.jobs:
            return None
        return _job_debt_row(record.id, list(report.jobs), list(report.flags))

    def assess_finished(self, now: float) -> int:
        """Work out the figures of jobs that finished since the last round, over their whole run, once; a flagged
        job's flags become the recommendations for the next job with its team and name. Returns how many."""
        records = self.store.unassessed_finished_jobs(_ASSESS_PER_ROUND)
        for record in records:
            end = record.finished_at if record.finished_at is not None else record.updated_at
            parts = self._run_usage([record], end)
            # A failed run's figures describe how it failed, not what the job needs: it recommends nothing.
            flags = [] if record.state is JobState.FAILED else [
                flag for part in parts for flag in flags_for(part, self.policy.debt)]
            self.store.record_assessment(record, _usage_record(parts), _similar_flags(parts, flags), now)
            peak = _measured_peak(record, parts, now)
            if peak is not None:
                self.store.record_memory_peak(peak, record.attempt)
        return len(records)

    def checkpoint_usage(self, now: float) -> int:
        """Bring running launches' usage checkpoints up to `SAMPLE_LAG_S` ago, at most once per
        `CHECKPOINT_INTERVAL_S`, so `status` and the assessment of a finished job read only the samples since.
        Returns how many launches were checkpointed."""
        last = self.store.meta(_CHECKPOINTED_AT)
        if last is not None and now - float(last) < CHECKPOINT_INTERVAL_S:
            return 0
        until = now - SAMPLE_LAG_S
        parts = self._run_usage(self.store.jobs(states=ACTIVE), until)
        self.store.set_usage_checkpoints((p.allocation.handle, p.allocation.job_id,
                                          UsageCheckpoint(until, p.usage, p.observed_hours)) for p in parts)
        self.store.set_meta(_CHECKPOINTED_AT, repr(now))
        return len(parts)

    def compact_telemetry(self, now: float) -> Compaction | None:
        """Fold raw telemetry older than the raw retention into minute rows and delete what is older than the
        minute retention, at most once per `COMPACTION_INTERVAL_S` (its last run is in the store's meta)."""
        last = self.store.meta(_COMPACTED_AT)
        if last is not None and now - float(last) < COMPACTION_INTERVAL_S:
            return None
        # A backlog (a store from before compaction, a service down for days) is folded an hour at a time, one
        # transaction each, within a budget per round: never one long lock nor one huge read.
        target = now - self.raw_retention_s
        oldest = self.store.oldest_gpu_sample()
        fold_to = target if oldest is None else min(target, oldest + COMPACTION_CHUNK_S)
        started = time.perf_counter()
        while True:
            done = self.store.compact_telemetry(fold_to, now - self.minute_retention_s,
                                                self.policy.debt.max_sample_gap_s)
            log.info("telemetry compacted up to %.0f in %.3f s: %s", fold_to, done.seconds, done)
            if fold_to >= target or time.perf_counter() - started > COMPACTION_BUDGET_S:
                break
            fold_to = min(target, fold_to + COMPACTION_CHUNK_S)
        if fold_to >= target:
            self.store.set_meta(_COMPACTED_AT, repr(now))  # caught up; until then, the next round goes on
        return done

    def team_debt(self, window_s: float = 3600.0) -> dict[str, TeamDebt]:
        """Per team: GPUs utilized now (the latest `UTILIZED_NOW_S` of samples) and debt, energy and carbon over
        the last `window_s`, by the rules of `debt`. Reads only the window's telemetry, so its cost stays flat."""
        until = self.clock()
        since = until - window_s
        records = self.store.jobs_overlapping(since)
        report, allocations, telemetry = self.report(records, since, until)
        recent = until - min(UTILIZED_NOW_S, window_s)
        latest = self._account(allocations, telemetry.after(recent, self.policy.debt.max_sample_gap_s), recent, until)
        busy: dict[str, float] = defaultdict(float)
        for job in latest.jobs:
            if job.observed_hours > 0:
                busy[job.allocation.team] += job.usage.utilized_gpu_hours / job.observed_hours
        return {team: TeamDebt(busy.get(team, 0.0), usage.debt_usd, usage.energy_kwh, usage.carbon_kg)
                for team, usage in report.teams.items()}


def _by_job(jobs: Iterable[JobUsage]) -> dict[str, list[JobUsage]]:
    """Allocations' usage grouped by job (a multi-node on-prem job has one allocation per node), in their order."""
    grouped: dict[str, list[JobUsage]] = defaultdict(list)
    for job in jobs:
        grouped[job.allocation.job_id].append(job)
    return dict(grouped)


def _usage_record(parts: list[JobUsage]) -> JobUsageRecord:
    usage = sum((p.usage for p in parts), Usage())
    return JobUsageRecord(usage.allocated_gpu_hours, usage.utilized_gpu_hours, usage.debt_usd, usage.energy_kwh,
                          usage.carbon_kg)


def _similar_flags(parts: list[JobUsage], flags: list[Flag]) -> list[SimilarJobFlag]:
    """A finished job's flags as the store keeps them for similar jobs: one per kind (of a multi-node job's
    per-node flags, the one asking for the most GPUs), with the GPU it ran on and its peak memory."""
    if not parts:
        return []
    peaks = [p.usage.peak_mem_bytes for p in parts if p.usage.peak_mem_bytes is not None]
    by_kind: dict[str, Flag] = {}
    for flag in flags:
        kept = by_kind.get(flag.kind)
        if kept is None or flag.recommendation.gpus > kept.recommendation.gpus:
            by_kind[flag.kind] = flag
    return [SimilarJobFlag(f.job_id, f.kind, f.reason, f.recommendation, parts[0].allocation.gpu_type,
                           max(peaks) if peaks else None) for f in by_kind.values()]


def _measured_peak(record: JobRecord, parts: list[JobUsage], now: float) -> MemoryPeak | None:
    """A succeeded run's NVML peak beside its spec's model facts (None: it failed, or no telemetry covered it)."""
    peaks = [p.usage.peak_mem_bytes for p in parts if p.usage.peak_mem_bytes is not None]
    if record.state is not JobState.SUCCEEDED or not peaks:
        return None
    try:
        facts = facts_key(record.spec)
    except ValueError:
        facts = None
    gpu = parts[0].allocation.gpu_type
    return MemoryPeak(record.id, record.team, record.name, facts, gpu, gpu_memory_gb(gpu) if gpu else None,
                      max(peaks), False, now)


def _usage_row(usage: Usage) -> dict[str, Any]:
    mean = usage.mean_utilization
    return {"allocated_gpu_hours": round(usage.allocated_gpu_hours, 4),
            "observed_gpu_hours": round(usage.observed_gpu_hours, 4),
            "utilized_gpu_hours": round(usage.utilized_gpu_hours, 4),
            "debt_gpu_hours": round(usage.debt_gpu_hours, 4), "cost_usd": round(usage.cost_usd, 4),
            "debt_usd": round(usage.debt_usd, 4), "mean_utilization": round(mean, 4) if mean is not None else None,
            "energy_kwh": round(usage.energy_kwh, 4), "energy_measured_kwh": round(usage.energy_measured_kwh, 4),
            "carbon_kg": round(usage.carbon_kg, 4),
            "peak_mem_gb": round(usage.peak_mem_bytes / 1e9, 3) if usage.peak_mem_bytes is not None else None}


def _job_debt_row(job_id: str, parts: list[JobUsage], flags: list[Flag]) -> dict[str, Any]:
    """One job's figures, summed over its per-node allocations, with its flags."""
    first = parts[0].allocation
    usage = sum((p.usage for p in parts), Usage())
    return {"job": job_id, "team": first.team, "handle": first.handle.split("@")[0],
            "nodes": [p.allocation.node for p in parts], "gpu_type": first.gpu_type,
            "gpus": sum(p.allocation.gpus for p in parts), "telemetry": usage.observed_gpu_hours > 0,
            **_usage_row(usage),
            "flags": [{"kind": f.kind.value, "reason": f.reason, "recommendation": f.recommendation.text,
                       "gpu_type": f.recommendation.gpu_type, "gpus": f.recommendation.gpus} for f in flags]}


def _plot_title(team: str | None, since_s: float) -> str:
    days = since_s / 86400
    span = f"{days:g} days" if days >= 1 else f"{since_s / 3600:g} hours"
    return f"GPU allocation vs utilization, {team or 'all teams'}, last {span}"
