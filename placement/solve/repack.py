"""Repacking a few on-prem nodes at a time, exactly: a large-neighbourhood search after the packer.

The class model counts a node group's capacity in aggregate, so the packer can
leave free GPUs on nodes whose memory is full and free memory on nodes whose
GPUs are full; the jobs the model counted on then spill to the public cloud or
wait. Each step here takes a few nodes of one group, the single-node jobs on
them and the outside jobs that would be cheaper there (waiting ones, and ones
on public or private offers), and solves which of those jobs go on which of
those nodes as a small integer program: GPUs (fractions as they pack), CPUs,
memory and the teams' on-prem quotas per node. The repack is then applied
through the ledger (per-GPU packing, caps, quotas); it is kept only when the
plan's objective drops, otherwise everything it touched is put back. Steps
stop after the round's step count (work-limited rounds; each step's program
bounded by work too) or at its deadline (clock-limited rounds), or after enough
fruitless tries; the node choice is seeded, so the same input gives the same
plan.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from time import perf_counter
from typing import NamedTuple

from placement.model import Demand, Job, Offer, Tier
from placement.solve import milp
from placement.solve.candidates import SignatureOption
from placement.solve.ledger import CapacityLedger, Chosen, NodeState, share_class

# Tuned with benchmarks/placement_scale.py: larger steps find more per step, but not in the time they take.
NODES_PER_STEP = 4  # nodes repacked together: enough to trade jobs between them, few enough to solve in ms
OUTSIDERS_PER_STEP = 10  # outside jobs offered to a step: half those that gain most per share of a node, half drawn
TARGETS = 8  # each step aims at one of the outside jobs that gain most, drawn from this many
FRUITLESS_STEPS = 24  # consecutive steps without a gain, per group, before the group is left alone
STEP_TIME_S = 0.03  # clock-limited rounds: a step's program usually solves in 15 ms; a hard one keeps its best by then
STEP_GAP = 0.01
SMALLEST_SHARE = 0.05  # a CPU job's gain per share is counted as if it held at least this much of a node
_EPS = 1e-9

log = logging.getLogger(__name__)


class Candidate(NamedTuple):
    job: Job
    option: SignatureOption  # its cheapest option on the group
    objective: float  # its objective there
    fallback: float  # what it costs if the step leaves it off these nodes
    held_gpus: float = 0.0  # GPUs it holds on these nodes now (counted against its team's quota)


@dataclass(slots=True)
class Repacker:
    """Improves `placed` in place; the ledger stays the single record of what is used."""

    jobs: dict[str, Job]
    ledger: CapacityLedger
    placed: dict[str, Chosen]
    ranked: dict[str, list[tuple[float, int, SignatureOption]]]
    queue_costs: dict[str, float]
    max_steps: int | None = None  # work-limited rounds: at most this many steps
    work: milp.WorkLimit | None = None  # work-limited rounds: what each step's program may do
    spanned: set[int] = field(default_factory=set)  # id() of nodes holding part of a multi-node job

    def run(self, deadline: float, backend: str) -> int:
        """Repack until the deadline or until no group yields; returns how many repacks were kept.

        With `max_steps` the repack is bounded by work instead (at most that many steps, each program within
        `work`), and the deadline is only a safety net, logged as an error when reached."""
        by_group: dict[int, list[Job]] = defaultdict(list)  # the single-node jobs that could run on a group
        for job_id in sorted(self.ranked):
            job = self.jobs[job_id]
            if job.num_nodes == 1:
                for index in sorted({o.group.index for _, _, o in self.ranked[job_id]} & self.ledger.nodes.keys()):
                    by_group[index].append(job)
        # Multi-node jobs never move in a repack, so the nodes they hold stay out of every step.
        self.spanned = {id(n) for held in self.ledger.held.values() if len(held) > 1 for n in held}
        rng = random.Random(len(self.jobs))
        # What the outside jobs would gain on each group (unknown until it is first tried), and how many
        # steps in a row found nothing there: the next step goes where the gain, discounted by failures,
        # is largest.
        potential = {index: math.inf for index in sorted(by_group) if len(self.ledger.nodes[index]) > 1}
        fruitless = dict.fromkeys(potential, 0)
        kept = steps = 0
        while self.max_steps is None or steps < self.max_steps:
            if perf_counter() >= deadline:
                if self.max_steps is not None:
                    log.error("a work-limited repack reached its wall-clock safety net after %d steps", steps)
                break
            steps += 1
            live = [i for i in potential if fruitless[i] < FRUITLESS_STEPS and potential[i] > _EPS]
            if not live:
                break
            index = max(live, key=lambda i: (potential[i] / (1 + fruitless[i]), -i))
            improved, potential[index], whole = self._step(index, by_group[index], fruitless[index], rng, deadline,
                                                           backend)
            kept += improved
            if improved:
                fruitless[index] = 0
            else:  # a fruitless step that saw every node and every outside job has nothing left to try
                fruitless[index] = FRUITLESS_STEPS if whole else fruitless[index] + 1
        return kept

    def _cost(self, job_id: str) -> float:
        chosen = self.placed.get(job_id)
        return chosen.objective if chosen is not None else self.queue_costs[job_id]

    def _step(self, index: int, group_jobs: list[Job], fruitless: int, rng: random.Random, deadline: float,
              backend: str) -> tuple[bool, float, bool]:
        """One repack of a few of the group's nodes: (kept, what outside jobs stood to gain, whole group seen).

        The step aims at one outside job and offers the program the densest
        gains plus as many outside jobs drawn at random; each fruitless step
        in a row widens the draw, so the search does not keep aiming at jobs
        that fit nowhere.
        """
        outsiders = []
        for job in group_jobs:
            if job.id in self.ledger.held:
                continue  # on other nodes: moving it would mean repacking those too
            option, objective = self._best_on(job.id, index)
            gain = self._cost(job.id) - objective
            if option is not None and gain > _EPS:
                density = gain / max(option.group.offer.share(option.demand), SMALLEST_SHARE)
                outsiders.append((-density, job.id, Candidate(job, option, objective, self._cost(job.id)), gain))
        potential = sum(o[3] for o in outsiders)
        if not outsiders:
            return False, potential, True
        outsiders.sort(key=lambda o: (o[0], o[1]))
        target = outsiders[rng.randrange(min(len(outsiders), TARGETS * (1 + fruitless)))][2]
        nodes = self._pick_nodes(index, target.option.demand, rng)
        if not nodes:
            return False, 0.0, True
        chosen_nodes = {id(n) for n in nodes}
        inside = sorted(job_id for job_id, held in self.ledger.held.items() if id(held[0]) in chosen_nodes)
        candidates = [self._inside(job_id, index) for job_id in inside]
        densest = OUTSIDERS_PER_STEP // 2
        rest = outsiders[densest:]
        offered = outsiders[:densest] + rng.sample(rest, min(len(rest), OUTSIDERS_PER_STEP - densest))
        candidates += [o[2] for o in offered]
        if target not in candidates:
            candidates.append(target)
        current = sum(self.placed[job_id].objective - c.fallback for job_id, c in zip(inside, candidates))
        position = {id(n): k for k, n in enumerate(nodes)}
        now = {i: position[id(self.ledger.held[job_id][0])] for i, job_id in enumerate(inside)}
        left = max(deadline - perf_counter(), 0.01)
        time_limit = left if self.work is not None else min(STEP_TIME_S, left)
        assignment = _assign(nodes[0].offer, len(nodes), candidates, now, self.ledger, current, time_limit, backend,
                             self.work)
        whole = len(nodes) == len(self.ledger.nodes[index]) and len(offered) == len(outsiders)
        return assignment is not None and self._apply(index, nodes, candidates, assignment), potential, whole

    def _pick_nodes(self, index: int, demand: Demand, rng: random.Random) -> list[NodeState]:
        """The nodes that come closest to having room for `demand`, and as many again at random.

        Nodes holding part of a multi-node job are left out: that job would
        have to move with its other nodes.
        """
        nodes = [n for n in self.ledger.nodes[index] if id(n) not in self.spanned]
        if len(nodes) <= NODES_PER_STEP:
            return nodes
        offer = nodes[0].offer
        need = ((demand.accelerator_count, offer.gpu_count), (demand.cpus, offer.vcpus),
                (demand.memory_gb, offer.memory_gb))

        def shortfall(i: int) -> tuple[float, float]:
            node = nodes[i]
            free = (node.free_gpus, node.cpus, node.memory_gb)
            return (sum(max(0.0, want - have) / size for (want, size), have in zip(need, free) if size),
                    rng.random())

        closest = sorted(range(len(nodes)), key=shortfall)[:NODES_PER_STEP // 2]
        others = [i for i in range(len(nodes)) if i not in closest]
        picked = closest + rng.sample(others, NODES_PER_STEP - len(closest))
        return [nodes[i] for i in sorted(picked)]

    def _best_on(self, job_id: str, index: int) -> tuple[SignatureOption | None, float]:
        for objective, _, option in self.ranked[job_id]:
            if option.group.index == index:
                return option, objective
        return None, math.inf

    def _fallbacks(self, job_id: str) -> list[tuple[float, SignatureOption]]:
        """Where a job taken off the nodes may go instead: offers without nodes that beat waiting."""
        queue = self.queue_costs[job_id]
        return [(objective, option) for objective, _, option in self.ranked[job_id]
                if objective < queue and option.group.node_count is None]

    def _inside(self, job_id: str, index: int) -> Candidate:
        """A job on the chosen nodes: it may stay, move between them, or leave for another tier or the queue."""
        job = self.jobs[job_id]
        option, objective = self._best_on(job_id, index)
        fallback = self.queue_costs[job_id]
        for alternative, option_off in self._fallbacks(job_id):
            if self.ledger.limit_blocker(job, option_off) is None:
                fallback = alternative
                break
        return Candidate(job, option, objective, fallback, self.placed[job_id].option.gpus)

    def _apply(self, index: int, nodes: list[NodeState], candidates: list[Candidate],
               assignment: dict[int, int]) -> bool:
        """Carry out a repack through the ledger; keep it if the objective dropped, else undo it all."""
        ledger = self.ledger
        saved_nodes = [n.state() for n in nodes]
        saved_limits = (dict(ledger.pool_left), dict(ledger.quota_left), dict(ledger.cap_left))
        saved_jobs = {c.job.id: (self.placed.get(c.job.id), ledger.held.get(c.job.id)) for c in candidates}
        before = sum(self._cost(c.job.id) for c in candidates)
        on_nodes = {id(n) for n in nodes}
        moving = [c for i, c in enumerate(candidates)
                  if i in assignment or any(id(n) in on_nodes for n in ledger.held.get(c.job.id, ()))]
        for c in moving:  # give back what the moving jobs hold
            chosen = self.placed.pop(c.job.id, None)
            if chosen is not None:
                ledger.charge(c.job, chosen.option, -1.0)
            ledger.held.pop(c.job.id, None)
        for node in nodes:
            node.empty()
        ok = True
        for i in sorted(assignment, key=lambda i: _packing_order(candidates[i])):
            c, node = candidates[i], nodes[assignment[i]]
            if not node.fits(c.option.demand) or ledger.limit_blocker(c.job, c.option) is not None:
                ok = False
                break
            node.take(c.option.demand)
            ledger.charge(c.job, c.option)
            ledger.held[c.job.id] = [node]
            self.placed[c.job.id] = Chosen(c.objective, c.option, [node.offer])
        if ok:
            for c in moving:
                if c.job.id not in self.placed:
                    self._fall_back(c.job)
        if ok and sum(self._cost(c.job.id) for c in candidates) < before - 1e-6:
            ledger.refresh(index)
            return True
        for node, state in zip(nodes, saved_nodes):
            node.restore(state)
        ledger.pool_left, ledger.quota_left, ledger.cap_left = saved_limits
        for job_id, (chosen, held) in saved_jobs.items():
            self.placed.pop(job_id, None)
            ledger.held.pop(job_id, None)
            if chosen is not None:
                self.placed[job_id] = chosen
            if held is not None:
                ledger.held[job_id] = held
        return False

    def _fall_back(self, job: Job) -> None:
        for objective, option in self._fallbacks(job.id):
            offers = self.ledger.try_place(job, option)
            if offers is not None:
                self.placed[job.id] = Chosen(objective, option, offers)
                return


def _packing_order(c: Candidate) -> tuple:
    """Whole GPUs first, then fractions by share class (halves before thirds), each largest first."""
    count = c.option.demand.accelerator_count
    if count >= 1:
        return (0, -count, c.job.id)
    if count > 0:
        return (1, share_class(count), -count, c.job.id)
    return (2, 0, 0.0, c.job.id)


def _assign(offer: Offer, node_count: int, candidates: list[Candidate], now: dict[int, int], ledger: CapacityLedger,
            current: float, time_limit: float, backend: str, work: milp.WorkLimit | None = None
            ) -> dict[int, int] | None:
    """The best assignment of candidates to `node_count` empty nodes like `offer`, if it beats `current`.

    `now` (candidate index -> node index, the jobs already there) is where the
    solver starts: it is usually feasible, so the search prunes from the first node.

    Fractional requests pack harmonically, as the ledger packs them: `share`
    GPUs per node are set aside for each share class k, and k requests of that
    class fit on each. Returns candidate index -> node index.
    """
    lp = milp.LinearProgram()
    start: list[float] = []
    variables: list[tuple[int, int]] = []
    per_node: dict[int, list[tuple[int, Candidate]]] = defaultdict(list)
    for i, c in enumerate(candidates):
        row = []
        for n in range(node_count):
            var = lp.add_var(c.objective - c.fallback, 1.0)
            start.append(1.0 if now.get(i) == n else 0.0)
            variables.append((i, n))
            per_node[n].append((var, c))
            row.append(var)
        lp.add_row(row, [1.0] * len(row), 1.0)
    for n, entries in per_node.items():
        for dim, capacity in (("cpus", offer.vcpus), ("memory_gb", offer.memory_gb)):
            used = [(var, getattr(c.option.demand, dim)) for var, c in entries if getattr(c.option.demand, dim) > 0]
            lp.add_row([v for v, _ in used], [u for _, u in used], capacity)
        whole = [(var, c.option.demand.accelerator_count) for var, c in entries
                 if c.option.demand.accelerator_count >= 1]
        fractions: dict[int, list[int]] = defaultdict(list)
        for var, c in entries:
            if 0 < c.option.demand.accelerator_count < 1:
                fractions[share_class(c.option.demand.accelerator_count)].append(var)
        gpu_row = [v for v, _ in whole], [u for _, u in whole]
        for k, members in sorted(fractions.items()):
            share = lp.add_var(0.0, offer.gpu_count)  # GPUs of this node set aside for share class k
            start.append(float(math.ceil(sum(start[v] for v in members) / k)))
            lp.add_row(members + [share], [1.0] * len(members) + [-float(k)], 0.0)
            gpu_row[0].append(share)
            gpu_row[1].append(1.0)
        lp.add_row(*gpu_row, offer.gpu_count)
    for (team, tier) in ledger.quota_left:
        if tier is not Tier.ONPREM:
            continue
        entries = [(var, candidates[i].option.gpus) for var, (i, _) in enumerate(variables)
                   if candidates[i].job.team == team and candidates[i].option.gpus > 0]
        if entries:  # the team's jobs on these nodes give their GPUs back first
            freed = sum(c.held_gpus for c in candidates if c.job.team == team)
            lp.add_row([v for v, _ in entries], [g for _, g in entries],
                       max(ledger.quota_room((team, tier)) + freed, 0.0))
    solution = milp.solve(lp, integer=True, backend=backend, time_limit_s=time_limit, mip_rel_gap=STEP_GAP,
                          start=start, work=work)
    if solution.values is None or solution.objective >= current - 1e-6:
        return None
    return {i: n for (i, n), value in zip(variables, solution.values) if value > 0.5}
