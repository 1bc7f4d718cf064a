"""From a snapshot to the pieces of the model: offer groups, job classes and their options.

Scale comes from aggregation. Identical on-prem nodes form one group with a
count; public zones with the same instance and price form one group. Jobs with
the same shape form a *signature*; the feasible groups and per-hour prices are
worked out once per signature, and dominated public or private offers are
pruned there (an offer that is neither cheaper per hour in objective nor in
spend rate than another of the same tier and pool can never be needed).
Jobs of one signature that also share priority, team scope and a duration
bucket form a *class*, whose size becomes an integer count in the model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from placement.model import Demand, Job, Offer, Sharing, Snapshot, Tier
from placement.solve.costs import (Wait, allowed_wait_hours, deadline_queue_cost, delay_rate, must_start,
                                   option_cost, queue_cost, startup_cost, waits_for)
from placement.solve.forecast import Forecast, Start
from policies.model import Policy

HOURS_BUCKET_RATIO = 1.25  # jobs whose durations differ by less than this share a class


@dataclass(slots=True)
class Group:
    """Interchangeable offers: identical on-prem nodes, or one public instance type in a region's zones."""

    index: int
    offer: Offer  # the representative
    members: list[Offer]

    @property
    def tier(self) -> Tier:
        return self.offer.tier

    @property
    def node_count(self) -> int | None:
        """Machines available, for capacity-limited groups (on-prem); None when unbounded."""
        return len(self.members) if self.offer.capacity is not None else None

    def member_for(self, demand: Demand) -> Offer:
        if demand.zone is None:
            return self.members[0]
        return next(m for m in self.members if m.zone == demand.zone)


@dataclass(slots=True)
class SignatureOption:
    """A feasible (group, demand) for a job shape, with its hour-independent prices."""

    group: Group
    demand: Demand
    rate: float  # $/h of the whole job
    objective_per_hour: float  # the hour-proportional part of the objective
    gpus: float  # GPUs the whole job holds there
    startup_by_priority: dict[str, float] = field(default_factory=dict)  # filled on first use

    def startup(self, job: Job, policy: Policy) -> float:
        """The start-up delay cost: the same for every job of the signature with the same priority."""
        cost = self.startup_by_priority.get(job.priority)
        if cost is None:
            cost = self.startup_by_priority[job.priority] = startup_cost(job, self.demand, self.group.tier, policy)
        return cost


@dataclass(slots=True)
class JobClass:
    index: int
    jobs: list[Job]
    hours: float  # the members' mean expected hours
    team_scope: str | None  # the team, when a policy limit names it
    queue_cost: float  # per job, at `hours`
    options: list[tuple[SignatureOption, float]] = field(default_factory=list)  # (option, objective per job)

    @property
    def size(self) -> int:
        return len(self.jobs)

    @property
    def rep(self) -> Job:
        return self.jobs[0]


def group_offers(snapshot: Snapshot) -> list[Group]:
    """Collapse interchangeable offers into groups, leaving out blocked ones and those with no capacity.

    Groups are numbered in the order their first offer comes. The snapshot's trailing unbounded offers (the
    static catalogs, the same objects every round) are grouped once and reused while they and the blocked ones
    among them are unchanged; only the nodes before them are grouped each round.
    """
    offers, blocked = snapshot.offers, snapshot.blocked_offers
    start, tail = _static_tail(offers, blocked)
    grouped = _grouped(offers[:start], blocked)
    if grouped.keys().isdisjoint(tail.keys()):
        grouped.update((key, (offer, list(members))) for key, (offer, members) in tail.items())
    else:  # a node that groups with a catalog offer: group it all afresh
        grouped = _grouped(offers, blocked)
    return [Group(index, offer, members) for index, (offer, members) in enumerate(grouped.values())]


