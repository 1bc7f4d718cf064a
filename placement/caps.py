"""Surge caps in the service: from the store's records to the pure spend and downscale models, and back.

Each round, before placing anything, the engine asks `CapGuard.check`:
1. the spend ledger's running totals per scope and UTC day / month (`Store.accrued`) and the running
   work give every capped scope its $/h limit (rate caps, and day/month budgets turned into rates:
   `placement.spend.effective_rate_limits`);
2. a scope whose running spend exceeds its limit (a price change, a lowered cap, a service
   that scaled up) is remembered with the time it went over (kept in the store, so a restart
   keeps counting the grace period);
3. once over for `policy.downscale.grace_seconds`, `plan_downscale` picks what to reduce;
   the reconciler records each action, then carries it out.
The limits then become the round's rate caps, so new placements stay under them too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from placement.model import Demand, Offer, Tier
from placement.solve.downscale import (DownscalePlan, RunningWork, WorkKind, committed_rates, due_scopes,
                                       plan_downscale, track_overruns)
from placement.solve.limits import RateLimit, effective_rate_limits
from placement.spend import SpendEntry, spend_report
from placement.store import ACTIVE, JobRecord, ServiceRecord, Store
from policies.model import Policy

_OVER_SINCE = "caps.over_since"  # store meta key: scope -> when it went over its limit


@dataclass(frozen=True)
class CapCheck:
    limits: dict[str, RateLimit]
    rates: dict[str, float]
    plan: DownscalePlan | None  # None: no scope due for downscaling


class CapGuard:
    def __init__(self, store: Store, offers: Mapping[str, Offer]):
        self.store = store
        self.offers = offers  # static offers by id: where a spot twin of an on-demand offer is found

    def ledger(self, now: float) -> list[SpendEntry]:
        """Spend entries of the current UTC month (what day and month budgets count)."""
        since = now - 32 * 86400
        return [SpendEntry(job, team, Tier(tier), start, end, usd)
                for job, team, tier, start, end, usd in self.store.spend_rows(since) if tier]

    def reprice(self, now: float) -> int:
        """Charge running work at its offer's current price (a catalog refresh can raise it); returns how many
        changed. From then on spend accrues at the new rate, and caps see it."""
        changed = 0
        for record in self.store.jobs(states=ACTIVE):
            offer = self.offers.get(record.offer_id or "")
            if offer is None or record.rate_per_hour is None:
                continue
            nodes = int(record.spec.get("num_nodes") or 1)
            demand = Demand(accelerator=offer.gpu, accelerator_count=record.gpus or 0.0, cpus=record.cpus or 0.0,
                            memory_gb=record.memory_gb or 0.0)
            rate = round(offer.job_price_per_hour(demand) * nodes, 6)
            if abs(rate - record.rate_per_hour) > 1e-6:
                self.store.update_job(record.id, now, event="repriced",
                                      detail=f"${record.rate_per_hour:.4f}/h -> ${rate:.4f}/h ({offer.id})",
                                      rate_per_hour=rate)
                changed += 1
        return changed

    def check(self, policy: Policy, now: float, idle: frozenset[str] = frozenset()) -> CapCheck:
        limits = effective_rate_limits(policy.caps, self.store.accrued(now), now)  # running totals, not every row
        work = self.running_work(policy, now, idle)
        rates = committed_rates(work)
        over_since = track_overruns(rates, limits, json.loads(self.store.meta(_OVER_SINCE) or "{}"), now)
        self.store.set_meta(_OVER_SINCE, json.dumps(over_since))
        due = due_scopes(over_since, now, policy.downscale.grace_seconds)
        plan = plan_downscale(work, limits, policy, scopes=due) if due else None
        return CapCheck(limits, rates, plan)

    def report(self, policy: Policy, now: float, team: str | None = None) -> list:
        rows = spend_report(self.ledger(now), self.running_work(policy, now), policy.caps, now)
        return [r for r in rows if team is None or r.scope == team]

    def running_work(self, policy: Policy, now: float, idle: frozenset[str] = frozenset()) -> list[RunningWork]:
        services = {s.id: s for s in self.store.services()}
        return [self._work(r, policy, services, r.id in idle, now) for r in self.store.jobs(states=ACTIVE) if r.tier]

    def _work(self, record: JobRecord, policy: Policy, services: dict[str, ServiceRecord], idle: bool,
              now: float) -> RunningWork:
        placement = record.spec.get("placement") or {}
        gpus = (record.gpus or 0.0) * max(len(record.nodes), 1)
        units = gpus if gpus else (record.cpus or 0.0) / policy.cpus_per_gpu_equivalent
        service = services.get(record.service or "")
        spot = self._spot_twin(record)
        expected = float(placement.get("expected_hours", 1.0))
        ran = (now - record.started_at) / 3600.0 if record.started_at else 0.0
        return RunningWork(
            job_id=record.id, team=record.team, tier=Tier(record.tier), rate_per_hour=record.rate_per_hour or 0.0,
            value_per_hour=policy.delay_rate(record.priority) * max(units, 0.1) if record.priority in
            policy.priorities else 0.0,
            remaining_hours=None if service else max(expected - ran, 0.0),
            kind=WorkKind.REPLICA if service else WorkKind.BATCH, service=service.id if service else None,
            min_replicas=service.min_replicas if service else 0,
            spot_ok=bool(placement.get("spot_ok")) and spot is not None and not service,
            spot_rate_per_hour=spot.price_per_hour if spot is not None else None, idle=idle)

    def _spot_twin(self, record: JobRecord) -> Offer | None:
        """The same instance type in the same place on the spot market, if the catalog sells it there."""
        offer_id = record.offer_id or ""
        if not offer_id.endswith("/on-demand"):
            return None
        return self.offers.get(offer_id.removesuffix("/on-demand") + "/spot")
