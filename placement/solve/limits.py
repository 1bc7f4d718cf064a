"""Spend limits as rates: the $/h each capped scope may spend from now on (pure: the caller gives `now`).

A scope is `GLOBAL` (every team together) or a team name. Only private and
public spend counts; on-prem work never does, as in the placement model.

Budgets become rates so that placement and downscaling obey one number per
scope (`effective_rate_limits`): a day budget with $120 left at 12:00 UTC
allows $10/h for the rest of the day. `placement.solve.decide` turns them into
the round's rate caps, so every caller of the core obeys the same limits.
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


def scope_name(scope: str) -> str:
    return "global" if scope == GLOBAL else f"team {scope}"


def scopes_of(team: str) -> tuple[str, str]:
    """The cap scopes a team's spend counts against."""
    return GLOBAL, team


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
