"""The service's answers to `status`, `spend`, `explain` and `logs`, read from the store and the last round.

Read-only: nothing here changes the store or decides anything. Each answer is a typed value from
`placement.answers`; the engine turns it into JSON where it leaves the process.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

from clouds.base import Provider
from placement.answers import (AlternativeOption, Explanation, FairShareAnswer, Forecast, JobEvent, JobStatus,
                               ReservationAnswer, RightsizingOption, SpendRow)
from placement.caps import CapGuard
from placement.debt_accounting import DebtAccounting
from placement.job_reader import JobReader
from placement.model import Offer, Snapshot, Tier
from placement.rightsizing import shape
from placement.solve import RoundResult
from placement.solve.candidates import job_objective
from placement.solve.explain import alternatives
from placement.solve.fairshare import TeamShare
from placement.store import JobRecord, JobUsageRecord, Store
from policies.model import Policy


class Queries:
    def __init__(self, store: Store, policy: Policy, clock: Callable[[], float], caps: CapGuard,
                 accounting: DebtAccounting, jobs: JobReader, providers: Mapping[Tier, Provider]):
        self.store = store
        self.policy = policy
        self.clock = clock
        self.caps = caps
        self.accounting = accounting
        self.jobs = jobs
        self.providers = providers

    def spend(self, team: str | None = None, shares: Mapping[str, TeamShare] | None = None) -> list[SpendRow]:
        """Spend per scope against its caps: rate now, accrued today and this month, projections, and a team
        scope's fair share (`shares`: the last round's, by team)."""
        shares = shares or {}
        return [SpendRow(scope=row.scope, usd_per_hour=round(row.rate_per_hour, 4),
                           today_usd=round(row.accrued_today, 2), month_usd=round(row.accrued_month, 2),
                           projected_day_usd=round(row.projected_day, 2),
                           projected_month_usd=round(row.projected_month, 2),
                           cap=row.cap.model_dump(exclude_none=True) if row.cap else None,
                           limit_usd_per_hour=round(row.limit.usd_per_hour, 4) if row.limit else None,
                           binding=row.limit.detail if row.limit else None, over=row.over,
                           fair_share=fair_share_answer(shares.get(row.scope)))
                for row in self.caps.report(self.policy, self.clock(), team)]

    def status(self, job_id: str | None = None, team: str | None = None,
               shares: Mapping[str, TeamShare] | None = None) -> list[JobStatus]:
        """Jobs with their state and placement, spend, energy and carbon so far, and what similar jobs' flags
        recommend to those not finished; asked for a team, its fair share (`shares`: the last round's)."""
        share = fair_share_answer((shares or {}).get(team)) if team else None
        records = [r for r in [self.store.job(job_id)] if r] if job_id else self.store.jobs(team=team)
        now = self.clock()
        usage = self.accounting.usage(records, now)
        similar = self.jobs.recommendations()
        return [job_status(r, now, self.store.spent(r.id), usage.get(r.id),
                           () if r.state.terminal else tuple(n.note for n in self.jobs.rightsized(r, similar)[1]),
                           share) for r in records]

    def record(self, job_id: str) -> JobRecord:
        record = self.store.job(job_id)
        if record is None:
            raise ValueError(f"no job {job_id!r}; `placement status` lists the jobs")
        return record

    def explain(self, job_id: str, result: RoundResult | None, snapshot: Snapshot | None) -> Explanation:
        """A job's history and status, and its options in the last round (`result`, solved from `snapshot`)."""
        record = self.record(job_id)
        rightsized, rightsizing = self.jobs.rightsized(record, self.jobs.recommendations())
        reservation = next((r for r in self.store.reservations() if r.job_id == job_id), None)
        answer = Explanation(
            job=job_status(record, self.clock(), self.store.spent(record.id)),
            events=tuple(JobEvent(at, kind, detail) for at, kind, detail in self.store.events(job_id)),
            efficiency=self.accounting.efficiency(record),
            gpu_memory=None if record.state.terminal else
            self.jobs.remembered(record, rightsized, self.jobs.memory_peaks())[1],
            rightsizing=tuple(RightsizingOption(
                n.flag.job_id, n.flag.kind.value, n.flag.reason, n.flag.recommendation.text,
                shape(n.demand) if n.demand is not None else None, n.note) for n in rightsizing),
            reservation=ReservationAnswer(tuple(reservation.nodes), reservation.gpu, reservation.start_at,
                                          reservation.until, round(reservation.premium_usd, 2))
            if reservation is not None else None)
        if result is None or job_id not in result.job_options or snapshot is None:
            return answer
        job = next(j for j in snapshot.jobs if j.id == job_id)
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

        forecast = None
        wait = result.waits.get(job_id)
        if wait is not None:
            burst = min((job_objective(job, o, self.policy) for o in options if o.group.node_count is None),
                        default=None)
            forecast = Forecast(
                onprem_nodes=tuple(wait.nodes), gpu=wait.gpu, start_in_min=round(wait.hours * 60, 1),
                delay_usd=round(wait.delay, 4), onprem_usd=round(wait.eventual, 4),
                within_max_wait=wait.within_max_wait,
                burst_premium_usd=round(burst - wait.cost, 4) if burst is not None else None,
                decision=("placed" if placement else "waits") if wait.within_max_wait else
                "may not wait: the forecast start is past its max_wait")
        options_now = tuple(
            AlternativeOption(a.offer.tier.value, a.offer.id, round(a.dollars, 2), round(a.objective, 4),
                              round(a.delta_objective, 4), str(a.blocked_by) if a.blocked_by else None,
                              source(a.offer, a.objective))
            for a in alternatives(job, options, baseline, result.ledger, self.policy))
        return dataclasses.replace(answer, alternatives=options_now, queue_cost=result.queue_costs.get(job_id),
                                   forecast=forecast)

    def logs(self, job_id: str) -> str:
        record = self.record(job_id)
        if record.tier is not Tier.ONPREM or not record.handle:
            raise ValueError(f"{job_id} has no on-prem run to show logs of (state {record.state.value}, "
                             f"tier {record.tier or '-'})")
        return self.providers[Tier.ONPREM].logs(record.handle)


def fair_share_answer(share: TeamShare | None) -> FairShareAnswer | None:
    if share is None:
        return None
    return FairShareAnswer(share=round(share.share, 4), weight=round(share.weight, 4),
                           gpu_hours=round(share.gpu_hours, 2), factor=round(share.factor, 4), over=share.over,
                           summary=share.describe())


def job_status(record: JobRecord, now: float, spent: float, usage: JobUsageRecord | None = None,
               rightsizing: tuple[str, ...] = (), fair_share: FairShareAnswer | None = None) -> JobStatus:
    end = record.finished_at or now
    return JobStatus(
        id=record.id, name=record.name, team=record.team, priority=record.priority, state=record.state.value,
        tier=record.tier, target=record.target,
        gpus=(record.gpus or 0.0) * max(len(record.nodes), 1) if record.tier else None,
        usd_per_hour=record.rate_per_hour, spent_usd=round(spent, 4), age_s=round(now - record.submitted_at, 1),
        run_s=round(end - record.started_at, 1) if record.started_at else None, attempt=record.attempt,
        handle=record.handle, nodes=tuple(record.nodes), reason_code=record.reason_code, reason=record.reason,
        service=record.service, energy_kwh=round(usage.energy_kwh, 4) if usage is not None else None,
        carbon_kg=round(usage.carbon_kg, 4) if usage is not None else None, rightsizing=rightsizing,
        fair_share=fair_share)
