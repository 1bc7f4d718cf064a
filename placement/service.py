"""The control loop: intake, placement rounds, reconciliation, and the answers `status` and `explain` give.

`Engine` holds no Ray code: the service actor (`placement.actor`) wraps it,
tests drive it with an injected clock, and a trace replay can too. Its only
memory is a cache of parsed jobs; everything else is read from the store each
round, so a restarted engine carries on where the last one stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clouds.base import Provider
from clouds.catalog import default_catalog_dirs, load_catalogs
from clouds.energy import grid_intensity, power_curves, pue
from clouds.gpus import canonical_gpu, gpu_memory_gb
from clouds.inventory import load_inventory
from clouds.telemetry_samples import GpuSample, ProcessSample
from clouds.offers import DEFAULT_INVENTORY
from placement.model import DurationRatio, Job, Offer, Plan, ReasonCode, Snapshot, Tier
from placement.debt import (Allocation, DebtReport, Flag, GpuMinute, JobUsage, Usage, account,
                            flags_for, usage_series)
from placement.memory_history import MemoryHistory, MemoryPeak, facts_key, remember
from placement.rightsizing import Rightsizing, SimilarJobFlag, rightsize, shape
from placement.caps import CapGuard
from placement.reconciler import Reconciler
from placement.solve.decide import Decisions, ReplicaTarget, decide
from placement.solve.downscale import DownscaleAction
from placement.solve.limits import capped_scopes
from placement.solve.state import Failover, State
from placement.state_builder import OVER_SINCE, StateBuilder, idle_jobs
from placement.solve import RoundResult
from placement.solve.candidates import job_objective
from placement.solve.explain import alternatives
from placement.solve.forecast import FinishedRun, learn_ratios
from placement.spec import check_envs_set, launch_name, spec_from_data, to_job, to_jobs
from placement.yamlio import ConfigError
from placement.store import (ACTIVE, Compaction, JobChange, JobRecord, JobState, JobUsageRecord, NewJob, NewService,
                             Store, StoredReservation, UsageCheckpoint)
from policies import load_policy


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


def default_store_path() -> Path:
    """Under the user's state directory (XDG_STATE_HOME), like other per-user service state."""
    import os

    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "placement" / "placement.db"


@dataclass(frozen=True)
class ServiceConfig:
    store_path: str = field(default_factory=lambda: str(default_store_path()))
    store_durable: bool = True  # False: no WAL, no fsync (a replay's what-if store)
    policy: str = "balanced"
    inventory: str | None = None  # default: configs/inventory.yaml (private pools; facts about on-prem nodes)
    catalogs: tuple[str, ...] | None = None  # default: SkyPilot's own catalogs where present, then the shipped ones
    round_interval_s: float | None = 10.0  # None: rounds only when asked (tests, replays)
    telemetry_interval_s: float | None = 5.0  # NVML samples on each GPU node; None: no telemetry agents
    dashboard_url: str | None = None  # Ray's dashboard, for the job submission API
    clouds: bool = False  # launch public and private placements through SkyPilot (else they are only planned)
    sky_api_server: str | None = None  # SkyPilot API server endpoint; None: SkyPilot's default (a local server)
    autostop_minutes: int = 10  # idle minutes after which an on-demand cluster tears itself down
    failover: Failover = field(default_factory=Failover)
    telemetry_raw_retention_s: float = 2 * 86400.0  # raw GPU samples older than this are folded into minute rows
    telemetry_minute_retention_s: float = 30 * 86400.0  # minute rows (and anything older) are deleted after this
    status_port: int | None = 8267  # the status page on 127.0.0.1 (taken: a free port; 0: any; None: no page)

    def __post_init__(self) -> None:
        if not 0 < self.telemetry_raw_retention_s <= self.telemetry_minute_retention_s:
            raise ValueError(
                f"telemetry_raw_retention_s must be > 0 and at most telemetry_minute_retention_s; got "
                f"{self.telemetry_raw_retention_s:g} s and {self.telemetry_minute_retention_s:g} s")


