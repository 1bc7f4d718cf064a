"""Borrowing and lending of idle GPU quota between teams: Kueue's cohorts, on the owned tiers.

On on-prem and private capacity the teams with a quota there form a cohort. A team may hold more than its
quota by borrowing what other teams leave idle, up to its `borrowing_limit` (0 by default: no borrowing); a
team lends at most its `lending_limit` of its idle quota (default: all of it). Over the cohort:

    every team's borrowing  <=  every team's idle quota it may lend

where a team's borrowing is what it holds over its quota and its lendable idle quota is min(lending_limit,
quota - what it holds). A team within its own quota is never held back by the others' borrowing: the
borrowed work is what gives way (preemption reclaims it: `reclaimable`), as Kueue's `reclaimWithinCohort`.

Only on-prem work is reclaimed (preemption displaces work on nodes); a private pool's borrowed GPUs come back
when the borrowing work ends.

The ledger keeps each team's quota left per tier (`CapacityLedger.quota_left`, below zero while it borrows);
these functions read the cohort from it and from the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from placement.model import Reason, ReasonCode, Running, Tier
from policies.model import Policy

BORROWABLE = (Tier.ONPREM, Tier.PRIVATE)  # owned capacity: what a quota there lends is idle, not bought
_EPS = 1e-9

QuotaLeft = Mapping[tuple[str, Tier], float]  # (team, tier) -> GPUs of its quota left (negative: borrowed)


def borrows(policy: Policy) -> bool:
    """Whether any team may borrow."""
    return any(q.borrowing_limit > 0 for q in policy.quotas.values())


def borrowed(left: QuotaLeft) -> dict[tuple[str, Tier], float]:
    """GPUs each team holds beyond its quota on the owned tiers, where it does."""
    return {key: -value for key, value in left.items() if key[1] in BORROWABLE and value < -_EPS}


def _cohort(left: QuotaLeft, policy: Policy, team: str, tier: Tier) -> tuple[float, float]:
    """(lendable, borrowed) over the other teams of `team`'s cohort in `tier`."""
    lendable = borrowed_by_others = 0.0
    for (other, other_tier), value in left.items():
        if other_tier is not tier or other == team:
            continue
        limit = policy.quotas[other].lending_limit
        lendable += min(max(value, 0.0), limit if limit is not None else float("inf"))
        borrowed_by_others += max(-value, 0.0)
    return lendable, borrowed_by_others


def room(left: QuotaLeft, policy: Policy, team: str, tier: Tier) -> float:
    """GPUs `team` may still take in `tier`: what is left of its quota and what it may borrow now."""
    own = left[(team, tier)]
    quota = policy.quotas[team]
    if tier not in BORROWABLE or quota.borrowing_limit <= 0:
        return own
    lendable, borrowed_by_others = _cohort(left, policy, team, tier)
    may_borrow = min(quota.borrowing_limit - max(-own, 0.0), lendable - borrowed_by_others)
    return max(own, 0.0) + max(may_borrow, 0.0)


def quota_blocker(left: QuotaLeft, policy: Policy, team: str, tier: Tier, gpus: float) -> Reason | None:
    """Why `team` may not take `gpus` more in `tier` (its quota, its borrowing limit, the cohort's idle quota),
    or None when it may."""
    own = left[(team, tier)]
    if own >= gpus - _EPS:
        return None
    quota = policy.quotas[team]
    short = f"team {team} has {max(own, 0):g} {tier.value} GPUs of quota left, the job needs {gpus:g}"
    if tier not in BORROWABLE or quota.borrowing_limit <= 0:
        return Reason(ReasonCode.OVER_QUOTA, short, scope=team)
    holds = max(-own, 0.0)
    wants = gpus - max(own, 0.0)
    if holds + wants > quota.borrowing_limit + _EPS:
        return Reason(ReasonCode.OVER_BORROWING_LIMIT,
                      f"{short}: it borrows {holds:g} of other teams' idle quota, {holds + wants:g} would pass its "
                      f"borrowing_limit of {quota.borrowing_limit:g}", scope=team)
    lendable, borrowed_by_others = _cohort(left, policy, team, tier)
    if borrowed_by_others + wants > lendable + _EPS:
        return Reason(ReasonCode.OVER_QUOTA,
                      f"{short}, and the other teams lend {max(lendable - borrowed_by_others, 0):g} more idle "
                      f"{tier.value} GPUs ({lendable:g} lendable, {borrowed_by_others:g} borrowed)", scope=team)
    return None


def reclaimable(running: Iterable[Running], policy: Policy) -> dict[str, str]:
    """Running on-prem work on borrowed quota, by job id, with the team it borrows as: a team's newest work is
    what passes its quota (its oldest counts against the quota first)."""
    held: dict[tuple[str, Tier], float] = {}
    found: dict[str, str] = {}
    work = sorted((r for r in running if r.tier is Tier.ONPREM and r.gpus > 0 and r.team in policy.quotas
                   and policy.quotas[r.team].limit(r.tier) is not None),
                  key=lambda r: (-r.elapsed_hours, r.job_id))
    for run in work:
        key = (run.team, run.tier)
        held[key] = held.get(key, 0.0) + run.gpus
        if held[key] > policy.quotas[run.team].limit(run.tier) + _EPS:
            found[run.job_id] = run.team
    return found


def within_quota(left: QuotaLeft, team: str, tier: Tier, gpus: float) -> bool:
    """Whether `team` takes `gpus` in `tier` out of its own quota (an owner reclaiming what it lent)."""
    own = left.get((team, tier))
    return own is not None and own >= gpus - _EPS
