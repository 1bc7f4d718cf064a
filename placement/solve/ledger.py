"""What is left during one round: free GPUs per node, pool quotas, team quotas and surge-cap headroom.

The packer and the greedy both place jobs through `CapacityLedger.try_place`,
so every plan, however it was found, obeys the same limits. Node packing is
per GPU: a fractional request (Ray's `num_gpus=0.5`) must fit inside one GPU,
a whole request takes whole free GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from placement.model import Demand, Job, Offer, Placement, Reason, ReasonCode, Snapshot, Tier
from placement.solve.borrowing import quota_blocker, room
from placement.solve.candidates import Group, SignatureOption
from policies.model import Policy

GLOBAL = "global"
CANDIDATE_NODES = 16  # fitting nodes compared per placement: enough to balance, few enough to stay fast
BALANCE_GPU_FIT = 0.2  # weight of GPU best fit against balance: 0 to 0.5 measured alike (placement_scale.py, 8 seeds)
_EPS = 1e-9


class Chosen(NamedTuple):
    """Where the round put a job: the option, the concrete offers (nodes) and the job's objective there."""

    objective: float
    option: SignatureOption
    offers: list[Offer]


def share_class(count: float) -> int:
    """How many copies of a fractional GPU request fit on one GPU (0.47 -> 2, 0.32 -> 3)."""
    return int(math.floor(1.0 / count + _EPS))


@dataclass(slots=True)
class NodeState:
    """Free capacity of one node, GPU by GPU.

    Fractional requests are packed harmonically where they can be: a request
    goes first to a GPU already holding its share class (1/2, 1/3, ...), which
    is how the model counts them, then to a free GPU, and only then into the
    leftover room of a GPU of another class.
    """

    offer: Offer
    gpus: list[float]  # free share of each GPU
    classes: list[int]  # share class of the fractional work on each GPU, 0 for none
    cpus: float
    memory_gb: float
    whole: int = 0  # GPUs entirely free
    most_free: float = 0.0  # the largest free share of any one GPU
    free_gpus: float = 0.0  # the free shares of all GPUs together

    @classmethod
    def of(cls, offer: Offer) -> NodeState:
        whole = int(offer.gpu_count)
        gpus = [1.0] * whole + ([offer.gpu_count - whole] if offer.gpu_count > whole else [])
        return cls(offer, gpus, [0] * len(gpus), offer.vcpus, offer.memory_gb, whole, max(gpus, default=0.0),
                   sum(gpus))

    def _fraction_slot(self, count: float) -> int | None:
        """The GPU for a fractional request: one holding its share class, else a free one, else any with room."""
        k = share_class(count)
        room = [i for i, free in enumerate(self.gpus) if free >= count - _EPS]
        for preferred in ([i for i in room if self.classes[i] == k], [i for i in room if self.classes[i] == 0],
                          room):
            if preferred:
                return min(preferred, key=lambda i: self.gpus[i])
        return None

    def fits(self, demand: Demand) -> bool:
        if self.cpus < demand.cpus - _EPS or self.memory_gb < demand.memory_gb - _EPS:
            return False
        count = demand.accelerator_count
        if count <= 0:
            return True
        if count < 1:
            return self.most_free >= count - _EPS
        return self.whole >= round(count)

    def take(self, demand: Demand) -> None:
        count = demand.accelerator_count
        if count >= 1:
            need = int(round(count))
            for i, free in enumerate(self.gpus):
                if need and free >= 1 - _EPS:
                    self.gpus[i] = 0.0
                    need -= 1
        elif count > 0:
            i = self._fraction_slot(count)
            assert i is not None
            self.gpus[i] -= count
            self.classes[i] = self.classes[i] or share_class(count)
        self.cpus -= demand.cpus
        self.memory_gb -= demand.memory_gb
        self.whole = sum(1 for free in self.gpus if free >= 1 - _EPS)
        self.most_free = max(self.gpus, default=0.0)
        self.free_gpus = sum(self.gpus)

    def state(self) -> tuple:
        """What `restore` needs to undo later changes."""
        return (list(self.gpus), list(self.classes), self.cpus, self.memory_gb, self.whole, self.most_free,
                self.free_gpus)

    def restore(self, state: tuple) -> None:
        gpus, classes, self.cpus, self.memory_gb, self.whole, self.most_free, self.free_gpus = state
        self.gpus, self.classes = list(gpus), list(classes)

    def empty(self) -> None:
        """Back to the node's free capacity at the start of the round."""
        self.restore(NodeState.of(self.offer).state())

    @property
    def exhausted(self) -> bool:
        """Nothing left for any job, even one that asks for no CPUs or no GPUs."""
        return self.cpus < _EPS and self.memory_gb < _EPS and self.most_free < _EPS


