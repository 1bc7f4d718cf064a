"""One place decides: `decide(State, Policy) -> Decisions`, every decision of a round with its cause.

Pure (no Ray, SkyPilot, store, file or clock: the time is `State.now`), so the
service, `placement plan` and `placement replay` decide identically for the same
State. In order:

1. replica targets: each service's replicas follow its load, ceil(load / target
   qps per replica) within [min, max] (SkyServe's rule); extra replicas leave,
   pending ones first, then the newest;
2. repricing: running work is charged at its offer's current price;
3. limits: day and month budgets become $/h rates with the rate caps
   (`limits.effective_rate_limits`); a scope over its limit past the policy's
   grace period is downscaled (`downscale.plan_downscale`: idle work first). Work stopped here frees
   its capacity and spend but is not placed again this round: it was running, not pending, in the State
   (placing it at once would spend the headroom the hysteresis left, and restart it for nothing);
4. give-ups: a job whose launches failed `Failover.max_attempts` times is not
   placed again (`ReasonCode.LAUNCH_ATTEMPTS_EXHAUSTED`);
5. fair sharing (policy `fair_share`): each team's decayed share of owned GPU-hours against its weight; a team
   over it has the value of its jobs' delay lowered (`fairshare`);
6. placement: one round (`chains.plan_round`) under the limits as rate caps, the
   offers on cool-down blocked; a job a budget's rate cannot pay for is queued
   with `OverBudget` and the numbers, one of a team over its fair share waiting for capacity with
   `WaitingForFairShare`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from placement.model import Demand, Offer, Plan, Reason, ReasonCode, Snapshot
from placement.solve.borrowing import borrowed
from placement.solve.chains import plan_round
from placement.solve.downscale import (DownscaleAction, DownscalePlan, RunningWork, committed_rates, due_scopes,
                                       plan_downscale, track_overruns)
from placement.solve.engine import RoundResult
from placement.solve.fairshare import TeamShare, fair_share_reasons, team_shares, weighed
from placement.solve.limits import Accrued, CapKind, RateLimit, effective_rate_limits, rate_caps, scope_name
from placement.solve.state import RunningJob, ServiceFacts, State
from policies.model import Policy

_RATE_TOL = 1e-6  # $/h: a price change smaller than this is no change


@dataclass(frozen=True, slots=True)
class ReplicaTarget:
    """A service's replicas brought to what its load asks for: new replica numbers to add, or replicas to end."""

    service: str
    name: str
    want: int
    have: int
    add: tuple[int, ...] = ()  # replica numbers of the new replicas (`<name>-replica-<number>`)
    cancel: tuple[str, ...] = ()  # job ids of the replicas that end
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Repricing:
    job_id: str
    offer_id: str
    old_rate: float
    new_rate: float

    @property
    def cause(self) -> str:
        return f"${self.old_rate:.4f}/h -> ${self.new_rate:.4f}/h ({self.offer_id})"


@dataclass(frozen=True, slots=True)
class GiveUp:
    job_id: str
    attempts: int
    max_attempts: int
    reason: Reason


@dataclass(frozen=True, slots=True)
class Decisions:
    """Everything one round decided, each with its cause, and what the placement round saw (for `explain`)."""

    plan: Plan  # placements, queued jobs with reasons (give-ups included), reservations, migrations, preemptions
    result: RoundResult  # the plan with each job's options and the ledger after placement
    snapshot: Snapshot  # what the placement round was given
    policy: Policy  # the policy it placed under: the limits as its rate caps
    replicas: tuple[ReplicaTarget, ...] = ()
    repricings: tuple[Repricing, ...] = ()
    downscale: DownscalePlan | None = None  # None: no scope over its limit past the grace period
    give_ups: tuple[GiveUp, ...] = ()
    limits: dict[str, RateLimit] = dataclasses.field(default_factory=dict)  # $/h each capped scope may spend now
    rates: dict[str, float] = dataclasses.field(default_factory=dict)  # committed $/h per scope, before downscaling
    over_since: dict[str, float] = dataclasses.field(default_factory=dict)  # to keep for the next round
    shares: tuple[TeamShare, ...] = ()  # each team's fair share (fair sharing on), by team

    @property
    def downscaled(self) -> tuple[DownscaleAction, ...]:
        return self.downscale.actions if self.downscale is not None else ()

    @property
    def borrowed(self) -> dict[tuple[str, str], float]:
        """GPUs each team holds of other teams' idle quota once the round's placements run, by (tier, team)."""
        return {(tier.value, team): gpus for (team, tier), gpus in borrowed(self.result.ledger.quota_left).items()}