def _grouped(offers: tuple[Offer, ...], blocked: frozenset[str]) -> dict[tuple, tuple[Offer, list[Offer]]]:
    """Offers by what makes them interchangeable: (the first of them, every copy of each), in first-come order."""
    grouped: dict[tuple, tuple[Offer, list[Offer]]] = {}
    for offer in offers:
        if offer.id in blocked or offer.capacity == 0:
            continue
        if offer.sharing is Sharing.SHARED and offer.capacity is not None:
            key = (offer.tier, offer.provider, offer.cloud, offer.region, offer.zone, offer.gpu, offer.gpu_count,
                   offer.gpu_memory_gb, offer.vcpus, offer.memory_gb, offer.price_per_hour, offer.gco2_per_kwh,
                   offer.gpu_watts, offer.host_watts, offer.labels, offer.whole, offer.reserved_for,
                   offer.free_for_hours)
            copies = offer.capacity
        else:
            key = (offer.tier, offer.provider, offer.cloud, offer.region, offer.name, offer.spot,
                   offer.price_per_hour, offer.pool, offer.gco2_per_kwh, offer.gpu)
            copies = 1
        group = grouped.get(key)
        if group is None:
            grouped[key] = (offer, [offer] * copies)
        else:
            group[1].extend([offer] * copies)
    return grouped


# The last snapshot's trailing unbounded offers, their ids, the blocked ones among them, and their grouping.
_last_tail: tuple[tuple[Offer, ...], frozenset[str], frozenset[str], dict[tuple, tuple[Offer, list[Offer]]]] = (
    (), frozenset(), frozenset(), {})


def _static_tail(offers: tuple[Offer, ...], blocked: frozenset[str]
                 ) -> tuple[int, dict[tuple, tuple[Offer, list[Offer]]]]:
    """Where the trailing unbounded offers start, and their grouping (the last one's, where they are the same)."""
    global _last_tail
    tail, ids, tail_blocked, grouped = _last_tail
    start = len(offers) - len(tail)
    if tail and start >= 0 and offers[start:] == tail and blocked & ids == tail_blocked:
        return start, grouped
    start = len(offers)
    while start and offers[start - 1].capacity is None:
        start -= 1
    tail = offers[start:]
    ids = frozenset(o.id for o in tail)
    grouped = _grouped(tail, blocked)
    _last_tail = (tail, ids, blocked & ids, grouped)
    return start, grouped


def fits(job: Job, demand: Demand, offer: Offer, policy: Policy) -> bool:
    """Whether one node of `job`, asking for `demand`, can run on `offer` at all (capacity aside)."""
    if offer.tier not in job.tiers or (job.onprem_only and offer.tier is not Tier.ONPREM):
        return False
    if demand.accelerator is None:
        if offer.sharing is Sharing.DEDICATED and offer.gpu is not None:
            return False  # a CPU job does not rent a GPU instance
    else:
        if offer.gpu != demand.accelerator:
            return False
        if offer.sharing is Sharing.DEDICATED:
            if offer.gpu_count != demand.accelerator_count:
                return False
        elif offer.gpu_count < demand.accelerator_count:
            return False
        needed = job.gpu_memory_needed(policy.memory.margin)
        if needed is not None and offer.gpu_memory_gb < needed:
            return False
    if offer.vcpus < demand.cpus or offer.memory_gb < demand.memory_gb:
        return False
    if demand.cloud is not None and offer.cloud != demand.cloud:
        return False
    if demand.region is not None and offer.region != demand.region:
        return False
    if demand.instance_type is not None and offer.name != demand.instance_type:
        return False
    if offer.spot:
        if not policy.spot.allowed or demand.use_spot is False or not (job.spot_ok or demand.use_spot):
            return False
    elif demand.use_spot:
        return False
    return True


def _group_fits(job: Job, demand: Demand, group: Group, policy: Policy) -> bool:
    if not fits(job, demand, group.offer, policy):
        return False
    if demand.zone is not None and all(m.zone != demand.zone for m in group.members):
        return False
    count = group.node_count
    return count is None or count >= job.num_nodes


def _signature(job: Job) -> tuple:
    return (job.demands, job.num_nodes, job.tiers, job.spot_ok, job.onprem_only, job.gpu_memory_gb,
            job.gpu_memory_estimated)


