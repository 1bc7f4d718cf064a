"""Spend against caps: accrued dollars per UTC day and month, current rates, and the $/h each scope may spend.

Pure: the caller passes the spend ledger's entries, the running work and `now`
(seconds since the epoch, from the service's injected clock). A scope is
`GLOBAL` (every team together) or a team name. Only private and public spend
counts; on-prem work never does, as in the placement model.

Budgets become rates so that placement and downscaling obey one number per
scope (`effective_rate_limits`): a day budget with $120 left at 12:00 UTC
allows $10/h for the rest of the day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from placement.model import Tier
from placement.solve.ledger import GLOBAL
from policies.model import Caps, CapSpec

HOUR = 3600.0


class RatedWork(Protocol):
    """Anything running that spends: `placement.model.Running`, `downscale.RunningWork`, ..."""

    @property
    def team(self) -> str: ...
    @property
    def tier(self) -> Tier: ...
    @property
    def rate_per_hour(self) -> float: ...


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
class Periods:
    """The UTC day and month that contain `now`, as [start, end) in epoch seconds."""

    now: float
    day_start: float
    day_end: float
    month_start: float
    month_end: float

    @classmethod
    def at(cls, now: float) -> Periods:
        moment = datetime.fromtimestamp(now, tz=UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        month = day.replace(day=1)
        next_month = month.replace(year=month.year + 1, month=1) if month.month == 12 else \
            month.replace(month=month.month + 1)
        return cls(now, day.timestamp(), day.timestamp() + 24 * HOUR, month.timestamp(), next_month.timestamp())

    @property
    def hours_left_in_day(self) -> float:
        return (self.day_end - self.now) / HOUR

    @property
    def hours_left_in_month(self) -> float:
        return (self.month_end - self.now) / HOUR


@dataclass(frozen=True, slots=True)
class Accrued:
    """Dollars a scope has spent in the current UTC day and month."""

    today: float = 0.0
    month: float = 0.0


class CapKind(StrEnum):
    RATE = "rate cap"
    DAY = "day budget"
    MONTH = "month budget"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The $/h a scope may spend from now on, and which of its limits sets it."""

    scope: str
    usd_per_hour: float
    binding: CapKind
    detail: str  # the binding limit in words: "day budget $240.00 ($120.00 left, 12.0 h to go)"

    def __str__(self) -> str:
        return f"{scope_name(self.scope)} {self.detail}"


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


def scope_name(scope: str) -> str:
    return "global" if scope == GLOBAL else f"team {scope}"


def scopes_of(team: str) -> tuple[str, str]:
    """The cap scopes a team's spend counts against."""
    return GLOBAL, team


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


def rates_by_scope(running: Iterable[RatedWork]) -> dict[str, float]:
    """$/h of the private and public work running now, per scope."""
    rates: dict[str, float] = defaultdict(float)
    for work in running:
        if work.tier != Tier.ONPREM:
            for scope in scopes_of(work.team):
                rates[scope] += work.rate_per_hour
    return dict(rates)


def capped_scopes(caps: Caps) -> dict[str, CapSpec]:
    return ({GLOBAL: caps.global_} if caps.global_ is not None else {}) | dict(caps.teams)


def effective_rate_limits(caps: Caps, accrued: Mapping[str, Accrued], now: float) -> dict[str, RateLimit]:
    """The $/h each capped scope may spend from now on.

    limit = max(0, min(usd_per_hour,
                       (usd_per_day - accrued today) / hours left in the UTC day,
                       (usd_per_month - accrued this month) / hours left in the UTC month))

    over the limits the cap sets. Spending at that rate until the period ends
    lands exactly on the budget; an exhausted budget allows $0/h. Ties name
    the rate cap first, then the day, then the month budget.
    """
    periods = Periods.at(now)
    return {scope: _limit(scope, cap, accrued.get(scope, Accrued()), periods)
            for scope, cap in capped_scopes(caps).items()}


def _limit(scope: str, cap: CapSpec, accrued: Accrued, periods: Periods) -> RateLimit:
    candidates: list[tuple[float, CapKind, str]] = []
    if cap.usd_per_hour is not None:
        candidates.append((cap.usd_per_hour, CapKind.RATE, f"rate cap ${cap.usd_per_hour:.2f}/h"))
    for budget, spent, hours, kind in ((cap.usd_per_day, accrued.today, periods.hours_left_in_day, CapKind.DAY),
                                       (cap.usd_per_month, accrued.month, periods.hours_left_in_month,
                                        CapKind.MONTH)):
        if budget is not None:
            left = budget - spent
            candidates.append((left / hours, kind,
                               f"{kind.value} ${budget:.2f} (${max(left, 0.0):.2f} left, {hours:.1f} h to go)"))
    rate, kind, detail = min(candidates, key=lambda c: c[0])  # min keeps the first of equals
    return RateLimit(scope, max(rate, 0.0), kind, detail)


def rate_caps(limits: Mapping[str, RateLimit]) -> Caps:
    """Caps holding only the effective rates, for the placement model (`policy.model_copy(update={"caps": ...})`)."""
    specs = {scope: CapSpec(usd_per_hour=limit.usd_per_hour) for scope, limit in limits.items()}
    return Caps(global_=specs.pop(GLOBAL, None), teams=specs)


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