def decide(state: State, policy: Policy) -> Decisions:
    """Every decision of one round, in the module docstring's order; each later step sees the earlier ones'
    outcome (a replica that leaves holds nothing, a repriced job counts at its new rate, stopped work frees
    its capacity and its spend before anything is placed)."""
    now = state.now
    replicas = tuple(t for t in map(replica_target, state.services) if t.add or t.cancel)
    leaving = {job_id for target in replicas for job_id in target.cancel}
    running = [r for r in state.running if r.job_id not in leaving]
    repricings = tuple(p for p in map(repricing, running) if p is not None)
    running = _repriced(running, {p.job_id: p.new_rate for p in repricings})

    caps = cap_decision([r.work for r in running if r.work is not None], state.accrued, state.over_since, now, policy)
    limits, downscale = caps.limits, caps.downscale
    stopped = {a.job_id for a in downscale.actions} if downscale is not None else set()

    give_ups = give_ups_of(state)
    held = leaving | {g.job_id for g in give_ups}
    blocked = frozenset(o for c in state.cooldowns if c.until > now for o in c.offer_ids)
    settings = policy.fair_share
    shares = team_shares(state.usage, {j.team for j in state.pending} | {r.placed.team for r in running}, now,
                         settings) if settings.enabled else {}
    pending = weighed((j for j in state.pending if j.id not in held), shares)
    snapshot = Snapshot(jobs=pending, offers=state.offers,
                        running=tuple(r.placed for r in running if r.job_id not in stopped),
                        pool_quotas=state.pool_quotas, blocked_offers=blocked, duration_ratios=state.duration_ratios,
                        reserved=state.reserved)
    round_policy = policy.model_copy(update={"caps": rate_caps(limits)}) if limits else policy
    result = plan_round(snapshot, round_policy, state.succeeded, state.failed)
    queued = tuple(_budget_reason(job_id, why, limits) for job_id, why in result.plan.queued)
    if shares:
        queued = fair_share_reasons(queued, pending, shares, settings.half_life_hours)
    plan = dataclasses.replace(result.plan, queued=queued + tuple((g.job_id, g.reason) for g in give_ups))
    return Decisions(plan, dataclasses.replace(result, plan=plan), snapshot, round_policy, replicas, repricings,
                     downscale, give_ups, limits, caps.rates, caps.over_since, tuple(shares.values()))


@dataclass(frozen=True, slots=True)
class CapDecision:
    limits: dict[str, RateLimit]
    rates: dict[str, float]  # committed $/h per scope
    over_since: dict[str, float]
    downscale: DownscalePlan | None  # None: no scope over its limit past the grace period


def cap_decision(work: Iterable[RunningWork], accrued: Mapping[str, Accrued], over_since: Mapping[str, float],
                 now: float, policy: Policy) -> CapDecision:
    """Each capped scope's $/h limit (budgets as rates), since when each is over it, and, for a scope over it
    for `policy.downscale.grace_seconds`, what to reduce (idle work first: it loses next to nothing)."""
    work = list(work)
    limits = effective_rate_limits(policy.caps, accrued, now)
    rates = committed_rates(work)
    over = track_overruns(rates, limits, over_since, now)
    due = due_scopes(over, now, policy.downscale.grace_seconds)
    return CapDecision(limits, rates, over, plan_downscale(work, limits, policy, scopes=due) if due else None)


def desired_replicas(service: ServiceFacts) -> int:
    if service.target_qps is None or service.load_qps is None:
        return service.min_replicas
    return max(service.min_replicas, min(service.max_replicas, math.ceil(service.load_qps / service.target_qps - 1e-9)))


def replica_target(service: ServiceFacts) -> ReplicaTarget:
    """New replicas are pending jobs, so caps and quotas decide whether they run; extra replicas end, pending
    ones first, then the newest."""
    want, have = desired_replicas(service), len(service.replicas)
    cause = f"{service.id} needs {want} replicas for {service.load_qps or 0:g} requests/s"
    if want > have:
        return ReplicaTarget(service.id, service.name, want, have,
                             add=tuple(range(service.next_number, service.next_number + want - have)), cause=cause)
    extra = sorted(service.replicas, key=lambda r: (not r.pending, -r.submitted_at, -r.number))[:have - want]
    return ReplicaTarget(service.id, service.name, want, have, cancel=tuple(r.job_id for r in extra),
                         cause=f"scaled down: {cause}" if extra else cause)


def repricing(running: RunningJob) -> Repricing | None:
    """Running work charged at its offer's current price (a catalog refresh can raise it), if that changed."""
    if running.work is None:
        return None
    return price_change(running.job_id, running.offer, running.demand, running.num_nodes, running.work.rate_per_hour)


def price_change(job_id: str, offer: Offer | None, demand: Demand, num_nodes: int, rate: float) -> Repricing | None:
    if offer is None:
        return None
    now = round(offer.job_price_per_hour(demand) * num_nodes, 6)
    return Repricing(job_id, offer.id, rate, now) if abs(now - rate) > _RATE_TOL else None


def _repriced(running: list[RunningJob], rates: dict[str, float]) -> list[RunningJob]:
    if not rates:
        return running
    return [dataclasses.replace(r, placed=dataclasses.replace(r.placed, rate_per_hour=rates[r.job_id]),
                                work=dataclasses.replace(r.work, rate_per_hour=rates[r.job_id]))
            if r.job_id in rates else r for r in running]


def give_ups_of(state: State) -> tuple[GiveUp, ...]:
    """Pending jobs whose launches failed `max_attempts` times: no round places them again."""
    pending = {job.id for job in state.pending}
    limit = state.failover.max_attempts
    return tuple(
        GiveUp(f.job_id, f.attempts, limit, Reason(
            ReasonCode.LAUNCH_ATTEMPTS_EXHAUSTED,
            f"{f.attempts} launches failed (at most {limit} allowed), the last: {f.last_error}. Not placed again; "
            f"cancel it and submit again once the cause is fixed", scope=f.job_id))
        for f in sorted(state.failures, key=lambda f: f.job_id) if f.job_id in pending and f.attempts >= limit)


def _budget_reason(job_id: str, why: Reason, limits: dict[str, RateLimit]) -> tuple[str, Reason]:
    """A surge-cap reason whose rate a day or month budget sets is `OverBudget`, with the budget's numbers."""
    limit = limits.get(why.scope or "")
    if why.code is not ReasonCode.OVER_SURGE_CAP or limit is None or limit.binding is CapKind.RATE:
        return job_id, why
    return job_id, Reason(ReasonCode.OVER_BUDGET, f"{scope_name(limit.scope)} {limit.detail} allows "
                                                  f"${limit.usd_per_hour:.2f}/h now: {why.message}", scope=why.scope)