def _pareto(options: list[SignatureOption]) -> list[SignatureOption]:
    """Drop public/private options beaten on both objective per hour and spend rate within their tier and pool."""
    kept: list[SignatureOption] = []
    by_scope: dict[tuple, list[SignatureOption]] = defaultdict(list)
    for option in options:
        if option.group.node_count is not None:
            kept.append(option)  # capacity-limited groups are never interchangeable
        else:
            by_scope[(option.group.tier, option.group.offer.pool, option.gpus)].append(option)
    for scope_options in by_scope.values():
        scope_options.sort(key=lambda o: (o.objective_per_hour, o.rate, o.group.index))
        best_rate = math.inf
        for option in scope_options:
            if option.rate < best_rate - 1e-9:
                kept.append(option)
                best_rate = option.rate
    return kept


def signature_options(job: Job, groups_by_gpu: dict[str | None, list[Group]], onprem: list[Group],
                      policy: Policy) -> list[SignatureOption]:
    """Every feasible (group, demand) for this job's shape, dominated ones pruned."""
    options = []
    for demand in job.demands:
        candidates = groups_by_gpu.get(demand.accelerator, [])
        if demand.accelerator is None:
            candidates = candidates + [g for g in onprem if g.offer.gpu is not None]
        for group in candidates:
            if not _group_fits(job, demand, group, policy):
                continue
            cost = option_cost(job, group.offer, demand, policy, hours=1.0)
            startup = startup_cost(job, demand, group.tier, policy)
            gpus = demand.accelerator_count * job.num_nodes
            options.append(SignatureOption(group, demand, cost.rate_per_hour, cost.objective - startup, gpus))
    if options:  # `ordered`: a later choice only when no earlier one can be had at all
        first = min(o.demand.rank for o in options)
        options = [o for o in options if o.demand.rank == first]
    return _pareto(options)


def index_groups(groups: list[Group]) -> tuple[dict[str | None, list[Group]], list[Group]]:
    by_gpu: dict[str | None, list[Group]] = defaultdict(list)
    for group in groups:
        by_gpu[group.offer.gpu].append(group)
    return by_gpu, [g for g in groups if g.tier is Tier.ONPREM]


def job_objective(job: Job, option: SignatureOption, policy: Policy, hours: float | None = None) -> float:
    """The objective of one job on an option, for its own (or the given) expected hours."""
    hours = job.expected_hours if hours is None else hours
    return option.objective_per_hour * hours + option.startup(job, policy)


def eventual_objective(job: Job, hours: float, options: list[SignatureOption], policy: Policy) -> float:
    """What the job costs once it runs where it waits for: the cheapest owned tier, else anywhere."""
    owned = [o for o in options if waits_for(o.group.tier)] or options
    return min(job_objective(job, o, policy, hours) for o in owned)


class Waiting:
    """What waiting for forecast on-prem capacity costs each job (`costs.Wait`), priced once per node and shape."""

    def __init__(self, forecast: Forecast | None, policy: Policy):
        self.forecast = forecast if forecast else None
        self.policy = policy
        self._prices: dict[tuple, tuple[float, float]] = {}
        self._starts: dict[str, Start | None] = {}

    def of(self, job: Job, hours: float | None = None, options: list[SignatureOption] | None = None
           ) -> Wait | None:
        """The job's wait for its forecast on-prem start; None where the forecast has nothing to say.

        The first call for a job gives its options this round (later calls reuse the answer). A job with
        room on-prem now (an on-prem option) is priced as waiting for the next room running work gives back
        (if it loses what is free now to other work this round), when that comes before `expected_wait_hours`.
        """
        if self.forecast is None:
            return None
        hours = job.expected_hours if hours is None else hours
        if job.id in self._starts:
            start = self._starts[job.id]
        else:
            fits_now = any(o.group.tier is Tier.ONPREM for o in options or ())
            start = None if fits_now else self.forecast.start(job, self.policy)
            if fits_now or (start is not None and start.hours <= 1e-9):
                start = self.forecast.start(job, self.policy, releases_only=True)
                if start is not None and start.hours >= self.policy.expected_wait_hours:
                    start = None
            self._starts[job.id] = start
        if start is None:
            return None
        node = start.nodes[0]
        key = (node.price_per_hour, node.whole, node.gpu_count, node.gco2_per_kwh, node.gpu_watts, node.host_watts,
               start.demand, job.num_nodes, job.priority)  # what option_cost reads: identical nodes price alike
        price = self._prices.get(key)
        if price is None:
            startup = startup_cost(job, start.demand, node.tier, self.policy)
            per_hour = option_cost(job, node, start.demand, self.policy, hours=1.0).objective - startup
            price = self._prices[key] = (per_hour, startup)
        eventual = price[0] * hours + price[1]
        return Wait(start.hours, start.node_names, node.gpu, delay_rate(job, self.policy) * start.hours, eventual,
                    start.hours <= allowed_wait_hours(job, self.policy) + 1e-9)


