"""Surge caps in the service: the store's records as the core's spend facts, and the core's repricings recorded.

What is decided about caps (the limits, since when a scope is over, what to
downscale, which prices changed) is decided in the core
(`placement.solve.decide.cap_decision`, `decide.repricing`); this module reads the
store for it and writes back what the engine must record:
- `check`: each capped scope's $/h limit, its committed rate and, past its grace
  period, the downscale plan, from the store's running totals and running work;
- `reprice` / `record_repricings`: running work charged at its offer's current price;
- `report`: what `placement spend` shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from placement.model import Offer, Tier
from placement.solve.decide import Repricing, cap_decision, price_change
from placement.solve.downscale import DownscalePlan, RunningWork
from placement.solve.limits import RateLimit
from placement.spend import SpendEntry, spend_report
from placement.state_builder import OVER_SINCE, billing, running_work
from placement.store import ACTIVE, JobChange, Store
from policies.model import Policy


@dataclass(frozen=True)
class CapCheck:
    limits: dict[str, RateLimit]
    rates: dict[str, float]
    plan: DownscalePlan | None  # None: no scope due for downscaling


class CapGuard:
    def __init__(self, store: Store, offers: Mapping[str, Offer]):
        self.store = store
        self.offers = offers  # static offers by id: what running work pays now, where a spot twin is found

    def ledger(self, now: float) -> list[SpendEntry]:
        """Spend entries of the current UTC month (what day and month budgets count)."""
        since = now - 32 * 86400
        return [SpendEntry(job, team, Tier(tier), start, end, usd)
                for job, team, tier, start, end, usd in self.store.spend_rows(since) if tier]

    def reprice(self, now: float) -> int:
        """Charge running work at its offer's current price, as the core decides it (`decide.price_change`);
        returns how many changed. From then on spend accrues at the new rate, and caps see it."""
        changes = [change for r in self.store.jobs(states=ACTIVE) if r.tier
                   if (change := price_change(r.id, *billing(r, self.offers), r.rate_per_hour or 0.0)) is not None]
        return self.record_repricings(changes, now)

    def record_repricings(self, changes: Iterable[Repricing], now: float) -> int:
        count = 0
        for change in changes:
            self.store.update_job(change.job_id, now, JobChange(rate_per_hour=change.new_rate), event="repriced",
                                  detail=change.cause)
            count += 1
        return count

    def check(self, policy: Policy, now: float, idle: frozenset[str] = frozenset()) -> CapCheck:
        """What the core decides about caps from the store now (the engine's round records its over-since map)."""
        caps = cap_decision(self.running_work(policy, now, idle), self.store.accrued(now),
                            json.loads(self.store.meta(OVER_SINCE) or "{}"), now, policy)
        return CapCheck(caps.limits, caps.rates, caps.downscale)

    def report(self, policy: Policy, now: float, team: str | None = None) -> list:
        rows = spend_report(self.ledger(now), self.running_work(policy, now), policy.caps, now)
        return [r for r in rows if team is None or r.scope == team]

    def running_work(self, policy: Policy, now: float, idle: frozenset[str] = frozenset()) -> list[RunningWork]:
        services = {s.id: s for s in self.store.services()}
        return [running_work(r, policy, services, self.offers, r.id in idle, now)
                for r in self.store.jobs(states=ACTIVE) if r.tier]