class CapacityLedger:
    def __init__(self, snapshot: Snapshot, groups: list[Group], policy: Policy):
        # (group, demand, nodes) that found no room: capacity only shrinks within a round, except when a
        # repack gives some back, which clears this.
        self._balanced = False  # see balanced()
        self._no_room: set[int] = set()  # id() of options, each one (group, demand, nodes) of a signature
        self.nodes: dict[int, list[NodeState]] = {
            g.index: [NodeState.of(m) for m in g.members] for g in groups if g.node_count is not None}
        self.open_nodes: dict[int, list[NodeState]] = {}
        self.gpu_nodes: dict[int, list[NodeState]] = {}
        for index in self.nodes:
            self.refresh(index)
        self.held: dict[str, list[NodeState]] = {}  # job id -> the nodes it was placed on this round
        self.policy = policy
        self.pool_left: dict[str, float] = dict(snapshot.pool_quotas)
        # (team, tier) -> GPUs of its quota left; below zero while it borrows other teams' idle quota (borrowing)
        self.quota_left: dict[tuple[str, Tier], float] = {}
        for team, quota in policy.quotas.items():
            for tier in Tier:
                limit = quota.limit(tier)
                if limit is not None:
                    self.quota_left[(team, tier)] = limit
        self.cap_left: dict[str, float] = {}
        for scope, cap in [(GLOBAL, policy.caps.global_), *policy.caps.teams.items()]:
            if cap is not None and cap.usd_per_hour is not None:  # budgets alone set no rate row
                self.cap_left[scope] = cap.usd_per_hour
        for run in snapshot.running:
            self._charge(run.team, run.tier, run.pool, run.gpus, run.rate_per_hour)

    def refresh(self, group_index: int) -> None:
        """Recompute a group's lists of nodes with room, after capacity came back (a repack)."""
        nodes = self.nodes[group_index]
        self.open_nodes[group_index] = [n for n in nodes if not n.exhausted]
        self.gpu_nodes[group_index] = [n for n in nodes if n.most_free >= _EPS]
        self._no_room.clear()

    def _charge(self, team: str, tier: Tier, pool: str | None, gpus: float, rate: float) -> None:
        if pool is not None and pool in self.pool_left:
            self.pool_left[pool] -= gpus
        if (team, tier) in self.quota_left:
            self.quota_left[(team, tier)] -= gpus
        if tier is not Tier.ONPREM:
            for scope in (GLOBAL, team):
                if scope in self.cap_left:
                    self.cap_left[scope] -= rate

    def quota_room(self, key: tuple[str, Tier]) -> float:
        """GPUs a team may still take in a tier: its quota left and what it may borrow now (borrowing)."""
        return room(self.quota_left, self.policy, *key)

    def blocker(self, job: Job, option: SignatureOption) -> Reason | None:
        """Why `option` cannot take `job` now, or None if it can."""
        reason = self.limit_blocker(job, option)
        if reason is None and option.group.node_count is not None and self._nodes_for(job, option) is None:
            reason = self._no_room_reason(job, option)
        return reason

    def limit_blocker(self, job: Job, option: SignatureOption) -> Reason | None:
        """The quota or cap that `option` would break for `job`, if any."""
        offer = option.group.offer
        tier = offer.tier
        if (option.gpus > _EPS and offer.pool is not None and offer.pool in self.pool_left
                and self.pool_left[offer.pool] < option.gpus - _EPS):
            return Reason(ReasonCode.OVER_QUOTA,
                          f"private pool {offer.pool} has {max(self.pool_left[offer.pool], 0):g} of its GPU quota left, "
                          f"the job needs {option.gpus:g}", scope=offer.pool)
        if option.gpus > _EPS and (job.team, tier) in self.quota_left:
            reason = quota_blocker(self.quota_left, self.policy, job.team, tier, option.gpus)
            if reason is not None:
                return reason
        if tier is not Tier.ONPREM:
            for scope in (GLOBAL, job.team):
                headroom = self.cap_left.get(scope)
                if headroom is not None and option.rate > _EPS and headroom < option.rate - _EPS:
                    return Reason(ReasonCode.OVER_SURGE_CAP,
                                  f"{'global' if scope == GLOBAL else 'team ' + scope} spend cap has "
                                  f"${max(headroom, 0):.2f}/h left, {offer.name} costs ${option.rate:.2f}/h",
                                  scope=scope)
        return None

    @staticmethod
    def _no_room_reason(job: Job, option: SignatureOption) -> Reason:
        demand = option.demand
        return Reason(ReasonCode.WAITING_FOR_CAPACITY,
                      f"no node like {option.group.offer.name} has room for {job.num_nodes} x "
                      f"({demand.accelerator_count:g} {demand.accelerator or 'GPU'}, {demand.cpus:g} CPUs, "
                      f"{demand.memory_gb:g} GB)", scope=option.group.offer.gpu)

    def _nodes_for(self, job: Job, option: SignatureOption) -> list[NodeState] | None:
        """The nodes a job takes: among the first few that fit, those it suits best.

        By default that is best fit, by the distance between the demand and the
        node's free capacity (both as shares of the node): it keeps empty nodes
        empty for large jobs that may come later and pairs GPU-heavy with
        CPU-heavy work. While `balanced()` is on, a GPU request instead goes
        where the node's free CPUs and memory stay in proportion to its free
        GPUs (with a little GPU best fit to break ties), like Kubernetes'
        BalancedResourceAllocation. Comparing only the first CANDIDATE_NODES
        fitting nodes bounds the cost; the results barely change with more
        (measured with benchmarks/placement_scale.py).
        """
        key = id(option)
        if key in self._no_room:
            return None
        demand = option.demand
        pool = self.gpu_nodes if demand.accelerator_count > 0 else self.open_nodes
        fitting: list[NodeState] = []
        for node in pool[option.group.index]:
            if node.fits(demand):
                fitting.append(node)
                if len(fitting) >= CANDIDATE_NODES + job.num_nodes:
                    break
        if len(fitting) < job.num_nodes:
            self._no_room.add(key)
            return None
        if len(fitting) == 1:
            return fitting
        offer = option.group.offer
        per_gpu = 1.0 / offer.gpu_count if offer.gpu_count else 0.0
        per_cpu = 1.0 / offer.vcpus if offer.vcpus else 0.0
        per_gb = 1.0 / offer.memory_gb if offer.memory_gb else 0.0
        need_gpu, need_cpu, need_gb = (demand.accelerator_count * per_gpu, demand.cpus * per_cpu,
                                       demand.memory_gb * per_gb)
        balance = self._balanced and need_gpu > 0

        def residual(node: NodeState) -> float:
            gpu = node.free_gpus * per_gpu - need_gpu
            cpu = node.cpus * per_cpu - need_cpu
            gb = node.memory_gb * per_gb - need_gb
            if balance:
                return (gpu - cpu) ** 2 + (gpu - gb) ** 2 + BALANCE_GPU_FIT * gpu ** 2
            return gpu ** 2 + cpu ** 2 + gb ** 2

        if job.num_nodes == 1:
            return [min(fitting, key=residual)]
        return sorted(fitting, key=residual)[:job.num_nodes]

    @contextmanager
    def balanced(self) -> Iterator[None]:
        """Place GPU work by balance instead of best fit while the block runs (see `_nodes_for`).

        For realising the model's counts: they fit the group in aggregate and
        come most valuable first, so spreading them keeps CPUs and memory next
        to every free GPU. Best fit there strands GPUs on nodes whose memory is
        full (2,000 jobs, seeds 7-11, before any repack: 3.6% above the LP
        bound with best fit, 2.2% balanced). The greedy does not know what
        comes next, and balancing it measured worse: it breaks up the empty
        nodes that later multi-GPU jobs need.
        """
        self._balanced = True
        try:
            yield
        finally:
            self._balanced = False

    def try_place(self, job: Job, option: SignatureOption) -> list[Offer] | None:
        """Place `job` on `option` if every limit allows; returns the concrete offers used, or None.

        `blocker` says why not; this path stays cheap because packers call it
        for every option they try.
        """
        if self.limit_blocker(job, option) is not None:
            return None
        if option.group.node_count is None:
            used = [option.group.member_for(option.demand)]
        else:
            nodes = self._nodes_for(job, option)
            if nodes is None:
                return None
            for node in nodes:
                node.take(option.demand)
            self.held[job.id] = nodes
            index = option.group.index
            if any(n.exhausted for n in nodes):
                self.open_nodes[index] = [n for n in self.open_nodes[index] if not n.exhausted]
            if any(n.most_free < _EPS for n in nodes):
                self.gpu_nodes[index] = [n for n in self.gpu_nodes[index] if n.most_free >= _EPS]
            used = [n.offer for n in nodes]
        self.charge(job, option)
        return used

    def charge(self, job: Job, option: SignatureOption, sign: float = 1.0) -> None:
        """Count `job` on `option` against quotas and caps (`sign=-1` gives it back)."""
        offer = option.group.offer
        self._charge(job.team, offer.tier, offer.pool, sign * option.gpus, sign * option.rate)


def placement_of(job: Job, chosen: Chosen) -> Placement:
    """The plan's record of a job put where `chosen` says."""
    option, offers = chosen.option, chosen.offers
    offer = offers[0]
    on_nodes = offer.tier is Tier.ONPREM
    target = ",".join(o.name for o in offers) if on_nodes else (
        f"{offer.pool}/{offer.gpu}" if offer.tier is Tier.PRIVATE else offer.name)
    return Placement(
        job_id=job.id, offer_id=offer.id, tier=offer.tier, provider=offer.provider, target=target,
        gpu=option.demand.accelerator, gpus_per_node=option.demand.accelerator_count, num_nodes=job.num_nodes,
        spot=offer.spot, rate_per_hour=option.rate, expected_cost=option.rate * job.expected_hours,
        objective=chosen.objective,
        nodes=tuple(o.name for o in offers) if on_nodes else (), region=offer.region,
        cpus_per_node=option.demand.cpus, memory_gb_per_node=option.demand.memory_gb)
