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
from placement.solve.costs import option_cost, queue_cost, startup_cost, waits_for
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
    """Collapse interchangeable offers into groups, leaving out blocked ones and those with no capacity."""
    groups: dict[tuple, Group] = {}
    for offer in snapshot.offers:
        if offer.id in snapshot.blocked_offers or offer.capacity == 0:
            continue
        if offer.sharing is Sharing.SHARED and offer.capacity is not None:
            key = (offer.tier, offer.provider, offer.cloud, offer.region, offer.zone, offer.gpu, offer.gpu_count,
                   offer.gpu_memory_gb, offer.vcpus, offer.memory_gb, offer.price_per_hour, offer.gco2_per_kwh,
                   offer.gpu_watts, offer.host_watts, offer.labels, offer.whole)
            copies = offer.capacity
        else:
            key = (offer.tier, offer.provider, offer.cloud, offer.region, offer.name, offer.spot,
                   offer.price_per_hour, offer.pool, offer.gco2_per_kwh, offer.gpu)
            copies = 1
        group = groups.get(key)
        if group is None:
            groups[key] = Group(len(groups), offer, [offer] * copies)
        else:
            group.members.extend([offer] * copies)
    return list(groups.values())


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


def team_scope(team: str, policy: Policy) -> str | None:
    return team if team in policy.quotas or team in policy.caps.teams else None


def build_classes(jobs: tuple[Job, ...], groups: list[Group], policy: Policy,
                  aggregate: bool = True) -> tuple[list[JobClass], dict[str, list[SignatureOption]]]:
    """Jobs grouped into classes with their priced options; also each job's signature options.

    Jobs with no feasible option at all get an empty option list and no class.
    """
    by_gpu, onprem = index_groups(groups)
    sig_cache: dict[tuple, list[SignatureOption]] = {}
    job_options: dict[str, list[SignatureOption]] = {}
    buckets: dict[tuple, list[Job]] = defaultdict(list)
    for job in jobs:
        sig = _signature(job)
        if sig not in sig_cache:
            sig_cache[sig] = signature_options(job, by_gpu, onprem, policy)
        options = [o for o in sig_cache[sig]
                   if job.budget_usd is None or o.rate * job.expected_hours <= job.budget_usd + 1e-9]
        job_options[job.id] = options
        if not options:
            continue
        overdue = job.max_wait_hours is not None and job.waited_hours >= job.max_wait_hours
        if aggregate:
            bucket = round(math.log(job.expected_hours) / math.log(HOURS_BUCKET_RATIO))
            key = (sig, job.priority, team_scope(job.team, policy), bucket, overdue, job.budget_usd)
        else:
            key = (job.id,)
        buckets[key].append(job)

    classes = []
    for members in buckets.values():
        rep = members[0]
        hours = sum(j.expected_hours for j in members) / len(members)
        options = job_options[rep.id]
        queue = queue_cost(rep, eventual_objective(rep, hours, options, policy), policy)
        cls = JobClass(len(classes), members, hours, team_scope(rep.team, policy), queue)
        for option in options:
            objective = job_objective(rep, option, policy, hours)
            if objective < queue - 1e-9:
                cls.options.append((option, objective))
        classes.append(cls)
    return classes, job_options


def job_queue_cost(job: Job, options: list[SignatureOption], policy: Policy) -> float:
    return queue_cost(job, eventual_objective(job, job.expected_hours, options, policy), policy)


