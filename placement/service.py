"""The control loop: intake, and each round observe -> State -> decide -> record -> act.

`Engine` holds no Ray code: the service actor (`placement.actor`) wraps it,
tests drive it with an injected clock, and a trace replay can too. Its only
memory is a cache of parsed jobs; everything else is read from the store each
round, so a restarted engine carries on where the last one stopped. It is built
from its parts by `placement.wiring`; it answers through `placement.queries`
(typed, turned into JSON here, where answers leave for the actor) and keeps
computational debt through `placement.debt_accounting`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clouds.base import Provider
from placement.answers import to_json
from placement.caps import CapGuard
from placement.debt_accounting import DebtAccounting, TeamDebt
from placement.job_reader import JobReader
from placement.model import DurationRatio, Job, Plan, ReasonCode, Snapshot, Tier
from placement.queries import Queries
from placement.reconciler import Reconciler
from placement.solve import RoundResult
from placement.solve.decide import Decisions, ReplicaTarget, decide
from placement.solve.downscale import DownscaleAction
from placement.solve.fairshare import TeamShare
from placement.solve.forecast import FinishedRun, learn_ratios
from placement.solve.state import State
from placement.spec import check_envs_set, launch_name, spec_from_data, to_jobs
from placement.state_builder import OVER_SINCE, StateBuilder
from placement.store import ACTIVE, JobChange, JobRecord, JobState, NewJob, NewService, StoredReservation
from placement.wiring import ServiceConfig, wire
from placement.yamlio import ConfigError
from policies.model import Policy

log = logging.getLogger(__name__)


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
    shares: tuple[TeamShare, ...] = ()  # each team's fair share (fair sharing on)
    borrowed_by_tier_team: dict[tuple[str, str], float] = field(default_factory=dict)  # GPUs of others' idle quota


class Engine:
    def __init__(self, config: ServiceConfig, providers: dict[Tier, Provider],
                 clock: Callable[[], float] = time.time, on_error: Callable[[str, str], None] = lambda p, k: None,
                 resume: bool = True):
        """`resume`: finish the decisions a previous life recorded now (else the caller runs
        `reconciler.resume()` before its first round)."""
        self.config = config
        self.clock = clock
        parts = wire(config, providers)
        self._policy, self.store, self.providers = parts.policy, parts.store, parts.providers
        self.static_offers, self.pool_quotas = parts.static_offers, parts.pool_quotas
        offers_by_id = {o.id: o for o in self.static_offers}  # one dict: the reconciler, caps and debt read it
        self.reconciler = Reconciler(self.store, self.providers, clock, on_error, offers=offers_by_id,
                                     failover=config.failover)
        self.caps = CapGuard(self.store, offers_by_id)
        self.state_builder = StateBuilder(self.store, self.providers, self.static_offers, offers_by_id,
                                          self.pool_quotas, config.failover)
        self.jobs = JobReader(self.store, self.policy)
        self.accounting = DebtAccounting(self.store, self.policy, offers_by_id, clock,
                                         config.telemetry_raw_retention_s, config.telemetry_minute_retention_s)
        self.queries = Queries(self.store, self.policy, clock, self.caps, self.accounting, self.jobs, self.providers)
        self._ratios: tuple[DurationRatio, ...] = ()  # learned at `_ratios_mark` (`Store.finished_runs_mark`)
        self._ratios_mark: tuple[int, float | None] | None = None
        self.last_result: RoundResult | None = None
        self.last_snapshot: Snapshot | None = None
        self.last_shares: dict[str, TeamShare] = {}  # each team's fair share in the last round (fair sharing on)
        if resume:
            self.reconciler.resume()

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        """A policy set after the start (a replay's work-limited one, a what-if's caps) is its parts' too."""
        self._policy = self.jobs.policy = self.accounting.policy = self.queries.policy = policy

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

    def round(self) -> RoundReport:
        """One round: observe -> build the State -> decide (the pure core) -> record -> act."""
        start = time.perf_counter()
        self.reconciler.observe()
        now = self.clock()
        accounting = self.accounting
        for step in (accounting.assess_finished, accounting.checkpoint_usage, accounting.compact_telemetry):
            try:  # the debt bookkeeping observes; it never stops placement, and one step never stops another
                step(now)
            except Exception:
                log.exception("computational debt bookkeeping (%s) failed", step.__name__)
        state, pending = self._state(now)
        decisions = decide(state, self.policy)
        self._act(decisions, pending, now)
        self.last_result, self.last_snapshot = decisions.result, decisions.snapshot
        self.last_shares = {share.team: share for share in decisions.shares}
        return self._report(now, time.perf_counter() - start, decisions)

    def _state(self, now: float) -> tuple[State, dict[str, JobRecord]]:
        """What the core is told this round, and the pending records it was built from (by id)."""
        similar, peaks = self.jobs.recommendations(), self.jobs.memory_peaks()
        records: dict[str, JobRecord] = {}

        def parse(pending: list[JobRecord]) -> list[Job]:
            records.update((r.id, r) for r in pending)
            return [self.jobs.job(r, now, similar, peaks) for r in pending]

        state = self.state_builder.build(now, self.policy, parse, self.accounting.idle_work(now),
                                         self._duration_ratios())
        self.jobs.keep_only({job.id for job in state.pending})  # only pending jobs stay parsed
        return state, records

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
            downscaled=decisions.downscaled, committed_rate_by_scope=dict(decisions.rates),
            shares=decisions.shares, borrowed_by_tier_team=decisions.borrowed)

    # --- answers: typed in `placement.queries` and `placement.debt_accounting`, JSON from here on ---------

    def spend(self, team: str | None = None) -> list[dict[str, Any]]:
        """Spend per scope against its caps: rate now, accrued today and this month, projections."""
        return to_json(self.queries.spend(team, self.last_shares))

    def status(self, job_id: str | None = None, team: str | None = None) -> list[dict[str, Any]]:
        """Jobs with their state and placement, spend, energy and carbon so far, and why they wait."""
        return to_json(self.queries.status(job_id, team, self.last_shares))

    def explain(self, job_id: str) -> dict[str, Any]:
        """A job's history, and its options in the last round."""
        return to_json(self.queries.explain(job_id, self.last_result, self.last_snapshot))

    def logs(self, job_id: str) -> str:
        return self.queries.logs(job_id)

    def debt(self, team: str | None = None, since_s: float = 7 * 86400, series: bool = False,
             plot_path: str | None = None) -> dict[str, Any]:
        """Allocated against utilized GPU-hours per team and job (`DebtAccounting.debt`)."""
        return self.accounting.debt(team, since_s, series, plot_path)

    def team_debt(self, window_s: float = 3600.0) -> dict[str, TeamDebt]:
        """Per team: GPUs utilized now and debt, energy and carbon over the last `window_s` (the dashboard's)."""
        return self.accounting.team_debt(window_s)


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

