"""Spend against caps: accrued dollars per UTC day and month, and what `placement spend` shows per scope.

Pure: the caller passes the spend ledger's entries, the running work and `now`
(seconds since the epoch, from the service's injected clock). The limits
themselves (budgets as rates) are the core's: `placement.solve.limits`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from placement.model import Tier
from placement.solve.limits import (Accrued, Periods, RatedWork, RateLimit, capped_scopes, effective_rate_limits,
                                    rates_by_scope, scopes_of)
from placement.solve.ledger import GLOBAL
from policies.model import Caps, CapSpec


@dataclass(frozen=True, slots=True)
class SpendEntry:
    """One row of the spend ledger: `usd` spent by a job between `start` and `end` (epoch seconds)."""

    job_id: str
    team: str
    tier: Tier
    start: float
    end: float
    usd: float


@dataclass(frozen=True, slots=True)
class ScopeSpend:
    """What `placement spend` shows for one scope."""

    scope: str
    rate_per_hour: float  # private + public work running now
    accrued_today: float
    accrued_month: float
    projected_day: float  # accrued today + rate x hours left in the day
    projected_month: float
    cap: CapSpec | None
    limit: RateLimit | None  # None: the scope has no cap

    @property
    def over(self) -> bool:
        return self.limit is not None and self.rate_per_hour > self.limit.usd_per_hour + 1e-9


def accrued_by_scope(entries: Iterable[SpendEntry], now: float) -> dict[str, Accrued]:
    """Dollars accrued in the UTC day and month of `now`, per scope (on-prem entries skipped).

    An entry that straddles a period start counts pro rata for the part inside
    it (spend is assumed even over an entry). Entries before the month may be
    left out by the caller (`WHERE end > month_start`); they add nothing.
    """
    periods = Periods.at(now)
    today: dict[str, float] = defaultdict(float)
    month: dict[str, float] = defaultdict(float)
    for entry in entries:
        if entry.tier == Tier.ONPREM:  # the store's tier strings compare equal too
            continue
        in_day = _share_within(entry, periods.day_start, periods.day_end)
        in_month = _share_within(entry, periods.month_start, periods.month_end)
        for scope in scopes_of(entry.team):
            today[scope] += in_day
            month[scope] += in_month
    return {scope: Accrued(today.get(scope, 0.0), month[scope]) for scope in month}


def period_shares(entry: SpendEntry) -> list[tuple[str, float, float]]:
    """(kind "day" or "month", the period's start, $) of an entry's part in each UTC day and month it
    overlaps, pro rata as `accrued_by_scope` counts it: what a running total per period adds for it."""
    if entry.tier == Tier.ONPREM:
        return []
    shares = []
    for kind in ("day", "month"):
        t = entry.start
        while True:
            periods = Periods.at(t)
            start, end = (periods.day_start, periods.day_end) if kind == "day" else \
                (periods.month_start, periods.month_end)
            share = _share_within(entry, start, end)
            if share:
                shares.append((kind, start, share))
            if end >= entry.end:
                break
            t = end
    return shares


def accrued_from_totals(totals: Iterable[tuple[str, str, float, float]], now: float) -> dict[str, Accrued]:
    """Accrued $ per scope from running totals (scope, kind, period start, $): those of `now`'s day and month."""
    periods = Periods.at(now)
    today: dict[str, float] = defaultdict(float)
    month: dict[str, float] = defaultdict(float)
    for scope, kind, start, usd in totals:
        if kind == "day" and start == periods.day_start:
            today[scope] += usd
        elif kind == "month" and start == periods.month_start:
            month[scope] += usd
    return {scope: Accrued(today.get(scope, 0.0), month.get(scope, 0.0)) for scope in set(today) | set(month)}


def _share_within(entry: SpendEntry, start: float, end: float) -> float:
    if entry.end <= entry.start:  # an instant charge
        return entry.usd if start <= entry.start < end else 0.0
    overlap = min(entry.end, end) - max(entry.start, start)
    return entry.usd * overlap / (entry.end - entry.start) if overlap > 0 else 0.0


def spend_report(entries: Iterable[SpendEntry], running: Iterable[RatedWork], caps: Caps,
                 now: float) -> list[ScopeSpend]:
    """Every scope that spent, spends or is capped: global first, then teams by name."""
    periods = Periods.at(now)
    accrued = accrued_by_scope(entries, now)
    rates = rates_by_scope(running)
    capped = capped_scopes(caps)
    limits = effective_rate_limits(caps, accrued, now)
    scopes = {GLOBAL} | set(accrued) | set(rates) | set(capped)
    report = []
    for scope in sorted(scopes, key=lambda s: (s != GLOBAL, s)):
        spent = accrued.get(scope, Accrued())
        rate = rates.get(scope, 0.0)
        report.append(ScopeSpend(scope, rate, spent.today, spent.month,
                                 spent.today + rate * periods.hours_left_in_day,
                                 spent.month + rate * periods.hours_left_in_month,
                                 capped.get(scope), limits.get(scope)))
    return report
