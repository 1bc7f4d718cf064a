"""One placement round: `Snapshot + Policy -> Plan`, pure and deterministic.

1. Group offers, class jobs, price every worthwhile option (candidates).
2. Solve the class-level integer program under the policy's time limit (formulation, milp).
3. Realise the class counts job by job through the capacity ledger: the
   longest jobs of a class take its cheapest-per-hour slots, on-prem nodes are
   packed largest first, and whatever does not fit spills.
4. Fill: every job still unplaced, in priority order, takes its best option
   that beats waiting and that the ledger allows. On its own, from an empty
   ledger, this step is the priority-ordered greedy, which is also the answer
   whenever the solver finds no integer solution in time.
5. Give every queued job its reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from time import perf_counter

from placement.model import Job, Offer, Placement, Plan, Snapshot, SolveStats, Tier
from placement.solve import milp
from placement.solve.candidates import (JobClass, SignatureOption, build_classes, group_offers, job_objective,
                                        job_queue_cost)
from placement.solve.costs import delay_rate, gpu_units
from placement.solve.explain import why_infeasible, why_queued
from placement.solve.formulation import formulate
from placement.solve.ledger import CapacityLedger
from policies.model import Policy


@dataclass(frozen=True, slots=True)
class RoundResult:
    """A plan and what explains it: each job's options and queue cost, and the ledger after placement."""

    plan: Plan
    job_options: dict[str, list[SignatureOption]]
    queue_costs: dict[str, float]
    ledger: CapacityLedger


def solve(snapshot: Snapshot, policy: Policy, *, method: str = "milp") -> Plan:
    return solve_round(snapshot, policy, method=method).plan


def solve_round(snapshot: Snapshot, policy: Policy, *, method: str = "milp") -> RoundResult:
    """Place what can be placed. `method="greedy"` skips the integer program (the baseline)."""
    start = perf_counter()
    jobs = tuple(sorted(snapshot.jobs, key=lambda j: j.id))  # same input, same plan
    groups = group_offers(snapshot)
    classes, job_options = build_classes(jobs, groups, policy, aggregate=policy.solver.aggregate)
    ledger = CapacityLedger(snapshot, groups, policy)
    queue_costs = {job.id: job_queue_cost(job, job_options[job.id], policy) for job in jobs if job_options[job.id]}

    build_seconds = solve_seconds = 0.0
    status, used, bound, num_vars = "greedy", "greedy", None, 0
    placed: dict[str, tuple[SignatureOption, list[Offer]]] = {}
    if method == "milp" and classes:
        formulation = formulate(classes, ledger)
        num_vars = formulation.program.num_vars
        build_seconds = perf_counter() - start
        values, status, bound = _solve_counts(formulation, policy, start)
        solve_seconds = perf_counter() - start - build_seconds
        if values is not None:
            used = "milp"
            _realise(formulation.variables, values, ledger, policy, placed)
        else:
            used = "greedy (no solution in time)"
    _fill(jobs, job_options, queue_costs, ledger, policy, placed)
    if used == "milp":
        # The greedy is cheap next to the solve; when packing losses make the MILP's plan the worse one, keep
        # the greedy's, so a round is never worse than the baseline.
        greedy_ledger = CapacityLedger(snapshot, groups, policy)
        greedy_placed: dict[str, tuple[SignatureOption, list[Offer]]] = {}
        _fill(jobs, job_options, queue_costs, greedy_ledger, policy, greedy_placed)
        if _objective(jobs, greedy_placed, queue_costs, policy) < _objective(jobs, placed, queue_costs, policy) - 1e-9:
            used, ledger, placed = "greedy (better than the MILP's packing)", greedy_ledger, greedy_placed

    placements, queued = [], []
    objective = 0.0
    for job in jobs:
        if job.id in placed:
            option, offers = placed[job.id]
            placement = _placement(job, option, offers, policy)
            placements.append(placement)
            objective += placement.objective
        elif not job_options[job.id]:
            queued.append((job.id, why_infeasible(job, snapshot.offers, snapshot.blocked_offers, policy)))
        else:
            objective += queue_costs[job.id]
            queued.append((job.id, why_queued(job, job_options[job.id], queue_costs[job.id], ledger, policy)))
    stats = SolveStats(method=used, status=status, build_seconds=build_seconds, solve_seconds=solve_seconds,
                       total_seconds=perf_counter() - start, objective=objective, num_classes=len(classes),
                       num_variables=num_vars, lower_bound=bound)
    plan = Plan(tuple(placements), tuple(queued), stats, tuple(sorted(queue_costs.items())))
    return RoundResult(plan, job_options, queue_costs, ledger)


