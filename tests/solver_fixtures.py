"""Shared builders and checks for the placement-core tests (test_solver.py, test_solver_properties.py).

Builders give every field a readable default so a test names only what it is
about: `onprem("n1", price=16)`, `public("p4d", price=32, spot=True)`,
`job("a", gpus=8, priority="high")`. Prices are for the whole machine.

`check_plan` re-derives, from the snapshot and the policy alone (never from the
solver's own ledger), that a plan respects every limit: node capacity (per GPU
for fractional requests), pool quotas, team quotas per tier, surge caps with
running work, budgets, residency, tiers, spot settings, and that each job is
placed at most once or queued with a reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import yaml

from clouds.gpus import gpu_sellers
from placement.model import Demand, Job, Offer, Placement, Plan, Running, Sharing, Snapshot, Tier
from policies.model import Policy

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "policies" / "builtin"
EPS = 1e-6

A100 = "A100"
H100 = "H100"

# Start-up minutes and priority rates ($ per GPU-hour of delay) of the policies built by `make_policy`,
# spelled out here so tests derive their expected costs from these numbers, not from the solver.
STARTUP_MIN = {Tier.ONPREM: 1.0, Tier.PRIVATE: 3.0, Tier.PUBLIC: 8.0}
PRIORITY_RATE = {"low": 0.5, "normal": 2.0, "high": 10.0, "critical": 100.0}


# ---------------------------------------------------------------------------------------------- policies

def make_policy(name: str = "test", **fields) -> Policy:
    """A policy with the documented defaults (balanced's numbers) and `fields` overriding them.

    `solver=` is merged into the solver settings, so `make_policy(solver={"aggregate": False})` keeps HiGHS.
    """
    data: dict = {"name": name}
    solver = fields.pop("solver", None)
    data.update(fields)
    if solver is not None:
        data["solver"] = solver
    return Policy.model_validate(data)


def builtin_data(name: str) -> dict:
    """The raw dict of a builtin policy file (policies/builtin/<name>.yaml)."""
    return yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text())


def builtin_policy(name: str, **solver) -> Policy:
    """A builtin policy, with solver settings optionally overridden (e.g. aggregate=False, mip_rel_gap=0)."""
    data = builtin_data(name)
    if solver:
        data["solver"] = {**data.get("solver", {}), **solver}
    return Policy.model_validate(data)


def revise(policy: Policy, **fields) -> Policy:
    """`policy` with some fields replaced, validated again (`revise(p, caps={"global": {"usd_per_hour": 50}})`).

    `solver=` is merged into the existing solver settings.
    """
    data = policy.model_dump(mode="json", by_alias=True)
    if "solver" in fields:
        fields["solver"] = {**data["solver"], **fields["solver"]}
    return Policy.model_validate({**data, **fields})


def exact(policy: Policy, time_limit_s: float = 20.0) -> Policy:
    """The same policy solved per job (no aggregation) to a zero gap: the plan is the model's optimum."""
    return revise(policy, solver={"aggregate": False, "mip_rel_gap": 0.0, "time_limit_s": time_limit_s})


def with_backend(policy: Policy, backend: str) -> Policy:
    return revise(policy, solver={"backend": backend})


# ---------------------------------------------------------------------------------------------- offers

def onprem(name: str, *, gpu: str | None = A100, gpus: float = 8, price: float = 16.0, vcpus: float = 96,
           memory_gb: float = 1024, gpu_memory_gb: float = 80, capacity: int = 1, **kw) -> Offer:
    """One on-prem node (shared: jobs pay their GPU share of `price`)."""
    return Offer(id=f"onprem/{name}", tier=Tier.ONPREM, provider="onprem", name=name, sharing=Sharing.SHARED,
                 gpu=gpu, gpu_count=gpus, gpu_memory_gb=gpu_memory_gb if gpu else 0.0, vcpus=vcpus,
                 memory_gb=memory_gb, price_per_hour=price, capacity=capacity, **kw)


def private(pool: str = "pool-a", *, gpu: str = A100, gpus: float = 8, price: float = 20.0, vcpus: float = 96,
            memory_gb: float = 1024, gpu_memory_gb: float = 80, **kw) -> Offer:
    """A private pool's node shape: shared pricing, no node count, limited by the pool's GPU quota."""
    return Offer(id=f"private/{pool}/{gpu}", tier=Tier.PRIVATE, provider="private", name=pool,
                 sharing=Sharing.SHARED, gpu=gpu, gpu_count=gpus, gpu_memory_gb=gpu_memory_gb, vcpus=vcpus,
                 memory_gb=memory_gb, price_per_hour=price, capacity=None, pool=pool, cloud="kubernetes",
                 region=pool, **kw)


def public(name: str, *, gpu: str | None = A100, gpus: float = 8, price: float = 32.0, spot: bool = False,
           cloud: str = "aws", region: str = "us-east-1", vcpus: float = 96, memory_gb: float = 1152,
           gpu_memory_gb: float = 80, **kw) -> Offer:
    """A public instance type (dedicated: a job pays the whole instance per node), unbounded capacity."""
    market = "spot" if spot else "od"
    return Offer(id=f"{cloud}/{region}/{name}/{market}", tier=Tier.PUBLIC, provider=cloud, name=name,
                 sharing=Sharing.DEDICATED, gpu=gpu, gpu_count=gpus if gpu else 0,
                 gpu_memory_gb=gpu_memory_gb if gpu else 0.0, vcpus=vcpus, memory_gb=memory_gb,
                 price_per_hour=price, spot=spot, cloud=cloud, region=region, capacity=None, **kw)


# ---------------------------------------------------------------------------------------------- jobs

def job(id: str, *, gpus: float = 8, gpu: str | None = A100, priority: str = "high", team: str = "ml",
        hours: float = 1.0, cpus: float = 0.0, memory_gb: float = 0.0, use_spot: bool | None = None,
        demands: tuple[Demand, ...] | None = None, tiers=None, **kw) -> Job:
    """A pending job with one demand (`gpus` x `gpu` per node) unless `demands` is given."""
    if demands is None:
        demands = (Demand(accelerator=gpu, accelerator_count=gpus if gpu else 0, cpus=cpus, memory_gb=memory_gb,
                          use_spot=use_spot, sellers=gpu_sellers(gpu) if gpu else ()),)
    if tiers is not None:
        kw["tiers"] = frozenset(tiers)
    return Job(id=id, name=id, team=team, priority=priority, demands=demands, expected_hours=hours, **kw)


def cpu_job(id: str, *, cpus: float, memory_gb: float = 0.0, **kw) -> Job:
    return job(id, gpu=None, gpus=0, cpus=cpus, memory_gb=memory_gb, **kw)


def running(job_id: str, *, tier: Tier, rate: float, gpus: float = 8, team: str = "ml", offer_id: str = "x",
            pool: str | None = None) -> Running:
    return Running(job_id=job_id, team=team, tier=tier, offer_id=offer_id, gpus=gpus, rate_per_hour=rate, pool=pool)


def snapshot(jobs, offers, *, running=(), pool_quotas: dict[str, float] | None = None,
             blocked=()) -> Snapshot:
    return Snapshot(jobs=tuple(jobs), offers=tuple(offers), running=tuple(running),
                    pool_quotas=tuple((pool_quotas or {}).items()), blocked_offers=frozenset(blocked))


# ---------------------------------------------------------------------------------------------- hand formulas

def startup_usd(priority_rate: float, gpus: float, tier: Tier, latency: float = 1.0) -> float:
    """Start-up delay in $: priority $/GPU-h x latency weight x GPUs x start-up minutes / 60."""
    return latency * priority_rate * gpus * STARTUP_MIN[tier] / 60.0


# ---------------------------------------------------------------------------------------------- plan views

def placed_ids(plan: Plan) -> set[str]:
    return {p.job_id for p in plan.placements}


def queued_ids(plan: Plan) -> set[str]:
    return {j for j, _ in plan.queued}


def tiers_of(plan: Plan) -> dict[str, Tier]:
    return {p.job_id: p.tier for p in plan.placements}


def plan_key(plan: Plan) -> tuple:
    """Everything of a plan but its timings, for comparing two plans."""
    return (plan.placements, plan.queued, round(plan.stats.objective, 9), plan.queue_costs)


# ---------------------------------------------------------------------------------------------- independent checks

def _demand_of(job_: Job, p: Placement) -> Demand:
    matching = [d for d in job_.demands if d.accelerator == p.gpu and math.isclose(d.accelerator_count,
                                                                                   p.gpus_per_node)]
    assert matching, f"{p.job_id}: placement {p.gpu}:{p.gpus_per_node} matches none of its demands"
    return matching[0]


def expected_rate(offer: Offer, demand: Demand, num_nodes: int) -> float:
    """$ per hour of a whole job, derived from the pricing rules, not from Offer.job_price_per_hour."""
    if offer.sharing is Sharing.DEDICATED:
        return offer.price_per_hour * num_nodes
    gpus, vcpus, memory_gb = offer.whole or (offer.gpu_count, offer.vcpus, offer.memory_gb)  # the whole machine
    if gpus > 0 and demand.accelerator_count > 0:
        share = demand.accelerator_count / gpus
    else:
        share = min(1.0, max(demand.cpus / vcpus if vcpus else 0.0, demand.memory_gb / memory_gb if memory_gb else 0.0))
    return offer.price_per_hour * share * num_nodes


def check_plan(snap: Snapshot, policy: Policy, plan: Plan) -> None:
    """Assert that `plan` obeys every limit of `snap` and `policy` (see the module docstring)."""
    jobs = {j.id: j for j in snap.jobs}
    offers = {o.id: o for o in snap.offers}
    onprem_by_name = {o.name: o for o in snap.offers if o.tier is Tier.ONPREM}

    # Each job exactly once: placed once, or queued once with a reason.
    placed = [p.job_id for p in plan.placements]
    queued = [j for j, _ in plan.queued]
    assert len(placed) == len(set(placed)), f"a job is placed twice: {placed}"
    assert len(queued) == len(set(queued)), f"a job is queued twice: {queued}"
    assert not set(placed) & set(queued), f"placed and queued: {set(placed) & set(queued)}"
    assert set(placed) | set(queued) == set(jobs), "every job is either placed or queued"
    for job_id, reason in plan.queued:
        assert reason.message.strip(), f"{job_id} has an empty reason"
        assert reason.code.value, f"{job_id} has no reason code"

    node_gpus_whole: dict[str, float] = defaultdict(float)
    node_gpus_frac: dict[str, float] = defaultdict(float)
    node_cpus: dict[str, float] = defaultdict(float)
    node_mem: dict[str, float] = defaultdict(float)
    pool_used: dict[str, float] = defaultdict(float)
    quota_used: dict[tuple[str, Tier], float] = defaultdict(float)
    spend: dict[str, float] = defaultdict(float)  # cap scope -> new private + public spend rate

    for p in plan.placements:
        j = jobs[p.job_id]
        offer = offers[p.offer_id]
        demand = _demand_of(j, p)
        assert offer.id not in snap.blocked_offers, f"{j.id} placed on blocked offer {offer.id}"
        assert p.tier is offer.tier and p.spot == offer.spot and p.num_nodes == j.num_nodes
        assert offer.tier in j.tiers, f"{j.id} placed on tier {offer.tier} outside {set(j.tiers)}"
        if j.onprem_only:
            assert offer.tier is Tier.ONPREM, f"{j.id} must stay on-prem, placed on {offer.tier}"
        # Spot: only when allowed by the policy and the job; use_spot pins the market.
        if offer.spot:
            assert policy.spot.allowed and demand.use_spot is not False and (j.spot_ok or demand.use_spot)
        else:
            assert not demand.use_spot, f"{j.id} asked for spot only, got on-demand"
        # Shape.
        if demand.accelerator is not None:
            assert offer.gpu == demand.accelerator
            if j.gpu_memory_gb is not None:
                assert offer.gpu_memory_gb >= j.gpu_memory_gb - EPS
            if offer.sharing is Sharing.DEDICATED:
                assert offer.gpu_count == demand.accelerator_count
        elif offer.sharing is Sharing.DEDICATED:
            assert offer.gpu is None, f"CPU job {j.id} rented a GPU instance"
        assert offer.vcpus >= demand.cpus - EPS and offer.memory_gb >= demand.memory_gb - EPS
        # Pins, on every machine the job runs on.
        machines = [onprem_by_name[n] for n in p.nodes] if offer.tier is Tier.ONPREM else [offer]
        for machine in machines:
            for pin in ("cloud", "region", "zone"):
                wanted = getattr(demand, pin)
                assert wanted is None or getattr(machine, pin) == wanted, \
                    f"{j.id} pinned to {pin} {wanted}, placed on {machine.name} in {getattr(machine, pin)}"
            assert demand.instance_type is None or machine.name == demand.instance_type
        # Price and budget.
        rate = expected_rate(offer, demand, j.num_nodes)
        assert math.isclose(p.rate_per_hour, rate, rel_tol=1e-9, abs_tol=1e-9), (j.id, p.rate_per_hour, rate)
        assert math.isclose(p.expected_cost, rate * j.expected_hours, rel_tol=1e-9, abs_tol=1e-9)
        if j.budget_usd is not None:
            assert rate * j.expected_hours <= j.budget_usd + EPS, f"{j.id} over its budget"
        # Capacity.
        gpus = demand.accelerator_count * j.num_nodes
        if offer.tier is Tier.ONPREM:
            assert len(p.nodes) == j.num_nodes and len(set(p.nodes)) == j.num_nodes, \
                f"{j.id} needs {j.num_nodes} distinct nodes, got {p.nodes}"
            for name in p.nodes:
                node = onprem_by_name[name]
                assert node.gpu == offer.gpu and node.gpu_count == offer.gpu_count
                if 0 < demand.accelerator_count < 1:
                    node_gpus_frac[name] += demand.accelerator_count
                else:
                    node_gpus_whole[name] += demand.accelerator_count
                node_cpus[name] += demand.cpus
                node_mem[name] += demand.memory_gb
        if offer.pool is not None:
            pool_used[offer.pool] += gpus
        quota_used[(j.team, offer.tier)] += gpus
        if offer.tier is not Tier.ONPREM:
            spend["global"] += rate
            spend[j.team] += rate

    for name in set(node_gpus_whole) | set(node_gpus_frac) | set(node_cpus):
        node = onprem_by_name[name]
        # Fractions in the generators divide one GPU (0.5, 0.25), so they pack into ceil(sum) whole GPUs.
        gpus_held = node_gpus_whole[name] + math.ceil(node_gpus_frac[name] - EPS)
        assert gpus_held <= node.gpu_count + EPS, f"node {name}: {gpus_held} GPUs of {node.gpu_count}"
        assert node_cpus[name] <= node.vcpus + EPS, f"node {name}: {node_cpus[name]} CPUs of {node.vcpus}"
        assert node_mem[name] <= node.memory_gb + EPS, f"node {name}: {node_mem[name]} GB of {node.memory_gb}"

    # Running work holds quota and spends against caps.
    pool_running: dict[str, float] = defaultdict(float)
    quota_running: dict[tuple[str, Tier], float] = defaultdict(float)
    spend_running: dict[str, float] = defaultdict(float)
    for run in snap.running:
        if run.pool is not None:
            pool_running[run.pool] += run.gpus
        quota_running[(run.team, run.tier)] += run.gpus
        if run.tier is not Tier.ONPREM:
            spend_running["global"] += run.rate_per_hour
            spend_running[run.team] += run.rate_per_hour

    for pool, quota in snap.pool_quotas:
        if pool_used[pool]:
            assert pool_used[pool] <= max(quota - pool_running[pool], 0.0) + EPS, f"pool {pool} over quota"
    for team, quota in policy.quotas.items():
        for tier in Tier:
            limit = quota.limit(tier)
            if limit is not None and quota_used[(team, tier)]:
                assert quota_used[(team, tier)] <= max(limit - quota_running[(team, tier)], 0.0) + EPS, \
                    f"team {team} over its {tier.value} quota"
    caps = dict(policy.caps.teams)
    if policy.caps.global_ is not None:
        caps["global"] = policy.caps.global_
    for scope, cap in caps.items():
        if spend[scope]:
            assert spend[scope] <= max(cap.usd_per_hour - spend_running[scope], 0.0) + EPS, \
                f"{scope} surge cap exceeded: new {spend[scope]} + running {spend_running[scope]} > {cap.usd_per_hour}"
