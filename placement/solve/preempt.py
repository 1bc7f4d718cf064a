"""Preemption: a queued job displaces running on-prem work of lower priority when that is worth it.

Kueue's `withinClusterQueue: LowerPriority`, Slurm's QOS preemption, priced in the engine's own dollars:

- the job's value is what starting now on the freed node saves over its queue cost: the delay it would
  otherwise wait (until the forecast start, at its priority's $ per GPU-hour x its GPUs) and what it would
  pay where it would eventually run, less the on-prem objective now (a job with no option this round: the
  delay until its reservation's start, else the policy's `expected_wait_hours`);
- each victim's cost is its delay while the job runs (it waits behind it) at its priority's rate; when that
  is longer than the victim's `max_wait`, the delay up to its max_wait and then the premium of the cheapest
  public offer for its GPUs over the on-prem rate for the hours it has left (it will burst); plus its
  restart: the work lost since its last checkpoint and the start-up, `restart_hours` (its own, else the
  policy's `downscale.restart_hours`), at its priority's rate;
- the gain is the value less the costs; the job preempts only when it is positive.

Borrowed quota is taken back the same way (Kueue's `reclaimWithinCohort`, placement/solve/borrowing.py): a
queued job whose team places it within its own on-prem quota may displace work other teams run on borrowed
quota whatever its priority, age or `preemptible`, and whatever the gain (the owner is owed it); such victims
are taken first.

Only on-prem work is displaced (a node, not an instance type, is what a waiting job can take over), only
single-node jobs preempt, and victims are chosen per node, least valuable first, the node needing the fewest
victims (then the largest gain) winning. A victim is always a whole job: a gang spread over several nodes is
stopped whole (every node it holds frees) or not at all. Never displaced: work marked `preemptible: false`,
services (no expected end), work younger than `protect_running_minutes`, and work whose priority's rate is
more than 1 / `min_priority_gap` of the job's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from placement.model import Job, Offer, Placement, Preemption, Running, Snapshot, Tier
from placement.solve.borrowing import reclaimable, within_quota
from placement.solve.candidates import group_offers, index_groups, job_objective, signature_options, usable
from placement.solve.costs import delay_rate, gpu_units
from placement.solve.forecast import Ratios, remaining_hours
from placement.solve.ledger import CapacityLedger, Chosen, placement_of
from policies.model import Policy

_EPS = 1e-9


def preemptions(queued: list[Job], queue_costs: dict[str, float], wait_hours: dict[str, float], snapshot: Snapshot,
                placements: list[Placement], policy: Policy) -> tuple[Preemption, ...]:
    """The round's preemptions for `queued` jobs (most valuable per GPU first), given what this round placed."""
    settings = policy.preemption
    if not settings.enabled or settings.max_victims_per_round == 0:
        return ()
    nodes = {o.name: o for o in snapshot.offers if o.tier is Tier.ONPREM and o.capacity}
    free = {name: [o.gpu_count, o.vcpus, o.memory_gb] for name, o in nodes.items()}
    for placement in placements:
        for name in placement.nodes:
            if name in free:
                _add(free[name], (placement.gpus_per_node, placement.cpus_per_node, placement.memory_gb_per_node), -1)
    borrowed = reclaimable(snapshot.running, policy)  # job id -> the team that borrows for it
    displaceable = {r.job_id for r in snapshot.running if _displaceable(r, policy)}
    victims = [r for r in snapshot.running if r.job_id in displaceable or (
        r.job_id in borrowed and r.nodes and r.priority in policy.priorities)]
    ratios = Ratios(snapshot.duration_ratios)
    public = _public_rates(snapshot)  # by GPU type
    if not victims:
        return ()
    lowest = min((policy.delay_rate(v.priority) for v in victims if v.job_id in displaceable), default=math.inf)
    hosting = {name for v in victims for name in v.nodes}
    teams = {j.id: j.team for j in snapshot.jobs}
    charged = [*snapshot.running, *(_as_running(p, teams) for p in placements)]
    stopped: set[str] = set()
    freed: set[str] = set()  # nodes where this round's stops left room (a gang's other nodes)
    chosen = []
    budget = settings.max_victims_per_round
    for job in sorted(queued, key=lambda j: (-delay_rate(j, policy) / gpu_units(j, j.demands[0], policy), j.id)):
        if budget <= 0:
            break
        if job.num_nodes != 1 or Tier.ONPREM not in job.tiers or job.priority not in policy.priorities:
            continue
        owner = bool(borrowed) and within_quota(_quota_left(snapshot, charged, policy), job.team, Tier.ONPREM,
                                                job.demands[0].accelerator_count)

        def reclaims(victim: Running, team: str = job.team, owner: bool = owner) -> bool:
            return owner and borrowed.get(victim.job_id, team) != team

        if not owner and policy.delay_rate(job.priority) < lowest * settings.min_priority_gap - _EPS:
            continue
        if job.id in queue_costs:
            def saving(placement: Placement, queue_cost: float = queue_costs[job.id]) -> float:
                return queue_cost - placement.objective
        else:
            def saving(placement: Placement, delay: float = delay_rate(job, policy) * wait_hours.get(
                    job.id, policy.expected_wait_hours)) -> float:
                return delay
        best = None
        for name in sorted(n for n in nodes if n in hosting or n in freed):
            found = _on_node(job, nodes[name], free, [v for v in victims if v.job_id not in stopped
                                                      and (v.job_id in displaceable or reclaims(v))],
                             charged, snapshot, policy, budget, name in freed, saving,
                             lambda v: _cost(v, job, policy, ratios, public), reclaims)
            if found is not None and (best is None or (len(found[0]), -found[1]) < (len(best[0]), -best[1])):
                best = found
        if best is None:
            continue
        taken, gain, placement = best
        for victim in taken:
            stopped.add(victim.job_id)
            for name in victim.nodes:
                if name in free:
                    _add(free[name], victim.per_node, 1)
                    freed.add(name)
        for name in placement.nodes:
            _add(free[name], (placement.gpus_per_node, placement.cpus_per_node, placement.memory_gb_per_node), -1)
        charged = [r for r in charged if r.job_id not in stopped] + [_as_running(placement, teams)]
        budget -= len(taken)
        reclaim = bool(taken) and all(map(reclaims, taken))
        need = f"team {job.team} reclaims the on-prem quota it lent for {job.id}" if reclaim else \
            f"{job.priority} {job.id} needs"
        reason = f"Preempted(by={job.id}, gain=${gain:,.2f}): {need} {', '.join(placement.nodes)} now; requeued"
        chosen.append(Preemption(job.id, tuple(v.job_id for v in taken), tuple(v.team for v in taken),
                                 placement.nodes, gain, reason, placement, reclaim))
    return tuple(chosen)