@dataclass(frozen=True, slots=True)
class RoundReport:
    at: float
    seconds: float
    plan: Plan
    pending_by_reason: dict[str, int]
    placed_by_tier: dict[str, int]
    jobs_by_state: dict[str, int]
    gpus_by_tier_team: dict[tuple[str, str], float]
    spend_rate_by_scope: dict[str, float]
    limit_by_scope: dict[str, float] = field(default_factory=dict)  # $/h each capped scope may spend now
    downscaled: tuple[DownscaleAction, ...] = ()  # what this round stopped or scaled down, and why
    committed_rate_by_scope: dict[str, float] = field(default_factory=dict)  # $/h the caps weighed, before downscaling


@dataclass(frozen=True, slots=True)
class TeamDebt:
    """A team's figures for the dashboard (`Engine.team_debt`)."""

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


class Engine:
    def __init__(self, config: ServiceConfig, providers: dict[Tier, Provider],
                 clock: Callable[[], float] = time.time, on_error: Callable[[str, str], None] = lambda p, k: None,
                 resume: bool = True):
        """`resume`: finish the decisions a previous life recorded now (else the caller runs
        `reconciler.resume()` before its first round)."""
        self.config = config
        self.clock = clock
        self.policy = load_policy(config.policy)
        self.store = Store(config.store_path, durable=config.store_durable)
        inventory = load_inventory(config.inventory or DEFAULT_INVENTORY)
        if config.clouds:
            from clouds.public import prepare_skypilot

            prepare_skypilot(config.sky_api_server)  # before the catalogs load: SkyPilot's directory may be new
        catalog = load_catalogs(default_catalog_dirs() if config.catalogs is None else config.catalogs)
        # On-prem offers come live from the on-prem provider; the others are static between rounds, and a
        # tier with no provider is still placed (its placements are recorded as planned, not launched).
        self.static_offers: tuple[Offer, ...] = tuple(
            o for o in inventory.offers() + catalog.offers if o.tier is not Tier.ONPREM)
        self.pool_quotas = tuple(sorted(inventory.pool_quotas().items()))
        if config.clouds:
            from clouds.private import private_provider
            from clouds.public import public_provider

            providers = {Tier.PUBLIC: public_provider(list(self.static_offers), autostop_minutes=config.autostop_minutes),
                         Tier.PRIVATE: private_provider(inventory)} | providers
        self.providers = providers
        offers_by_id = {o.id: o for o in self.static_offers}
        self.reconciler = Reconciler(self.store, providers, clock, on_error, offers=offers_by_id,
                                     failover=config.failover)
        self.caps = CapGuard(self.store, offers_by_id)
        self.state_builder = StateBuilder(self.store, providers, self.static_offers, offers_by_id, self.pool_quotas,
                                          config.failover)
        self._jobs: dict[str, Job] = {}
        self._ratios: tuple[DurationRatio, ...] = ()  # learned at `_ratios_mark` (`Store.finished_runs_mark`)
        self._ratios_mark: tuple[int, float | None] | None = None
        self.last_result: RoundResult | None = None
        self.last_snapshot: Snapshot | None = None
        if resume:
            self.reconciler.resume()

    # --- intake -------------------------------------------------------------------------------------------

    def submit(self, documents: list[dict[str, Any]], batch: str | None = None) -> list[str]:
        """Store the jobs of these spec documents ({"source": "file#doc", "data": {...}}); returns their ids.

        The specs are validated again here (the client may be anyone). Nothing is stored unless all are
        valid, and the call returns only once they are durable.
        """
        classes = list(self.policy.priorities)
        roots = self.policy.files.allowed_roots
        loaded = [spec_from_data(d["data"], d["source"], priority_classes=classes, allowed_roots=roots)
                  for d in documents]
        try:
            check_envs_set(loaded)
        except ConfigError as exc:
            raise ValueError("; ".join(str(e) for e in exc.errors)) from None
        new, services = [], []
        last_of: dict[str, int] = {}  # a document's source -> the position of its last job in `new`
        first_of: dict[str, int] = {}  # a job group -> the position of its first job
        for document, item in zip(documents, loaded):
            after, group = _edges(document, last_of, first_of, len(new))
            jobs = to_jobs([item])
            service = _new_service(item) if item.spec.service is not None else None
            if service is not None:
                services.append(service)
            new += [NewJob(id=job.id, name=job.name, team=job.team, priority=job.priority, spec=item.data,
                           source=item.source, service=service.name if service else None, after=after, group=group)
                    for job in jobs]
            last_of[item.source] = len(new) - 1
        return self.store.add_jobs(new, self.clock(), batch or uuid.uuid4().hex, services)

    def report_load(self, service_id: str, qps: float) -> None:
        """A service's load signal (requests per second over all its replicas), e.g. from its load balancer."""
        if qps < 0 or not self.store.set_load(service_id, qps, self.clock()):
            known = ", ".join(s.id for s in self.store.services()) or "none"
            raise ValueError(f"no service {service_id!r} (services: {known})" if qps >= 0 else
                             f"load must be >= 0 requests/s, got {qps}")

    def cancel(self, job_ids: list[str]) -> list[str]:
        done = []
        for job_id in job_ids:
            record = self.store.job(job_id)
            if record is not None and not record.state.terminal:
                self.reconciler.cancel(record)
                done.append(job_id)
        return done

    # --- one round ----------------------------------------------------------------------------------------

    def _parsed(self, record: JobRecord) -> Job:
        """The job as its spec asks (parsed once while it is pending)."""
        job = self._jobs.get(record.id)
        if job is None:
            loaded = spec_from_data(record.spec, record.source, priority_classes=list(self.policy.priorities))
            job = self._jobs[record.id] = dataclasses.replace(to_job(loaded, record.id), after=record.after,
                                                              group=record.group)
        return job

    def _rightsized(self, record: JobRecord, similar: dict[tuple[str, str], list[SimilarJobFlag]]
                    ) -> tuple[Job, tuple[Rightsizing, ...]]:
        """The job with the alternatives its similar jobs' flags bring (`placement.rightsizing.rightsize`), and notes."""
        flags = [f for f in similar.get((record.team, record.name), ()) if f.job_id != record.id]
        if not flags:
            return self._parsed(record), ()
        try:
            return rightsize(self._parsed(record), flags, self.policy.debt, self.policy.debt.apply_recommendations)
        except Exception:  # a recommendation that cannot be applied must not keep the job (or the round) from placing
            log.exception("rightsizing %s from similar jobs' flags failed; placing it as submitted", record.id)
            return self._parsed(record), ()

    def _recommendations(self) -> dict[tuple[str, str], list[SimilarJobFlag]]:
        try:
            return self.store.recommendations()
        except Exception:  # an unreadable row must not stop placement
            log.exception("reading similar jobs' recommendations failed; placing without them")
            return {}

    def _job(self, record: JobRecord, now: float, similar: dict[tuple[str, str], list[SimilarJobFlag]],
             peaks: MemoryHistory) -> Job:
        job, _ = self._rightsized(record, similar)
        job, _ = self._remembered(record, job, peaks)
        return dataclasses.replace(job, waited_hours=max(now - record.submitted_at, 0.0) / 3600.0)

    def _remembered(self, record: JobRecord, job: Job, peaks: MemoryHistory) -> tuple[Job, tuple[str, ...]]:
        """The job with the GPU memory its own and similar runs measured (`placement.memory_history.remember`)."""
        try:
            return remember(job, facts_key(record.spec), peaks, self.policy.memory.margin)
        except Exception:  # a bad stored row must not keep the job (or the round) from placing
            log.exception("applying measured GPU memory to %s failed; placing it on its estimate", record.id)
            return job, ()

    def _memory_peaks(self) -> MemoryHistory:
        try:
            return MemoryHistory(self.store.memory_peaks())
        except Exception:  # an unreadable row must not stop placement
            log.exception("reading measured GPU memory failed; placing on estimates")
            return MemoryHistory(())

    def round(self) -> RoundReport:
        """One round: observe -> build the State -> decide (the pure core) -> record -> act."""
        start = time.perf_counter()
        self.reconciler.observe()
        now = self.clock()
        for step in (self.assess_finished, self.checkpoint_usage, self.compact_telemetry):
            try:  # the debt bookkeeping observes; it never stops placement, and one step never stops another
                step(now)
            except Exception:
                log.exception("computational debt bookkeeping (%s) failed", step.__name__)
        state, pending = self._state(now)
        decisions = decide(state, self.policy)
        self._act(decisions, pending, now)
        self.last_result, self.last_snapshot = decisions.result, decisions.snapshot
        return self._report(now, time.perf_counter() - start, decisions)

    def _state(self, now: float) -> tuple[State, dict[str, JobRecord]]:
        """What the core is told this round, and the pending records it was built from (by id)."""
        similar, peaks = self._recommendations(), self._memory_peaks()
        records: dict[str, JobRecord] = {}

        def parse(pending: list[JobRecord]) -> list[Job]:
            records.update((r.id, r) for r in pending)
            return [self._job(r, now, similar, peaks) for r in pending]

        state = self.state_builder.build(now, self.policy, parse, self.idle_work(now), self._duration_ratios())
        self._jobs = {job.id: self._jobs[job.id] for job in state.pending}  # only pending jobs stay parsed
        return state, records

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
            report, _, _ = self._debt_report(records, now - window, now)
        except Exception:  # telemetry that cannot be read leaves no work idle; placement goes on
            log.exception("reading telemetry for idle work failed; no work counts as idle this round")
            return frozenset()
        return idle_jobs(report.jobs, window)

    def _act(self, decisions: Decisions, pending: dict[str, JobRecord], now: float) -> None:
        """Record and carry out what the core decided, each through the reconciler (it records before it acts)."""
        self.store.set_meta(OVER_SINCE, json.dumps(decisions.over_since))
        self.caps.record_repricings(decisions.repricings, now)
        self._scale(decisions.replicas, now)
        if decisions.downscaled:
            self.reconciler.downscale(list(decisions.downscaled))
        for shortfall in decisions.downscale.shortfalls if decisions.downscale is not None else ():
            log.warning("%s", shortfall)
        plan = decisions.plan
        self._fail_after_failed(plan, now)
        self.reconciler.apply(plan, pending)
        if plan.migrations:
            self.reconciler.migrate(plan, self.policy.downscale.checkpoint_grace_seconds)
        if plan.preemptions:
            self.reconciler.preempt(plan, self.policy.downscale.checkpoint_grace_seconds)
        notes = _burst_notes(decisions.result)
        if notes:
            self.store.add_events(notes, now)
        given_up = [(g.job_id, "gave-up", g.reason.message) for g in decisions.give_ups
                    if pending[g.job_id].reason_code != g.reason.code]  # said once, in the job's history
        if given_up:
            self.store.add_events(given_up, now)
        self.store.set_pending_reasons({job_id: (r.code, r.message) for job_id, r in plan.queued}, now)
        self.store.set_reservations([StoredReservation(r.job_id, r.nodes, r.gpu, now + r.start_hours * 3600.0,
                                                       now + (r.start_hours + r.hours) * 3600.0, r.premium_usd)
                                     for r in plan.reservations], now)

    def _scale(self, targets: tuple[ReplicaTarget, ...], now: float) -> None:
        """Services' replicas to the core's targets: new replicas are stored pending (the next round places them),
        extra ones are cancelled with the cause."""
        services = {s.id: s for s in self.store.services()} if targets else {}
        for target in targets:
            service = services.get(target.service)
            if service is None:
                continue
            if target.add:
                self.store.add_jobs([NewJob(id=f"{service.name}-replica-{k}", name=service.name, team=service.team,
                                            priority=service.priority, spec=service.spec, source=service.source,
                                            service=service.id) for k in target.add], now, uuid.uuid4().hex)
            for job_id in target.cancel:
                record = self.store.job(job_id)
                if record is not None:
                    self.reconciler.cancel(record, reason=target.cause)

    def _duration_ratios(self) -> tuple[DurationRatio, ...]:
        """Each team's (and job name's) actual/expected duration, from the store's finished runs: learned again
        only when a run has succeeded since (reading every finished run each round grew with the history)."""
        try:
            mark = self.store.finished_runs_mark()
            if mark != self._ratios_mark:
                self._ratios = learn_ratios(FinishedRun(*row) for row in self.store.finished_runs())
                self._ratios_mark = mark
            return self._ratios
        except Exception:  # an unreadable row must not stop placement: the forecast then trusts the estimates
            log.exception("learning duration ratios from finished runs failed; using the jobs' own estimates")
            return ()

    def _fail_after_failed(self, plan: Plan, now: float) -> None:
        """A pipeline task after a failed one never runs: it fails, naming the task that failed."""
        for job_id, reason in plan.queued:
            if reason.code is ReasonCode.PREDECESSOR_FAILED:
                self.store.update_job(job_id, now, JobChange(state=JobState.FAILED, finished_at=now,
                                                             reason_code=reason.code, reason=reason.message),
                                      event="failed", detail=reason.message)

    def _report(self, now: float, seconds: float, decisions: Decisions) -> RoundReport:
        plan = decisions.plan
        gpus: dict[tuple[str, str], float] = defaultdict(float)
        spend: dict[str, float] = defaultdict(float)
        for record in self.store.jobs(states=ACTIVE):
            if record.tier:
                gpus[(record.tier.value, record.team)] += (record.gpus or 0.0) * max(len(record.nodes), 1)
                if record.tier is not Tier.ONPREM:
                    spend["global"] += record.rate_per_hour or 0.0
                    spend[record.team] += record.rate_per_hour or 0.0
        return RoundReport(
            at=now, seconds=seconds, plan=plan,
            pending_by_reason=dict(Counter(r.code.value for _, r in plan.queued)),
            placed_by_tier=dict(Counter(p.tier.value for p in plan.placements)),
            jobs_by_state=self.store.counts_by_state(), gpus_by_tier_team=dict(gpus), spend_rate_by_scope=dict(spend),
            limit_by_scope={scope: limit.usd_per_hour for scope, limit in decisions.limits.items()},
            downscaled=decisions.downscaled, committed_rate_by_scope=dict(decisions.rates))

    def spend(self, team: str | None = None) -> list[dict[str, Any]]:
        """Spend per scope against its caps: rate now, accrued today and this month, projections."""
        rows = []
        for row in self.caps.report(self.policy, self.clock(), team):
            rows.append({"scope": row.scope, "usd_per_hour": round(row.rate_per_hour, 4),
                         "today_usd": round(row.accrued_today, 2), "month_usd": round(row.accrued_month, 2),
                         "projected_day_usd": round(row.projected_day, 2),
                         "projected_month_usd": round(row.projected_month, 2),
                         "cap": row.cap.model_dump(exclude_none=True) if row.cap else None,
                         "limit_usd_per_hour": round(row.limit.usd_per_hour, 4) if row.limit else None,
                         "binding": row.limit.detail if row.limit else None, "over": row.over})
        return rows

    # --- answers ------------------------------------------------------------------------------------------

    def status(self, job_id: str | None = None, team: str | None = None) -> list[dict[str, Any]]:
        """Jobs with their state and placement, spend, energy and carbon so far, and what similar jobs' flags
        recommend to those not finished."""
        records = [r for r in [self.store.job(job_id)] if r] if job_id else self.store.jobs(team=team)
        now = self.clock()
        usage = self._usage(records, now)
        similar = self._recommendations()
        return [_status_row(r, now, self.store.spent(r.id), usage.get(r.id),
                            [] if r.state.terminal else [n.note for n in self._rightsized(r, similar)[1]])
                for r in records]

    def _usage(self, records: list[JobRecord], now: float) -> dict[str, JobUsageRecord]:
        """Each job's figures over its whole run so far, as `debt` works them out: stored once a job has
        finished (`assess_finished`), else its checkpoints and the telemetry since."""
        ran = [r for r in records if r.started_at is not None and r.tier]
        result = self.store.job_usage(r.id for r in ran if r.state.terminal)
        live = [r for r in ran if r.id not in result]
        result.update({job_id: _usage_record(parts)
                       for job_id, parts in _by_job(self._run_usage(live, now)).items()})
        return result

    def _record(self, job_id: str) -> JobRecord:
        record = self.store.job(job_id)
        if record is None:
            raise ValueError(f"no job {job_id!r}; `placement status` lists the jobs")
        return record

    def explain(self, job_id: str) -> dict[str, Any]:
        record = self._record(job_id)
        answer: dict[str, Any] = {"job": _status_row(record, self.clock(), self.store.spent(record.id)),
                                  "events": [{"at": at, "kind": kind, "detail": detail}
                                             for at, kind, detail in self.store.events(job_id)],
                                  "alternatives": []}
        efficiency = self.efficiency(record)
        if efficiency is not None:
            answer["efficiency"] = efficiency
        rightsized, rightsizing = self._rightsized(record, self._recommendations())
        if not record.state.terminal:
            answer["gpu_memory"] = list(self._remembered(record, rightsized, self._memory_peaks())[1])
        answer["rightsizing"] = [
            {"similar_job": n.flag.job_id, "kind": n.flag.kind.value, "reason": n.flag.reason,
             "recommendation": n.flag.recommendation.text,
             "alternative": shape(n.demand) if n.demand is not None else None, "note": n.note} for n in rightsizing]
        reservation = next((r for r in self.store.reservations() if r.job_id == job_id), None)
        if reservation is not None:
            answer["reservation"] = {"nodes": list(reservation.nodes), "gpu": reservation.gpu,
                                     "start_at": reservation.start_at, "until": reservation.until,
                                     "premium_usd": round(reservation.premium_usd, 2)}
        result = self.last_result
        if result is not None and job_id in result.job_options and self.last_snapshot is not None:
            job = next(j for j in self.last_snapshot.jobs if j.id == job_id)
            placement = result.plan.placement_of(job_id)
            baseline = placement.objective if placement else result.queue_costs.get(job_id, 0.0)
            options = result.job_options[job_id]
            added = {n.demand: n.flag for n in rightsizing if n.demand is not None}

            def source(offer: Offer, objective: float) -> str | None:
                """The similar job whose flag brought the demand of this option, if one did."""
                option = next((o for o in options if o.group.offer is offer
                               and math.isclose(job_objective(job, o, self.policy), objective)), None)
                flag = added.get(option.demand) if option is not None else None
                return f"similar job {flag.job_id} ({flag.kind.value})" if flag is not None else None

            answer["queue_cost"] = result.queue_costs.get(job_id)
            wait = result.waits.get(job_id)
            if wait is not None:
                burst = min((job_objective(job, o, self.policy) for o in options if o.group.node_count is None),
                            default=None)
                answer["forecast"] = {
                    "onprem_nodes": list(wait.nodes), "gpu": wait.gpu, "start_in_min": round(wait.hours * 60, 1),
                    "delay_usd": round(wait.delay, 4), "onprem_usd": round(wait.eventual, 4),
                    "within_max_wait": wait.within_max_wait,
                    "burst_premium_usd": round(burst - wait.cost, 4) if burst is not None else None,
                    "decision": ("placed" if placement else "waits") if wait.within_max_wait else
                    "may not wait: the forecast start is past its max_wait"}
            answer["alternatives"] = [
                {"tier": a.offer.tier.value, "offer": a.offer.id, "usd": round(a.dollars, 2),
                 "objective": round(a.objective, 4), "vs_chosen": round(a.delta_objective, 4),
                 "blocked_by": str(a.blocked_by) if a.blocked_by else None,
                 "from_recommendation": source(a.offer, a.objective)}
                for a in alternatives(job, options, baseline, result.ledger, self.policy)]
        return answer

    def logs(self, job_id: str) -> str:
        record = self._record(job_id)
        if record.tier is not Tier.ONPREM or not record.handle:
            raise ValueError(f"{job_id} has no on-prem run to show logs of (state {record.state.value}, "
                             f"tier {record.tier or '-'})")
        return self.providers[Tier.ONPREM].logs(record.handle)

    # --- computational debt -------------------------------------------------------------------------------

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
        report, allocations, telemetry = self._debt_report(self.store.jobs(team=team), since, until)
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

    def _debt_report(self, records: list[JobRecord], since: float, until: float
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
        offer = self.caps.offers.get(record.offer_id or "")  # the static offers by id
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
        report, _, _ = self._debt_report([record], until - since_s, until)
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
        target = now - self.config.telemetry_raw_retention_s
        oldest = self.store.oldest_gpu_sample()
        fold_to = target if oldest is None else min(target, oldest + COMPACTION_CHUNK_S)
        started = time.perf_counter()
        while True:
            done = self.store.compact_telemetry(fold_to, now - self.config.telemetry_minute_retention_s,
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
        report, allocations, telemetry = self._debt_report(records, since, until)
        recent = until - min(UTILIZED_NOW_S, window_s)
        latest = self._account(allocations, telemetry.after(recent, self.policy.debt.max_sample_gap_s), recent, until)
        busy: dict[str, float] = defaultdict(float)
        for job in latest.jobs:
            if job.observed_hours > 0:
                busy[job.allocation.team] += job.usage.utilized_gpu_hours / job.observed_hours
        return {team: TeamDebt(busy.get(team, 0.0), usage.debt_usd, usage.energy_kwh, usage.carbon_kg)
                for team, usage in report.teams.items()}


def _edges(document: dict[str, Any], last_of: dict[str, int], first_of: dict[str, int], position: int
           ) -> tuple[int | None, int | None]:
    """A submitted document's pipeline predecessor and job group, as positions in the submission."""
    after, group = document.get("after"), document.get("group")
    if after is not None and after not in last_of:
        raise ValueError(f"{document['source']}: runs after {after!r}, which is not an earlier document of this "
                         f"submission (earlier: {', '.join(last_of) or 'none'})")
    if group is not None and not isinstance(group, str):
        raise ValueError(f"{document['source']}: group must name a job group (its file#name), not {group!r}")
    return (last_of[after] if after is not None else None), (first_of.setdefault(group, position) if group else None)


def _new_service(item) -> NewService:
    service, placement = item.spec.service, item.spec.placement
    policy = service.replica_policy
    if policy is None:
        fixed = service.replicas_now
        limits = (fixed, fixed, None)
    else:
        target = policy.target_qps_per_replica
        if isinstance(target, dict):  # per accelerator: size for the slowest
            target = min(target.values()) if target else None
        limits = (policy.min_replicas, policy.max_replicas if policy.max_replicas is not None else
                  policy.min_replicas, target or None)
    name = launch_name(item.spec.name or Path(item.file).stem)
    return NewService(name=name, team=placement.team, priority=placement.priority, spec=item.data,
                      source=item.source, min_replicas=limits[0], max_replicas=limits[1], target_qps=limits[2])


def _burst_notes(result: RoundResult) -> list[tuple[str, str, str]]:
    """Why each job placed off-prem did not wait for the on-prem capacity the forecast saw coming, with the
    numbers, for `explain`'s history (a queued job's reason carries them while it waits)."""
    notes = []
    queue_costs = result.queue_costs
    for placement in result.plan.placements:
        wait = result.waits.get(placement.job_id)
        if placement.tier is Tier.ONPREM or wait is None:
            continue
        why = (f"waiting would have cost ${queue_costs[placement.job_id] - placement.objective:,.2f} more"
               if wait.within_max_wait else "the forecast start is past its max_wait")
        notes.append((placement.job_id, "burst",
                      f"on-prem {wait.gpu or 'CPU'} ({', '.join(wait.nodes)}) was expected free in "
                      f"{wait.hours * 60:.0f} min (${wait.delay:,.2f} of delay, then ${wait.eventual:,.2f} "
                      f"on-prem); {placement.tier.value} {placement.target} now: {why}"))
    return notes


def _status_row(record: JobRecord, now: float, spent: float, usage: JobUsageRecord | None = None,
                rightsizing: list[str] | None = None) -> dict[str, Any]:
    end = record.finished_at or now
    return {"id": record.id, "name": record.name, "team": record.team, "priority": record.priority,
            "state": record.state.value, "tier": record.tier, "target": record.target,
            "gpus": (record.gpus or 0.0) * max(len(record.nodes), 1) if record.tier else None,
            "usd_per_hour": record.rate_per_hour, "spent_usd": round(spent, 4),
            "age_s": round(now - record.submitted_at, 1),
            "run_s": round(end - record.started_at, 1) if record.started_at else None,
            "attempt": record.attempt, "handle": record.handle, "nodes": list(record.nodes),
            "reason_code": record.reason_code, "reason": record.reason, "service": record.service,
            "energy_kwh": round(usage.energy_kwh, 4) if usage is not None else None,
            "carbon_kg": round(usage.carbon_kg, 4) if usage is not None else None,
            "rightsizing": rightsizing or []}


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