def queue_cost_of(job: Job, hours: float, options: list[SignatureOption], wait: Wait | None,
                  policy: Policy) -> float:
    """Leaving the job queued: its forecast wait's cost where it may wait that long, else the policy's guess;
    for a job that must start now to make its max_wait (`costs.must_start`), more than any option."""
    if options and must_start(job, policy):
        return deadline_queue_cost(job, max(o.objective_per_hour for o in options),
                                   max(o.startup(job, policy) for o in options), hours, policy)
    if wait is not None and wait.within_max_wait:
        return wait.cost
    return queue_cost(job, eventual_objective(job, hours, options, policy), policy)


def usable(job: Job, option: SignatureOption) -> bool:
    """EASY backfill: a node reserved for another job takes only work expected to end before the reservation."""
    offer = option.group.offer
    return (offer.free_for_hours is None or offer.reserved_for == job.id
            or job.expected_hours <= offer.free_for_hours + 1e-9)


def team_scope(team: str, policy: Policy) -> str | None:
    return team if team in policy.quotas or team in policy.caps.teams else None


def build_classes(jobs: tuple[Job, ...], groups: list[Group], policy: Policy, aggregate: bool = True,
                  waiting: Waiting | None = None) -> tuple[list[JobClass], dict[str, list[SignatureOption]]]:
    """Jobs grouped into classes with their priced options; also each job's signature options.

    Jobs with no feasible option at all get an empty option list and no class. `waiting` prices a
    queued job's wait for forecast on-prem capacity.
    """
    waiting = waiting or Waiting(None, policy)
    horizons = sorted({g.offer.free_for_hours for g in groups if g.offer.free_for_hours is not None})
    reserved_for = {g.offer.reserved_for for g in groups if g.offer.reserved_for is not None}
    by_gpu, onprem = index_groups(groups)
    sig_cache: dict[tuple, list[SignatureOption]] = {}
    job_options: dict[str, list[SignatureOption]] = {}
    buckets: dict[tuple, list[Job]] = defaultdict(list)
    for job in jobs:
        sig = _signature(job)
        if sig not in sig_cache:
            sig_cache[sig] = signature_options(job, by_gpu, onprem, policy)
        options = [o for o in sig_cache[sig]
                   if (job.budget_usd is None or o.rate * job.expected_hours <= job.budget_usd + 1e-9)
                   and usable(job, o)]
        job_options[job.id] = options
        if not options:
            continue
        wait = waiting.of(job, options=options)
        overdue = job.max_wait_hours is not None and job.waited_hours >= job.max_wait_hours
        if aggregate:
            bucket = round(math.log(job.expected_hours) / math.log(HOURS_BUCKET_RATIO))
            may_wait = None if wait is None else wait.within_max_wait
            backfills = tuple(job.expected_hours <= h + 1e-9 for h in horizons)
            key = (sig, job.priority, team_scope(job.team, policy), bucket, overdue, must_start(job, policy),
                   job.budget_usd, may_wait, backfills, job.id if job.id in reserved_for else None,
                   job.fair_share_factor)
        else:
            key = (job.id,)
        buckets[key].append(job)

    classes = []
    for members in buckets.values():
        rep = members[0]
        hours = sum(j.expected_hours for j in members) / len(members)
        options = job_options[rep.id]
        queue = queue_cost_of(rep, hours, options, waiting.of(rep, hours), policy)
        cls = JobClass(len(classes), members, hours, team_scope(rep.team, policy), queue)
        for option in options:
            objective = job_objective(rep, option, policy, hours)
            if objective < queue - 1e-9:
                cls.options.append((option, objective))
        classes.append(cls)
    return classes, job_options


def job_queue_cost(job: Job, options: list[SignatureOption], policy: Policy, wait: Wait | None = None) -> float:
    return queue_cost_of(job, job.expected_hours, options, wait, policy)