def _displaceable(work: Running, policy: Policy) -> bool:
    return (work.tier is Tier.ONPREM and work.preemptible and bool(work.nodes) and work.expected_hours is not None
            and work.priority in policy.priorities
            and work.elapsed_hours * 60 >= policy.preemption.protect_running_minutes - _EPS)


def _on_node(job: Job, node: Offer, free: dict[str, list[float]], victims: list[Running], charged: list[Running],
             snapshot: Snapshot, policy: Policy, budget: int, freed: bool, saving: Callable[[Placement], float],
             cost_of: Callable[[Running], float], reclaims: Callable[[Running], bool]
             ) -> tuple[list[Running], float, Placement] | None:
    """The fewest least valuable victims on `node` that make room for `job` there, their gain and the placement
    (none needed where this round's stops already freed room: `freed`); None when no worthwhile set does. Work
    on quota the job's team lent (`reclaims`) goes first, and a set of only such victims is worth it whatever
    the gain."""
    rate = policy.delay_rate(job.priority)
    ceiling = rate / policy.preemption.min_priority_gap
    here = sorted((v for v in victims if node.name in v.nodes
                   and (reclaims(v) or policy.delay_rate(v.priority) <= ceiling + _EPS)),
                  key=lambda v: (not reclaims(v), cost_of(v), v.job_id))
    taken: list[Running] = []
    cost = 0.0
    if freed:
        placement = _fit(job, node, free[node.name], taken, charged, snapshot, policy)
        if placement is not None and saving(placement) > _EPS:
            return taken, saving(placement), placement
    for victim in here[:budget]:
        taken.append(victim)
        cost += cost_of(victim)
        placement = _fit(job, node, free[node.name], taken, charged, snapshot, policy)
        if placement is not None:
            gain = saving(placement) - cost
            return (taken, gain, placement) if gain > _EPS or all(map(reclaims, taken)) else None
    return None


