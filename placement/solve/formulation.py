"""The placement model over job classes and offer groups.

Variables: x[c, o] = how many jobs of class c go to option o (an offer group
with a demand alternative), integer in [0, |c|]. Each variable's cost is the
option's objective minus the class's queue cost, and the objective's offset,
the sum of queue costs, is what the plan would cost if nothing were placed:
every placement must earn its keep against waiting.

Rows (all `<=`):
- each class places at most its size;
- each on-prem node group: GPUs, CPUs and memory of the placed jobs within the
  group's total, at most one job per node that takes more than half a node in
  a dimension, and whole GPUs plus more-than-half fractions within the GPUs
  (valid cuts that keep the aggregate close to bin packing);
- private pool GPU quotas, team GPU quotas per tier, and surge caps on the
  spend rate of private and public work (running work already counted).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from placement.model import Tier
from placement.solve.candidates import JobClass, SignatureOption
from placement.solve.ledger import GLOBAL, CapacityLedger, share_class
from placement.solve.milp import LinearProgram


@dataclass(frozen=True, slots=True)
class Formulation:
    program: LinearProgram
    variables: list[tuple[JobClass, SignatureOption]]


def formulate(classes: list[JobClass], ledger: CapacityLedger, *, packable: bool = True) -> Formulation:
    """Build the model; `ledger` supplies free nodes and what is left of quotas and caps after running work.

    `packable` counts a fractional GPU request as the share of a GPU it really
    occupies when copies of it are packed (0.47 -> 1/2, 0.32 -> 1/3, 0.65 -> 1),
    so the packer can realise what the model decides. The lower bound turns it
    off to stay a relaxation.
    """
    lp = LinearProgram()
    variables: list[tuple[JobClass, SignatureOption]] = []
    group_rows: dict[int, list[tuple[int, SignatureOption, int]]] = defaultdict(list)
    pool_rows: dict[str, list[tuple[int, float]]] = defaultdict(list)
    quota_rows: dict[tuple[str, Tier], list[tuple[int, float]]] = defaultdict(list)
    cap_rows: dict[str, list[tuple[int, float]]] = defaultdict(list)

    for cls in classes:
        row = []
        for option, objective in cls.options:
            var = lp.add_var(objective - cls.queue_cost, cls.size)
            variables.append((cls, option))
            row.append(var)
            offer = option.group.offer
            if option.group.node_count is not None:
                group_rows[option.group.index].append((var, option, cls.rep.num_nodes))
            if offer.pool is not None and offer.pool in ledger.pool_left:
                pool_rows[offer.pool].append((var, option.gpus))
            if (cls.rep.team, offer.tier) in ledger.quota_left:
                quota_rows[(cls.rep.team, offer.tier)].append((var, option.gpus))
            if offer.tier is not Tier.ONPREM:
                for scope in (GLOBAL, cls.rep.team):
                    if scope in ledger.cap_left:
                        cap_rows[scope].append((var, option.rate))
        lp.add_row(row, [1.0] * len(row), cls.size)

    for group_index, entries in group_rows.items():
        nodes = ledger.open_nodes[group_index]
        offer = entries[0][1].group.offer
        capacity = {"gpu": offer.gpu_count, "cpu": offer.vcpus, "mem": offer.memory_gb}
        for dim, per_node in capacity.items():
            usage = [(var, nodes_per_job * _demand(option, dim, packable)) for var, option, nodes_per_job in entries]
            usage = [(v, u) for v, u in usage if u > 0]
            lp.add_row([v for v, _ in usage], [u for _, u in usage], per_node * len(nodes))
            big = [(var, float(nodes_per_job)) for var, option, nodes_per_job in entries
                   if _demand(option, dim, False) > per_node / 2]
            if big:
                lp.add_row([v for v, _ in big], [c for _, c in big], float(len(nodes)))
            if dim != "gpu":
                _add_stranding_row(lp, entries, dim, per_node, offer.gpu_count, len(nodes))
        # A GPU holding more than half of itself for one job has no room for another such job or a whole
        # request: count those as whole GPUs in a second GPU row.
        slots = [(var, nodes_per_job * _gpu_slots(option)) for var, option, nodes_per_job in entries]
        if any(0.5 < option.demand.accelerator_count < 1 for _, option, _ in entries):
            lp.add_row([v for v, s in slots if s > 0], [s for _, s in slots if s > 0], offer.gpu_count * len(nodes))
    for pool, entries in pool_rows.items():
        lp.add_row([v for v, _ in entries], [g for _, g in entries], max(ledger.pool_left[pool], 0.0))
    for key, entries in quota_rows.items():
        lp.add_row([v for v, _ in entries], [g for _, g in entries], max(ledger.quota_room(key), 0.0))
    for scope, entries in cap_rows.items():
        lp.add_row([v for v, _ in entries], [r for _, r in entries], max(ledger.cap_left[scope], 0.0))

    lp.offset = sum(cls.queue_cost * cls.size for cls in classes)
    return Formulation(lp, variables)


def _gpu_slots(option: SignatureOption) -> float:
    count = option.demand.accelerator_count
    return 1.0 if 0.5 < count < 1 else (count if count >= 1 else 0.0)


def _demand(option: SignatureOption, dim: str, packable: bool) -> float:
    demand = option.demand
    if dim == "gpu":
        count = demand.accelerator_count
        return 1.0 / share_class(count) if packable and 0 < count < 1 else count
    return demand.cpus if dim == "cpu" else demand.memory_gb


def _add_stranding_row(lp: LinearProgram, entries: list[tuple[int, SignatureOption, int]], dim: str,
                       per_node: float, gpus_per_node: float, nodes: int) -> None:
    """A job holding every GPU of its nodes leaves their CPUs and memory to GPU-less work only.

    So the other GPU jobs fit in `dim` only on the nodes no such job holds:
    their `dim` + per_node x (nodes held by GPU-filling jobs) <= per_node x
    nodes. Valid for every integer plan, so the lower bound keeps it too.
    Without it the model counts the memory beside 8-GPU jobs as room for
    memory-heavy fractional work, and the packer cannot realise that.
    """
    if gpus_per_node <= 0:
        return
    filling = [(var, per_node * n) for var, option, n in entries
               if option.demand.accelerator_count >= gpus_per_node - 1e-9]
    others = [(var, n * _demand(option, dim, False)) for var, option, n in entries
              if 0 < option.demand.accelerator_count < gpus_per_node - 1e-9 and _demand(option, dim, False) > 0]
    if filling and others:
        row = filling + others
        lp.add_row([v for v, _ in row], [c for _, c in row], per_node * nodes)
