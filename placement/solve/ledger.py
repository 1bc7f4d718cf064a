"""What is left during one round: free GPUs per node, pool quotas, team quotas and surge-cap headroom.

The packer and the greedy both place jobs through `CapacityLedger.try_place`,
so every plan, however it was found, obeys the same limits. Node packing is
per GPU: a fractional request (Ray's `num_gpus=0.5`) must fit inside one GPU,
a whole request takes whole free GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from placement.model import Demand, Job, Offer, Reason, ReasonCode, Snapshot, Tier
from placement.solve.candidates import Group, SignatureOption
from policies.model import Policy

GLOBAL = "global"
_EPS = 1e-9


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

    @classmethod
    def of(cls, offer: Offer) -> NodeState:
        whole = int(offer.gpu_count)
        gpus = [1.0] * whole + ([offer.gpu_count - whole] if offer.gpu_count > whole else [])
        return cls(offer, gpus, [0] * len(gpus), offer.vcpus, offer.memory_gb, whole)

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
            return self._fraction_slot(count) is not None
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

    @property
    def exhausted(self) -> bool:
        """Nothing left for any job, even one that asks for no CPUs or no GPUs."""
        return self.cpus < _EPS and self.memory_gb < _EPS and max(self.gpus, default=0.0) < _EPS


class CapacityLedger:
    def __init__(self, snapshot: Snapshot, groups: list[Group], policy: Policy):
        self.open_nodes: dict[int, list[NodeState]] = {
            g.index: [NodeState.of(m) for m in g.members] for g in groups if g.node_count is not None}
        # (group, demand, nodes) that found no room: capacity only shrinks within a round, so it never will.
        self._no_room: set[tuple[int, Demand, int]] = set()
        self.pool_left: dict[str, float] = dict(snapshot.pool_quotas)
        self.quota_left: dict[tuple[str, Tier], float] = {}
        for team, quota in policy.quotas.items():
            for tier in Tier:
                limit = quota.limit(tier)
                if limit is not None:
                    self.quota_left[(team, tier)] = limit
        self.cap_left: dict[str, float] = {}
        if policy.caps.global_ is not None:
            self.cap_left[GLOBAL] = policy.caps.global_.usd_per_hour
        for team, cap in policy.caps.teams.items():
            self.cap_left[team] = cap.usd_per_hour
        for run in snapshot.running:
            self._charge(run.team, run.tier, run.pool, run.gpus, run.rate_per_hour)

    def _charge(self, team: str, tier: Tier, pool: str | None, gpus: float, rate: float) -> None:
        if pool is not None and pool in self.pool_left:
            self.pool_left[pool] -= gpus
        if (team, tier) in self.quota_left:
            self.quota_left[(team, tier)] -= gpus
        if tier is not Tier.ONPREM:
            for scope in (GLOBAL, team):
                if scope in self.cap_left:
                    self.cap_left[scope] -= rate

    def blocker(self, job: Job, option: SignatureOption) -> Reason | None:
        """Why `option` cannot take `job` now, or None if it can."""
        offer = option.group.offer
        tier = offer.tier
        if (option.gpus > _EPS and offer.pool is not None and offer.pool in self.pool_left
                and self.pool_left[offer.pool] < option.gpus - _EPS):
            return Reason(ReasonCode.OVER_QUOTA,
                          f"private pool {offer.pool} has {max(self.pool_left[offer.pool], 0):g} of its GPU quota left, "
                          f"the job needs {option.gpus:g}", scope=offer.pool)
        left = self.quota_left.get((job.team, tier))
        if left is not None and option.gpus > _EPS and left < option.gpus - _EPS:
            return Reason(ReasonCode.OVER_QUOTA,
                          f"team {job.team} has {max(left, 0):g} {tier.value} GPUs of quota left, the job needs "
                          f"{option.gpus:g}", scope=job.team)
        if tier is not Tier.ONPREM:
            for scope in (GLOBAL, job.team):
                headroom = self.cap_left.get(scope)
                if headroom is not None and option.rate > _EPS and headroom < option.rate - _EPS:
                    return Reason(ReasonCode.OVER_SURGE_CAP,
                                  f"{'global' if scope == GLOBAL else 'team ' + scope} spend cap has "
                                  f"${max(headroom, 0):.2f}/h left, {offer.name} costs ${option.rate:.2f}/h",
                                  scope=scope)
        if option.group.node_count is not None and self._nodes_for(job, option) is None:
            return Reason(ReasonCode.WAITING_FOR_CAPACITY,
                          f"no node like {offer.name} has room for {job.num_nodes} x "
                          f"({option.demand.accelerator_count:g} {option.demand.accelerator or 'GPU'}, "
                          f"{option.demand.cpus:g} CPUs, {option.demand.memory_gb:g} GB)",
                          scope=offer.gpu)
        return None

    def _nodes_for(self, job: Job, option: SignatureOption) -> list[NodeState] | None:
        key = (option.group.index, option.demand, job.num_nodes)
        if key in self._no_room:
            return None
        chosen: list[NodeState] = []
        for node in self.open_nodes[option.group.index]:
            if node.fits(option.demand):
                chosen.append(node)
                if len(chosen) == job.num_nodes:
                    return chosen
        self._no_room.add(key)
        return None

    def try_place(self, job: Job, option: SignatureOption) -> tuple[Reason | None, list[Offer]]:
        """Place `job` on `option` if every limit allows; returns (blocker, concrete offers used)."""
        reason = self.blocker(job, option)
        if reason is not None:
            return reason, []
        if option.group.node_count is None:
            used = [option.group.member_for(option.demand)]
        else:
            nodes = self._nodes_for(job, option)
            assert nodes is not None
            for node in nodes:
                node.take(option.demand)
            group_nodes = self.open_nodes[option.group.index]
            if any(n.exhausted for n in nodes):
                self.open_nodes[option.group.index] = [n for n in group_nodes if not n.exhausted]
            used = [n.offer for n in nodes]
        offer = option.group.offer
        self._charge(job.team, offer.tier, offer.pool, option.gpus, option.rate)
        return None, used