def _cost(victim: Running, job: Job, policy: Policy, ratios: Ratios,
          public: dict[str | None, list[tuple[float, float]]]) -> float:
    """What displacing `victim` costs: its delay while `job` runs (or up to its max_wait, then bursting's
    premium for the hours it has left), and its restart, at its priority's rate."""
    restart = policy.downscale.restart_hours if victim.restart_hours is None else victim.restart_hours
    gpus = max(victim.gpus, victim.per_node[1] / policy.cpus_per_gpu_equivalent, 0.1)
    rate = policy.delay_rate(victim.priority) * gpus
    if victim.max_wait_hours is None or job.expected_hours <= victim.max_wait_hours:
        return rate * (job.expected_hours + restart)
    left = remaining_hours(victim, ratios) or 0.0
    per_node = victim.per_node[0]
    prices = [price for count, price in public.get(victim.gpu, ()) if count >= per_node - _EPS]
    if not prices:  # nowhere to burst: it waits on, overdue
        overdue = policy.overdue_multiplier * (job.expected_hours - victim.max_wait_hours)
        return rate * (victim.max_wait_hours + overdue + restart)
    premium = max(min(prices) * max(len(victim.nodes), 1) - victim.rate_per_hour, 0.0) * left
    return rate * (victim.max_wait_hours + restart) + policy.weights.cost * premium


def _public_rates(snapshot: Snapshot) -> dict[str | None, list[tuple[float, float]]]:
    """The round's on-demand public instances of each GPU type, as (GPUs, $ per hour of the whole instance):
    a displaced job that bursts pays for whole instances, however few GPUs it holds on-prem."""
    rates: dict[str | None, list[tuple[float, float]]] = {}
    for offer in snapshot.offers:
        if offer.tier is Tier.PUBLIC and not offer.spot and offer.gpu is not None and offer.gpu_count > 0:
            rates.setdefault(offer.gpu, []).append((offer.gpu_count, offer.price_per_hour))
    return rates


def _fit(job: Job, node: Offer, free: list[float], taken: list[Running], charged: list[Running],
         snapshot: Snapshot, policy: Policy) -> Placement | None:
    """Where `job` goes on `node` once `taken` have stopped, if every limit allows (quotas, caps, GPU memory)."""
    room = list(free)
    for victim in taken:
        _add(room, victim.per_node, 1)
    offer = dataclasses.replace(node, gpu_count=room[0], vcpus=room[1], memory_gb=room[2], capacity=1,
                                whole=node.whole or (node.gpu_count, node.vcpus, node.memory_gb))
    gone = {v.job_id for v in taken}
    world = dataclasses.replace(snapshot, jobs=(job,), offers=(offer,),
                                running=tuple(r for r in charged if r.job_id not in gone))
    groups = group_offers(world)
    by_gpu, onprem = index_groups(groups)
    ledger = CapacityLedger(world, groups, policy)
    options = sorted((o for o in signature_options(job, by_gpu, onprem, policy) if usable(job, o)),
                     key=lambda o: (job_objective(job, o, policy), o.group.index))
    for option in options:
        offers = ledger.try_place(job, option)
        if offers is not None:
            return placement_of(job, Chosen(job_objective(job, option, policy), option, offers))
    return None


def _quota_left(snapshot: Snapshot, charged: list[Running], policy: Policy) -> dict[tuple[str, Tier], float]:
    """Each team's quota left with `charged` (running work and this round's placements) counted."""
    return CapacityLedger(dataclasses.replace(snapshot, running=tuple(charged)), [], policy).quota_left


def _as_running(placement: Placement, teams: dict[str, str]) -> Running:
    """This round's placement as running work, so quotas and caps count it when later preemptions are weighed."""
    return Running(job_id=placement.job_id, team=teams.get(placement.job_id, ""), tier=placement.tier, offer_id=placement.offer_id,
                   gpus=placement.gpus_per_node * placement.num_nodes, rate_per_hour=placement.rate_per_hour)


def _add(room: list[float], held: tuple[float, float, float], sign: int) -> None:
    for i in range(3):
        room[i] += sign * held[i]
