"""Fair sharing of owned GPUs between teams: Kueue's fair sharing, Slurm's fair-share factor.

A team's usage is its on-prem and private GPU-hours, each hour weighed 2^(-age / half-life) (Slurm's decayed
usage), so what a team ran yesterday counts half as much as what it runs now with a one-day half-life. Its
share is that usage over every team's; its fair share is its weight over the weights of the teams that used
GPUs in the window or have work now. A team over its fair share has the value of its waiting (its priority's
$ per GPU-hour of delay) multiplied by

    2 ^ -((share - fair share) / fair share)

(1 at its fair share, 1/2 at twice it; Slurm's 2^(-usage/shares) made 1 at the fair share, so a team under it
keeps its priority's full value), so at equal priority the round places the team that used less first and the
other waits (`WaitingForFairShare`, with the numbers). The factor works through the same delay costs as every
other choice: a team over its share waits more readily rather than bursting, and a higher priority still goes
first unless the share is several times the weight.

The usage spans are facts the caller reads from its runs (`placement.state_builder`); the decay is here, at
the State's `now`, so the service and a replay compute it alike.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from placement.model import Job, Reason, ReasonCode
from policies.model import FairSharePolicy

MIN_FACTOR = 1.0 / 1024  # a team with a weight of 0 still places when nobody else wants the capacity
HORIZON_HALF_LIVES = 10.0  # runs that ended longer ago than this weigh under 0.1%: the caller may leave them out
_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class UsageSpan:
    """A run that held owned (on-prem or private) GPUs: from `start` to `end` (None: still running)."""

    team: str
    gpus: float
    start: float  # seconds since the epoch
    end: float | None = None


@dataclass(frozen=True, slots=True)
class TeamShare:
    """A team's decayed GPU-hours, its share of everyone's, its fair share (weight) and the factor on its value."""

    team: str
    gpu_hours: float
    share: float  # of every team's decayed GPU-hours, 0..1
    weight: float  # its fair share: its weight over the weights of the teams counted, 0..1
    factor: float  # on the value of its jobs' delay

    @property
    def over(self) -> bool:
        return self.share > self.weight + _TOLERANCE

    def describe(self) -> str:
        return f"team {self.team} share {self.share:.0%} {'>' if self.over else '<='} weight {self.weight:.0%}"


def decayed_gpu_hours(span: UsageSpan, now: float, half_life_hours: float) -> float:
    """The span's GPU-hours, each weighed 2^(-age / half-life): the integral of the decay over the span."""
    end = min(now if span.end is None else span.end, now)
    if end <= span.start or span.gpus <= 0:
        return 0.0
    newest, oldest = (now - end) / 3600.0, (now - span.start) / 3600.0
    return span.gpus * half_life_hours / math.log(2) * (2.0 ** (-newest / half_life_hours)
                                                        - 2.0 ** (-oldest / half_life_hours))


def team_shares(usage: Iterable[UsageSpan], active: Iterable[str], now: float,
                settings: FairSharePolicy) -> dict[str, TeamShare]:
    """Each team's share against its weight: the teams in `active` (with work now) and those with usage."""
    hours: dict[str, float] = {team: 0.0 for team in active}
    for span in usage:
        hours[span.team] = hours.get(span.team, 0.0) + decayed_gpu_hours(span, now, settings.half_life_hours)
    total = sum(hours.values())
    weights = sum(settings.weight(team) for team in hours)
    shares = {}
    for team in sorted(hours):
        share = hours[team] / total if total > 0 else 0.0
        weight = settings.weight(team) / weights if weights > 0 else 0.0
        shares[team] = TeamShare(team, hours[team], share, weight, share_factor(share, weight))
    return shares


def share_factor(share: float, weight: float) -> float:
    """The factor on a team's value at `share` of the usage with a fair share of `weight` (module docstring)."""
    if share <= weight + _TOLERANCE:
        return 1.0
    if weight <= 0:
        return MIN_FACTOR
    return max(2.0 ** (-(share - weight) / weight), MIN_FACTOR)


def weighed(jobs: Iterable[Job], shares: Mapping[str, TeamShare]) -> tuple[Job, ...]:
    """The jobs with their team's factor on the value of their delay."""
    return tuple(dataclasses.replace(job, fair_share_factor=shares[job.team].factor)
                 if job.team in shares and shares[job.team].factor != 1.0 else job for job in jobs)


def fair_share_reasons(queued: Iterable[tuple[str, Reason]], jobs: Iterable[Job], shares: Mapping[str, TeamShare],
                       half_life_hours: float) -> tuple[tuple[str, Reason], ...]:
    """A job waiting for capacity while its team is over its fair share and a team at or under its own has work
    this round waits `WaitingForFairShare`, with the numbers and what it waits for."""
    team_of = {job.id: job.team for job in jobs}
    under = sorted({team for team in team_of.values() if team in shares and not shares[team].over})
    relabelled = []
    for job_id, why in queued:
        team = team_of.get(job_id)
        share = shares.get(team) if team is not None else None
        if why.code is ReasonCode.WAITING_FOR_CAPACITY and share is not None and share.over and under:
            why = Reason(ReasonCode.WAITING_FOR_FAIR_SHARE,
                         f"{share.describe()} ({share.gpu_hours:.1f} decayed GPU-hours, half-life "
                         f"{half_life_hours:g} h): {', '.join(under)} {'goes' if len(under) == 1 else 'go'} first; "
                         f"{why.message}", scope=team)
        relabelled.append((job_id, why))
    return tuple(relabelled)
