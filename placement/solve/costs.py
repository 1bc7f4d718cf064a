"""What an option costs under a policy, in dollars of objective.

An option is a (job, offer, demand) triple. Its objective is the policy's
weighted sum of dollars, carbon, start-up delay and tier bias. Leaving a job
queued costs the delay it suffers plus what it will cost when it does run on
the capacity it is waiting for, so that bursting is chosen exactly when the
premium over owned capacity is worth less than the delay it saves. Where the
capacity forecast (forecast.py) says when an on-prem node will have room, the
delay is the time until then and the run is priced on that node (`Wait`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from placement.model import Demand, Job, Offer, Sharing, Tier
from policies.model import Policy


@dataclass(frozen=True, slots=True)
class OptionCost:
    rate_per_hour: float  # $ per hour the whole job pays (all nodes)
    dollars: float  # rate x expected hours
    carbon_kg: float
    objective: float


def gpu_units(job: Job, demand: Demand, policy: Policy) -> float:
    """GPU-equivalents a job holds, for pricing its delay: GPUs, or vCPUs scaled for CPU-only work."""
    per_node = demand.accelerator_count if demand.accelerator else demand.cpus / policy.cpus_per_gpu_equivalent
    return max(per_node, 0.1) * job.num_nodes


def delay_rate(job: Job, policy: Policy) -> float:
    """$ per hour this job's delay costs now (higher once it is past its max_wait, lower while its team is over its
    fair share)."""
    rate = policy.delay_rate(job.priority) * gpu_units(job, job.demands[0], policy) * job.fair_share_factor
    if job.max_wait_hours is not None and job.waited_hours >= job.max_wait_hours:
        rate *= policy.overdue_multiplier
    return rate


def startup_cost(job: Job, demand: Demand, tier: Tier, policy: Policy) -> float:
    """The delay cost of the time a tier takes from decision to running."""
    minutes = policy.startup_minutes.get(tier, 0.0)
    return policy.delay_rate(job.priority) * gpu_units(job, demand, policy) * minutes / 60.0


def option_cost(job: Job, offer: Offer, demand: Demand, policy: Policy, hours: float | None = None) -> OptionCost:
    """The cost of running `job` on `offer` with `demand`, for `hours` (default: the job's expected hours).

    Everything but start-up is proportional to hours, which lets the solver price
    a job shape once per hour and scale it per job.
    """
    hours = job.expected_hours if hours is None else hours
    nodes = job.num_nodes
    rate = offer.job_price_per_hour(demand) * nodes
    spot_factor = 1.0 + (policy.spot.risk if offer.spot else 0.0)

    if offer.sharing is Sharing.DEDICATED:
        gpus_powered, host_share = offer.gpu_count, 1.0
    else:
        gpus_powered, host_share = demand.accelerator_count, offer.share(demand)
    watts = (offer.gpu_watts or 0.0) * gpus_powered + offer.host_watts * host_share
    grid = offer.gco2_per_kwh if offer.gco2_per_kwh is not None else policy.default_grid_gco2_per_kwh
    carbon_per_hour = watts * nodes * policy.pue / 1000.0 * grid / 1000.0

    units = gpu_units(job, demand, policy)
    bias = policy.tier_bias_usd_per_gpu_hour.get(offer.tier, 0.0) * units
    per_hour = (policy.weights.cost * rate * spot_factor + policy.weights.carbon_usd_per_kg * carbon_per_hour
                + bias + fragmentation_per_hour(offer, demand, policy) * nodes)
    objective = per_hour * hours + startup_cost(job, demand, offer.tier, policy)
    return OptionCost(rate, rate * hours, carbon_per_hour * hours, objective)


def fragmentation_per_hour(offer: Offer, demand: Demand, policy: Policy) -> float:
    """Best fit on an owned node: what one node of the job costs per hour for the GPUs it leaves free beside it.

    The job's GPUs times the share of the node's GPUs still free after it: nothing on a node it fills, most
    on an empty node it breaks up, so of two owned nodes at the same share price the fuller one wins, long
    work gathers on nodes already in use, and an empty node is kept whole for a job that needs all of it.
    Not spend: only the objective sees it.
    """
    if offer.tier is not Tier.ONPREM or offer.sharing is not Sharing.SHARED or demand.accelerator_count <= 0:
        return 0.0
    whole = offer.whole_gpus
    if whole <= 0:
        return 0.0
    left = max(offer.gpu_count - demand.accelerator_count, 0.0)
    return policy.fragmentation_usd_per_gpu_hour * demand.accelerator_count * left / whole


def queue_cost(job: Job, eventual_objective: float, policy: Policy) -> float:
    """The objective of leaving `job` queued with no forecast: `expected_wait_hours` of delay plus its run."""
    return delay_rate(job, policy) * policy.expected_wait_hours + eventual_objective


@dataclass(frozen=True, slots=True)
class Wait:
    """Waiting for on-prem capacity the forecast sees coming: when, where, and what it costs.

    `within_max_wait` false: the forecast start is past what is left of the job's max_wait, so the job
    is not priced as waiting for it (it bursts); the figures stay for `explain`.
    """

    hours: float  # until the forecast start, from the snapshot
    nodes: tuple[str, ...]
    gpu: str | None
    delay: float  # $ of delay until then
    eventual: float  # objective of the run on those nodes, start-up included
    within_max_wait: bool = True

    @property
    def cost(self) -> float:
        return self.delay + self.eventual


def allowed_wait_hours(job: Job, policy: Policy) -> float:
    """How much longer the job may wait for on-prem capacity and still start within its max_wait if it bursts
    then (the slowest start-up of the other tiers it allows counts against it); inf: it has no max_wait."""
    if job.max_wait_hours is None:
        return math.inf
    burst_startup = max((policy.startup_minutes.get(t, 0.0) for t in job.tiers if t is not Tier.ONPREM), default=0.0)
    return job.max_wait_hours - job.waited_hours - burst_startup / 60.0


def must_start(job: Job, policy: Policy) -> bool:
    """A job whose max_wait is a deadline (its priority is in `strict_max_wait`) with no time left to wait: if it
    does not start now, bursting later starts it past its max_wait."""
    return (job.max_wait_hours is not None and job.priority in policy.strict_max_wait
            and allowed_wait_hours(job, policy) <= 1e-9)


def deadline_queue_cost(job: Job, most_per_hour: float, most_startup: float, hours: float, policy: Policy) -> float:
    """Leaving a job that must start now queued: the dearest hourly objective and the slowest start-up of its
    options, plus `expected_wait_hours` of overdue delay, so that any capacity it may use (caps and budgets
    allowing) beats waiting. (The sum of the two maxima, not the dearest option: it stays affine in the
    latency weight, as every other objective term is.)"""
    overdue = delay_rate(job, policy) * policy.overdue_multiplier * policy.expected_wait_hours
    return most_per_hour * hours + most_startup + overdue


def waits_for(tier: Tier) -> bool:
    """Capacity a queued job waits for: owned tiers, whose price does not surge."""
    return tier in (Tier.ONPREM, Tier.PRIVATE)