def _solve_counts(formulation, policy: Policy, start: float) -> tuple[list[float] | None, str, float | None]:
    """Class counts: the LP relaxation rounded down, improved by the integer program while time remains.

    With many jobs per class the rounded LP is already close to optimal and costs
    a fraction of the integer solve, so it is always there to fall back on when
    the time limit hits. Returns (counts, status, lower bound of the class model).
    """
    settings = policy.solver
    program = formulation.program
    relaxed = milp.solve(program, integer=False, backend=settings.backend, time_limit_s=settings.time_limit_s)
    if relaxed.values is None:
        return None, relaxed.status, None
    floored = [math.floor(v + 1e-6) for v in relaxed.values]
    if all(abs(v - f) < 1e-6 for v, f in zip(relaxed.values, floored)):
        return floored, "Optimal (LP integral)", formulation.constant + relaxed.objective
    remaining = settings.time_limit_s - (perf_counter() - start)
    if remaining <= 0.05:
        return floored, "LP rounded (no time left for the integer program)", formulation.constant + relaxed.objective
    exact = milp.solve(program, integer=True, backend=settings.backend, time_limit_s=remaining,
                       mip_rel_gap=settings.mip_rel_gap)
    floored_objective = sum(c * f for c, f in zip(program.cost, floored))
    bound = formulation.constant + max(relaxed.objective, exact.bound)
    if exact.values is not None and (exact.optimal or exact.objective < floored_objective):
        return exact.values, exact.status, bound
    return floored, f"LP rounded ({exact.status})", bound


def _realise(variables: list[tuple[JobClass, SignatureOption]], values: list[float], ledger: CapacityLedger,
             policy: Policy, placed: dict[str, tuple[SignatureOption, list[Offer]]]) -> None:
    """Turn class counts into job placements: long jobs on cheap slots, whole GPUs packed first."""
    per_class: dict[int, list[tuple[SignatureOption, int]]] = defaultdict(list)
    classes: dict[int, JobClass] = {}
    for (cls, option), value in zip(variables, values):
        count = int(round(value))
        if count > 0:
            per_class[cls.index].append((option, count))
            classes[cls.index] = cls
    assignments: list[tuple[float, Job, SignatureOption]] = []
    for index, slots in per_class.items():
        cls = classes[index]
        jobs = sorted(cls.jobs, key=lambda j: (-j.expected_hours, j.id))
        slots.sort(key=lambda s: (s[0].objective_per_hour, s[0].group.index))
        cursor = 0
        for option, count in slots:
            for job in jobs[cursor:cursor + count]:
                assignments.append((cls.queue_cost - job_objective(job, option, policy), job, option))
            cursor += count
    # Whole-GPU requests first, largest first (first-fit decreasing keeps whole GPUs free for them); then the
    # rest by what placing them is worth, so that if packing falls short, the least valuable jobs spill.
    assignments.sort(key=lambda a: (a[2].group.node_count is None, -_whole_gpus(a[2]), -a[0], a[1].id))
    for _, job, option in assignments:
        blocker, offers = ledger.try_place(job, option)
        if blocker is None:
            placed[job.id] = (option, offers)


def _objective(jobs: tuple[Job, ...], placed: dict[str, tuple[SignatureOption, list[Offer]]],
               queue_costs: dict[str, float], policy: Policy) -> float:
    return sum(job_objective(job, placed[job.id][0], policy) if job.id in placed else queue_costs[job.id]
               for job in jobs if job.id in queue_costs)


def _whole_gpus(option: SignatureOption) -> float:
    count = option.demand.accelerator_count
    return count if count >= 1 else 0.0


def _fill(jobs: tuple[Job, ...], job_options: dict[str, list[SignatureOption]], queue_costs: dict[str, float],
          ledger: CapacityLedger, policy: Policy, placed: dict[str, tuple[SignatureOption, list[Offer]]]) -> None:
    """Priority-ordered greedy over the unplaced jobs: best option that beats waiting and fits the limits."""
    pending = [j for j in jobs if j.id not in placed and job_options[j.id]]
    pending.sort(key=lambda j: (-delay_rate(j, policy) / gpu_units(j, j.demands[0], policy), -j.waited_hours, j.id))
    for job in pending:
        queue = queue_costs[job.id]
        ranked = sorted(((job_objective(job, o, policy), i, o) for i, o in enumerate(job_options[job.id])))
        for objective, _, option in ranked:
            if objective >= queue:
                break
            blocker, offers = ledger.try_place(job, option)
            if blocker is None:
                placed[job.id] = (option, offers)
                break


def _placement(job: Job, option: SignatureOption, offers: list[Offer], policy: Policy) -> Placement:
    offer = offers[0]
    on_nodes = offer.tier is Tier.ONPREM
    target = ",".join(o.name for o in offers) if on_nodes else (
        f"{offer.pool}/{offer.gpu}" if offer.tier is Tier.PRIVATE else offer.name)
    return Placement(
        job_id=job.id, offer_id=offer.id, tier=offer.tier, provider=offer.provider, target=target,
        gpu=option.demand.accelerator, gpus_per_node=option.demand.accelerator_count, num_nodes=job.num_nodes,
        spot=offer.spot, rate_per_hour=option.rate, expected_cost=option.rate * job.expected_hours,
        objective=job_objective(job, option, policy),
        nodes=tuple(o.name for o in offers) if on_nodes else (), region=offer.region)
