"""Which running work to reduce when its spend exceeds a cap: a small integer program.

Pure: running work and each scope's $/h limit (`placement.solve.limits.effective_rate_limits`)
in, actions with their reasons out. The caller records the actions, then carries
them out, and marks the work they touch `pending_action` in later rounds, so a
restart in the middle of a downscale neither repeats nor forgets it.

A scope (global, or a team) is acted on when the committed rate of its private
and public work exceeds its limit; it is then brought to limit x (1 - hysteresis)
so that it does not flap around the cap. Among the possible actions the program
picks those that lose the least value:

    action        applies to                     value lost
    stop_idle     work telemetry flags idle      ~nothing ($0.001, so fewer stops win)
    scale_down    replicas above the minimum     value/h x remaining hours (open-ended: open_ended_hours)
    move_to_spot  spot-tolerant batch work       value/h x restart_hours + spot risk x spot rate x remaining hours
    stop          batch work, requeued           value/h x (remaining hours + restart_hours)

where value/h is the $ an hour of the work's delay costs (its priority's $ per
GPU-hour times its GPUs, `placement.solve.costs.delay_rate`), restart_hours and
open_ended_hours come from `policy.downscale` and spot risk from `policy.spot`. Stopping thus
weighs the work that has to wait for capacity again; a job near its end costs
little to stop, a long high-priority one a lot. On-prem work is never touched
(it does not count against a cloud cap); replicas never go below their
service's minimum. When even every helpful action cannot bring a scope to its
target, all of them are taken for that scope and the plan says so.

Identical work (same options, costs, savings, team and service) is one integer
count in the program and is acted on in job-id order, so plans are reproducible
and replicas of one service cost a single column. How the program is solved
fast, and how close to optimal that is: `_solve`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from placement.model import Tier
from placement.solve import milp
from placement.solve.ledger import GLOBAL
from placement.solve.limits import RateLimit, rates_by_scope, scope_name, scopes_of
from policies.model import SAFETY_FACTOR, Policy

CORE_COLUMNS = 256  # integer columns left free around the LP optimum (see _solve)
CORE_GAP = 1e-4  # relative gap the core program is solved to
CORE_NODES = 5000  # branch-and-bound nodes the core program may take (work, not time; see _solve)
IDLE_COST = 0.001  # $ charged for stopping idle work: near nothing, yet fewer stops beat more
_TOL = 1e-6  # $/h

log = logging.getLogger(__name__)


class WorkKind(StrEnum):
    BATCH = "batch"
    REPLICA = "replica"  # one replica of a service


class ActionKind(StrEnum):
    STOP_IDLE = "stop_idle"
    SCALE_DOWN = "scale_down"
    MOVE_TO_SPOT = "move_to_spot"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class RunningWork:
    """One running job or service replica, as the downscaler weighs it."""

    job_id: str
    team: str
    tier: Tier
    rate_per_hour: float  # $ per hour it costs now
    value_per_hour: float = 0.0  # $ an hour of its delay costs (placement.solve.costs.delay_rate)
    remaining_hours: float | None = None  # expected hours left; None: open-ended (service replicas)
    kind: WorkKind = WorkKind.BATCH
    service: str | None = None  # replicas: the service they belong to
    min_replicas: int = 0  # replicas: the service's minimum
    spot_ok: bool = False
    spot_rate_per_hour: float | None = None  # its rate on spot where it could move there (None: nowhere)
    idle: bool = False  # telemetry says it does no work
    pending_action: bool = False  # an earlier action on it is under way: its rate counts as saved already

    def __post_init__(self) -> None:
        for name in ("rate_per_hour", "value_per_hour", "remaining_hours", "spot_rate_per_hour"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{self.job_id}: {name} must be a number >= 0, not {value!r}")
        if self.kind is WorkKind.REPLICA and not self.service:
            raise ValueError(f"{self.job_id}: a service replica needs its service name")
        if self.min_replicas < 0:
            raise ValueError(f"{self.job_id}: min_replicas must be >= 0, not {self.min_replicas}")


@dataclass(frozen=True, slots=True)
class DownscaleAction:
    job_id: str
    kind: ActionKind
    team: str
    saves_per_hour: float  # $/h the scope rates drop by
    value_lost: float  # $, as the module docstring prices it
    grace_seconds: float  # time to checkpoint before the work is killed
    reason: str
    service: str | None = None


@dataclass(frozen=True, slots=True)
class ScopeOutcome:
    """A scope that was over its limit: its committed rate before and after the actions."""

    scope: str
    limit: RateLimit
    before: float
    target: float  # limit x (1 - hysteresis)
    after: float

    @property
    def met(self) -> bool:
        return self.after <= self.target + _TOL


@dataclass(frozen=True, slots=True)
class DownscalePlan:
    actions: tuple[DownscaleAction, ...]
    scopes: tuple[ScopeOutcome, ...]  # the scopes acted on, global first
    value_lost: float
    lower_bound: float  # no plan meeting the same targets loses less (the LP relaxation; 0 without one)
    method: str  # "none", "milp", "milp-work-limit", "milp-time-limit", or "rounded" / "greedy" (see _solve)
    seconds: float

    @property
    def met(self) -> bool:
        return all(s.met for s in self.scopes)

    @property
    def shortfalls(self) -> tuple[str, ...]:
        """One line per scope the actions cannot bring to its target."""
        return tuple(f"{scope_name(s.scope)} {s.limit.detail}: even with every action that helps, "
                     f"${s.after:.2f}/h stays above the target ${s.target:.2f}/h (on-prem work is never "
                     f"stopped, service replicas stay at their minimum)" for s in self.scopes if not s.met)


@dataclass(frozen=True, slots=True)
class _Option:
    kind: ActionKind
    saving: float  # $/h, per job
    cost: float  # value lost, per job


@dataclass(frozen=True, slots=True)
class _Group:
    """Interchangeable work (same team, service and options): one integer count per option, acted on in id order."""

    team: str
    service: str | None
    options: tuple[_Option, ...]
    members: tuple[RunningWork, ...]  # in job-id order


def committed_rates(work: Iterable[RunningWork]) -> dict[str, float]:
    """$/h per scope of private and public work that no action is already reducing."""
    return rates_by_scope(w for w in work if not w.pending_action)


def track_overruns(rates: Mapping[str, float], limits: Mapping[str, RateLimit], over_since: Mapping[str, float],
                   now: float) -> dict[str, float]:
    """Since when each scope has been over its limit: kept from `over_since`, `now` for a scope newly over.

    Scopes back within their limit drop out. The caller keeps the result (in the
    store, to survive a restart) and passes it back next interval.
    """
    return {scope: over_since.get(scope, now) for scope, limit in limits.items()
            if rates.get(scope, 0.0) > limit.usd_per_hour + _TOL}


def due_scopes(over_since: Mapping[str, float], now: float, grace_seconds: float) -> frozenset[str]:
    """The scopes that have been over their limit for at least `grace_seconds`."""
    return frozenset(scope for scope, since in over_since.items() if now - since >= grace_seconds)


def plan_downscale(work: Iterable[RunningWork], limits: Mapping[str, RateLimit], policy: Policy,
                   scopes: Collection[str] | None = None) -> DownscalePlan:
    """The actions that bring every scope over its limit (and in `scopes`, if given) to its target.

    `work` is all running work, on-prem included (it counts towards a service's
    replicas). `scopes` is what `due_scopes` returned; None acts on every scope
    over its limit at once (no grace period).
    """
    started = time.perf_counter()
    work = sorted(work, key=lambda w: w.job_id)
    _check_services(work)
    settings = policy.downscale
    rates = committed_rates(work)
    over = [(scope, limit) for scope, limit in limits.items()
            if rates.get(scope, 0.0) > limit.usd_per_hour + _TOL and (scopes is None or scope in scopes)]
    if not over:
        return DownscalePlan((), (), 0.0, 0.0, "none", time.perf_counter() - started)
    over.sort(key=lambda item: (item[0] != GLOBAL, item[0]))
    targets = {scope: limit.usd_per_hour * (1 - settings.hysteresis) for scope, limit in over}
    groups = _groups(work, policy)
    allowance = _replica_allowance(work)
    needs = _needs(groups, allowance, rates, targets)

    # Bounded by work: the downscale time limit, like the round's, is only a far safety net.
    counts, method, lower_bound = _solve(groups, allowance, needs, SAFETY_FACTOR * settings.time_limit_s,
                                         policy.solver.backend)
    chosen = _assign(groups, counts)

    saved: dict[str, float] = defaultdict(float)
    for w, option in chosen:
        for scope in scopes_of(w.team):
            saved[scope] += option.saving
    outcomes = tuple(ScopeOutcome(scope, limit, rates[scope], targets[scope], rates[scope] - saved[scope])
                     for scope, limit in over)
    actions = tuple(_action(w, option, outcomes, settings.checkpoint_grace_seconds) for w, option in chosen)
    return DownscalePlan(actions, outcomes, sum(a.value_lost for a in actions), lower_bound, method,
                         time.perf_counter() - started)


def _check_services(work: list[RunningWork]) -> None:
    seen: dict[str, RunningWork] = {}
    for w in work:
        if w.kind is WorkKind.REPLICA:
            first = seen.setdefault(w.service, w)
            if (first.team, first.min_replicas) != (w.team, w.min_replicas):
                raise ValueError(f"service {w.service}: replicas {first.job_id} and {w.job_id} disagree on team or "
                                 f"min_replicas ({first.team}/{first.min_replicas} vs {w.team}/{w.min_replicas})")


def _options(w: RunningWork, policy: Policy) -> tuple[_Option, ...]:
    """What may be done to one piece of work, priced as the module docstring says (none for on-prem)."""
    settings = policy.downscale
    if w.tier == Tier.ONPREM or w.pending_action or w.rate_per_hour <= 0:
        return ()
    hours = w.remaining_hours if w.remaining_hours is not None else settings.open_ended_hours
    if w.idle:
        return (_Option(ActionKind.STOP_IDLE, w.rate_per_hour, IDLE_COST),)
    if w.kind is WorkKind.REPLICA:
        return (_Option(ActionKind.SCALE_DOWN, w.rate_per_hour, w.value_per_hour * hours),)
    stop = _Option(ActionKind.STOP, w.rate_per_hour, w.value_per_hour * (hours + settings.restart_hours))
    if w.spot_ok and w.spot_rate_per_hour is not None and w.spot_rate_per_hour < w.rate_per_hour:
        cost = w.value_per_hour * settings.restart_hours + policy.spot.risk * w.spot_rate_per_hour * hours
        return _Option(ActionKind.MOVE_TO_SPOT, w.rate_per_hour - w.spot_rate_per_hour, cost), stop
    return (stop,)


def _groups(work: list[RunningWork], policy: Policy) -> list[_Group]:
    members: dict[tuple, list[RunningWork]] = defaultdict(list)
    for w in work:  # in job-id order
        options = _options(w, policy)
        if options:
            members[(w.team, w.service, options)].append(w)
    return [_Group(team, service, options, tuple(ws)) for (team, service, options), ws in members.items()]


def _replica_allowance(work: list[RunningWork]) -> dict[str, int]:
    """Replicas each service may lose: those running (pending actions aside) above its minimum."""
    counts: dict[str, int] = defaultdict(int)
    minimum: dict[str, int] = {}
    for w in work:
        if w.kind is WorkKind.REPLICA and not w.pending_action:
            counts[w.service] += 1
            minimum[w.service] = w.min_replicas
    return {service: max(count - minimum[service], 0) for service, count in counts.items()}


def _needs(groups: list[_Group], allowance: Mapping[str, int], rates: Mapping[str, float],
           targets: Mapping[str, float]) -> dict[str, float]:
    """$/h each scope must save: down to its target, or as far as every helpful action goes."""
    reachable: dict[str, float] = defaultdict(float)
    room = dict(allowance)
    for g in sorted(groups, key=lambda g: -max(o.saving for o in g.options)):  # a service's costliest replicas go
        count = len(g.members) if g.service is None else min(len(g.members), room[g.service])
        if g.service is not None:
            room[g.service] -= count
        for scope in scopes_of(g.team):
            reachable[scope] += count * max(o.saving for o in g.options)
    return {scope: min(rates[scope] - target, reachable[scope]) for scope, target in targets.items()}


Counts = dict[tuple[int, int], int]  # (group, option) -> how many of the group's jobs take that option


def _program(groups: list[_Group], allowance: Mapping[str, int],
             needs: Mapping[str, float]) -> tuple[milp.LinearProgram, list[tuple[int, int]]]:
    """min value lost s.t. each scope saves its need, a job takes one option, services keep their minimum."""
    lp = milp.LinearProgram()
    keys: list[tuple[int, int]] = []
    per_service: dict[str, list[int]] = defaultdict(list)
    per_scope: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for gi, g in enumerate(groups):
        row = []
        for oi, option in enumerate(g.options):
            var = lp.add_var(option.cost, float(len(g.members)))
            keys.append((gi, oi))
            row.append(var)
            if g.service is not None:
                per_service[g.service].append(var)
            for scope in scopes_of(g.team):
                if scope in needs:
                    per_scope[scope].append((var, option.saving))
        if len(row) > 1:
            lp.add_row(row, [1.0] * len(row), float(len(g.members)))
    for service, index in per_service.items():
        lp.add_row(index, [1.0] * len(index), float(allowance[service]))
    for scope, need in needs.items():
        # A covering row as `<=`: -(savings) <= -need, a hair loose so a need met exactly stays feasible.
        entries = per_scope[scope]
        lp.add_row([v for v, _ in entries], [-saving for _, saving in entries], -(need - _TOL / 10))
    return lp, keys


def _solve(groups: list[_Group], allowance: Mapping[str, int], needs: Mapping[str, float],
           time_limit_s: float, backend: str = "highs") -> tuple[Counts, str, float]:
    """Counts per (group, option), how they were found, and the LP lower bound on the value lost.

    HiGHS on the whole model takes 1-2 s to prove optimality on 2,000 near-alike
    knapsack items (the trace instance of tests/test_downscale.py). A core
    problem (Balas and Zemel's, for knapsacks) is much faster: solve the LP
    relaxation, leave the CORE_COLUMNS columns with the smallest reduced costs
    (and any fractional one) free, fix every other column at its LP value, and
    solve that small integer program to CORE_GAP. On that instance it took
    0.05-0.5 s and lost at most 0.22% more value than the full optimum; models
    with at most CORE_COLUMNS columns are solved whole. Both programs go through
    `milp.solve` with the policy's solver backend; the core program is bounded
    by CORE_NODES branch-and-bound nodes, so the same work gives the same
    actions on any machine load, and `time_limit_s` is a safety net, logged when
    reached. If HiGHS stops at a limit its best plan is taken ("milp-work-limit",
    "milp-time-limit"); with no plan at all, the LP's integer part is completed
    greedily ("rounded"), or, without an LP, everything is ("greedy").
    """
    lp, keys = _program(groups, allowance, needs)
    if lp.num_vars == 0:
        return {}, "milp", 0.0
    relaxed = milp.solve(lp, integer=False, backend=backend, time_limit_s=time_limit_s)
    if not relaxed.optimal:
        return _prune(groups, _greedy(groups, allowance, needs), needs), "greedy", 0.0
    lower_bound = relaxed.objective
    values = np.asarray(relaxed.values)
    settled = np.round(values)
    core = np.abs(values - settled) > 1e-9
    core[np.argsort(np.abs(np.asarray(relaxed.reduced_costs)), kind="stable")[:CORE_COLUMNS]] = True
    exact = milp.solve(lp.fixed(settled.tolist(), core.tolist()), integer=True, backend=backend,
                       time_limit_s=time_limit_s, mip_rel_gap=CORE_GAP, work=milp.WorkLimit(nodes=CORE_NODES))
    if exact.timed_out:
        log.error("downscaling's core program reached its wall-clock safety net (%.1f s)", time_limit_s)
    if exact.values is None:  # nothing feasible within the limits
        floor = {key: int(x + 1e-9) for key, x in zip(keys, values) if x > 1 - 1e-9}
        return _prune(groups, _greedy(groups, allowance, needs, floor), needs), "rounded", lower_bound
    counts = {key: round(x) for key, x in zip(keys, exact.values) if round(x) > 0}
    method = "milp" if exact.optimal else "milp-time-limit" if exact.timed_out else "milp-work-limit"
    return counts, method, lower_bound


def _greedy(groups: list[_Group], allowance: Mapping[str, int], needs: Mapping[str, float],
            start: Counts | None = None) -> Counts:
    """From `start`, cheapest value lost per $/h saved first while a scope the work counts in still needs saving."""
    counts: Counts = defaultdict(int, start or {})
    left = dict(needs)
    room = dict(allowance)
    free = [len(g.members) for g in groups]
    for (gi, oi), count in counts.items():
        g = groups[gi]
        free[gi] -= count
        if g.service is not None:
            room[g.service] -= count
        for scope in scopes_of(g.team):
            if scope in left:
                left[scope] -= count * g.options[oi].saving
    ranked = sorted(((gi, oi) for gi, g in enumerate(groups) for oi in range(len(g.options))),
                    key=lambda k: (groups[k[0]].options[k[1]].cost / groups[k[0]].options[k[1]].saving,
                                   groups[k[0]].members[0].job_id))
    for gi, oi in ranked:
        g, option = groups[gi], groups[gi].options[oi]
        while free[gi] and (g.service is None or room[g.service] > 0):
            scopes = [s for s in scopes_of(g.team) if left.get(s, 0.0) > _TOL / 10]
            if not scopes:
                break
            counts[(gi, oi)] += 1
            free[gi] -= 1
            if g.service is not None:
                room[g.service] -= 1
            for scope in scopes:
                left[scope] -= option.saving
    return dict(counts)


def _prune(groups: list[_Group], counts: Counts, needs: Mapping[str, float]) -> Counts:
    """Drop actions, costliest first, that every scope they count in can do without."""
    slack = {scope: -need for scope, need in needs.items()}
    for (gi, oi), count in counts.items():
        for scope in scopes_of(groups[gi].team):
            if scope in slack:
                slack[scope] += count * groups[gi].options[oi].saving
    kept = dict(counts)
    for gi, oi in sorted(counts, key=lambda k: -groups[k[0]].options[k[1]].cost):
        saving = groups[gi].options[oi].saving
        scopes = [s for s in scopes_of(groups[gi].team) if s in slack]
        while kept[(gi, oi)] and all(slack[s] >= saving - _TOL / 10 for s in scopes):
            kept[(gi, oi)] -= 1
            for scope in scopes:
                slack[scope] -= saving
    return {key: count for key, count in kept.items() if count}


def _assign(groups: list[_Group], counts: Mapping[tuple[int, int], int]) -> list[tuple[RunningWork, _Option]]:
    """The counts as (job, option) pairs, sorted by job id; equal choices go to the lower job ids.

    Within a group, members take the counted options in job-id order (idle
    stops, scale-downs, moves, then stops). Across groups, an option with the
    same team, service, kind, saving and cost that one job takes and a job
    with a lower id could take instead, having no action, moves to that job:
    nothing the program weighs changes, and the solver's pick among ties does
    not show.
    """
    action: dict[str, _Option] = {}
    order = list(ActionKind)
    for gi, g in enumerate(groups):
        options = sorted(range(len(g.options)), key=lambda oi: order.index(g.options[oi].kind))
        picks = [g.options[oi] for oi in options for _ in range(counts.get((gi, oi), 0))]
        action.update((w.job_id, option) for w, option in zip(g.members, picks))
    holders: dict[tuple, list[RunningWork]] = defaultdict(list)
    for g in groups:
        for option in g.options:
            holders[(g.team, g.service, option)].extend(g.members)
    for (_, _, option), members in holders.items():
        takers = [w for w in members if action.get(w.job_id) == option]
        if takers:
            free = [w for w in members if w.job_id not in action]
            for w in takers:
                del action[w.job_id]
            for w in sorted(takers + free, key=lambda w: w.job_id)[:len(takers)]:
                action[w.job_id] = option
    works = {w.job_id: w for g in groups for w in g.members}
    return [(works[job_id], action[job_id]) for job_id in sorted(action)]


def _action(w: RunningWork, option: _Option, outcomes: tuple[ScopeOutcome, ...],
            checkpoint_grace_s: float) -> DownscaleAction:
    what = {
        ActionKind.STOP_IDLE: f"stop idle {w.kind.value} {w.job_id} (${w.rate_per_hour:.2f}/h)",
        ActionKind.SCALE_DOWN: f"scale service {w.service} down by replica {w.job_id} (${w.rate_per_hour:.2f}/h, "
                               f"minimum {w.min_replicas})",
        ActionKind.MOVE_TO_SPOT: f"move batch job {w.job_id} to spot (${w.rate_per_hour:.2f}/h -> "
                                 f"${w.spot_rate_per_hour or 0.0:.2f}/h)",
        ActionKind.STOP: f"stop and requeue batch job {w.job_id} (${w.rate_per_hour:.2f}/h)",
    }[option.kind]
    scopes = set(scopes_of(w.team))
    why = "; ".join(f"{scope_name(o.scope)} {o.limit.detail} exceeded: ${o.before:.2f}/h -> ${o.after:.2f}/h "
                    f"(target ${o.target:.2f}/h)" for o in outcomes if o.scope in scopes)
    grace = checkpoint_grace_s if option.kind in (ActionKind.STOP, ActionKind.MOVE_TO_SPOT) else 0.0
    return DownscaleAction(w.job_id, option.kind, w.team, option.saving, option.cost, grace,
                           f"{what}, value lost ${option.cost:.2f}: {why}", w.service)
