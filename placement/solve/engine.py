"""One placement round: `Snapshot + Policy -> Plan`, pure and deterministic.

0. Forecast when on-prem nodes have room from running work's expected ends (forecast), reserve the
   nodes that free first for the most valuable large waiting job per GPU type (reserve: other work may
   use them only if it ends first), and price each queued job as waiting until its forecast start.
1. Group offers, class jobs, price every worthwhile option (candidates).
2. Solve the class-level integer program within the round's work limits (formulation, milp, work).
3. Realise the class counts job by job through the capacity ledger: the
   longest jobs of a class take its cheapest-per-hour slots, the most valuable
   jobs are placed first, each GPU job on the node whose free CPUs and memory
   stay most in proportion to its free GPUs (`CapacityLedger.balanced`), and
   whatever does not fit spills.
4. Fill: every job still unplaced, in priority order, takes its best option
   that beats waiting and that the ledger allows. On its own, from an empty
   ledger, this step is the priority-ordered greedy, which is also the answer
   whenever the solver finds no integer solution in time.
5. Keep the better of that plan and the greedy's, and repack a few on-prem
   nodes at a time exactly, for as many steps as the work limits give (repack),
   winning back what packing the model's counts onto nodes lost.
6. Move running cloud work back to the on-prem capacity left free when that saves more than its restart
   (migrate), let queued jobs displace lower-priority on-prem work when that is worth it (preempt), and give
   every queued job its reason.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass
from time import perf_counter

from placement.model import Job, Offer, Placement, Plan, Reservation, Snapshot, SolveStats, Tier
from placement.solve import milp
from placement.solve.candidates import (Group, JobClass, SignatureOption, Waiting, build_classes, group_offers,
                                        job_objective, job_queue_cost)
from placement.solve.costs import Wait, delay_rate, gpu_units
from placement.solve.explain import Infeasibility, why_queued, why_reserved
from placement.solve.forecast import Forecast, Ratios
from placement.solve.migrate import migrations
from placement.solve.preempt import preemptions
from placement.solve.reserve import holds, plan_reservations, with_reservations
from placement.solve.formulation import formulate
from placement.solve.ledger import CapacityLedger, Chosen, placement_of
from placement.solve.repack import Repacker
from placement.solve.work import RoundWork, round_work
from policies.model import Policy

POST_SOLVE_SHARE = 2.0  # realise + fill + reasons take up to about 2x the build time (benchmarks/placement_scale.py)
REASONS_SHARE = 0.75  # reasons and the plan take about 0.6x the build time after the repack (10,000 jobs)
MIN_LP_SHARE = 0.25  # the relaxation always gets this share of the time limit, even past the deadline
MILP_SHARE = 0.4  # the integer program runs at most this share of the time limit; the rest is the repack's

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RoundResult:
    """A plan and what explains it: each job's options and queue cost, and the ledger after placement."""

    plan: Plan
    job_options: dict[str, list[SignatureOption]]
    ledger: CapacityLedger
    waits: dict[str, Wait | None] = dataclasses.field(default_factory=dict)  # each job's forecast wait

    @property
    def queue_costs(self) -> dict[str, float]:
        return dict(self.plan.queue_costs)


def solve(snapshot: Snapshot, policy: Policy, *, method: str = "milp") -> Plan:
    return solve_round(snapshot, policy, method=method).plan


def solve_round(snapshot: Snapshot, policy: Policy, *, method: str = "milp") -> RoundResult:
    """Place what can be placed. `method="greedy"` skips the integer program (the baseline)."""
    with _without_gc_pauses():
        return _solve_round(snapshot, policy, method)


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """No cyclic garbage collection while a round runs, where the round is the process's only Python thread.

    A full collection walks every object the round has built: at 10,000 jobs the collections took 0.2 s of
    the round's 1.9 s of CPU (measured with work limits, where they change only the round's time, never its
    plan). A round makes next to no cyclic garbage (reference counting frees the rest), so collections wait
    until it ends. `gc.disable` holds for the whole process, so beside other threads (the service is a
    threaded Ray actor) it would stop their collections too: there collection stays on.
    """
    if not gc.isenabled() or threading.active_count() > 1:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _solve_round(snapshot: Snapshot, policy: Policy, method: str) -> RoundResult:
    start = perf_counter()
    if not snapshot.jobs:  # nothing to place: no model to build (most rounds of a replay); only moves back to weigh
        moves: tuple = ()
        ledger = CapacityLedger(snapshot, [], policy)
        if policy.lookahead and any(r.migratable and r.tier is not Tier.ONPREM for r in snapshot.running):
            groups = group_offers(snapshot)
            ledger = CapacityLedger(snapshot, groups, policy)
            moves = migrations(snapshot.running, groups, ledger, Ratios(snapshot.duration_ratios), policy)
        stats = SolveStats(method="empty", status="no pending jobs", build_seconds=0.0, solve_seconds=0.0,
                           total_seconds=perf_counter() - start, objective=0.0)
        return RoundResult(Plan((), (), stats, migrations=moves), {}, ledger)
    jobs = tuple(sorted(snapshot.jobs, key=lambda j: j.id))  # same input, same plan
    snapshot, groups, forecast, reservations = look_ahead(snapshot, jobs, policy)
    waiting = Waiting(forecast, policy)
    classes, job_options = build_classes(jobs, groups, policy, aggregate=policy.solver.aggregate, waiting=waiting)
    ledger = CapacityLedger(snapshot, groups, policy)
    waits = {job.id: waiting.of(job) for job in jobs if job_options[job.id]}
    queue_costs = {job.id: job_queue_cost(job, job_options[job.id], policy, waits[job.id])
                   for job in jobs if job_options[job.id]}
    ranked = {job.id: _ranked(job, job_options[job.id], policy) for job in jobs if job_options[job.id]}

    build_seconds = solve_seconds = 0.0
    status, used, bound, num_vars = "greedy", "greedy", None, 0
    placed: dict[str, Chosen] = {}
    work: RoundWork | None = None
    if method == "milp" and classes:
        formulation = formulate(classes, ledger)
        num_vars = formulation.program.num_vars
        build_seconds = perf_counter() - start
        if policy.solver.work_limit:
            work = round_work(num_vars, policy.solver)
        # The time limit covers the whole round: keep back for realising and filling about what building
        # took (they walk the same jobs and options), so the solver gets the rest.
        deadline = start + policy.solver.budget_s - POST_SOLVE_SHARE * build_seconds
        values, status, bound = _solve_counts(formulation, policy, deadline, work)
        solve_seconds = perf_counter() - start - build_seconds
        if values is not None:
            used = "milp"
            with ledger.balanced():
                _realise(formulation.variables, values, ledger, ranked, placed)
        else:
            used = "greedy (no solution in time)"
    _fill(jobs, ranked, queue_costs, ledger, policy, placed)
    repacks, repack_seconds = 0, 0.0
    if used == "milp":
        # The greedy is cheap next to the solve; when packing losses make the MILP's plan the worse one, keep
        # the greedy's, so a round is never worse than the baseline.
        greedy_ledger = CapacityLedger(snapshot, groups, policy)
        greedy_placed: dict[str, Chosen] = {}
        _fill(jobs, ranked, queue_costs, greedy_ledger, policy, greedy_placed)
        if _objective(greedy_placed, queue_costs) < _objective(placed, queue_costs) - 1e-9:
            used, ledger, placed = "greedy (better than the MILP's packing)", greedy_ledger, greedy_placed
        # What is left of the round's time goes to repacking nodes where the packing lost what the model
        # counted on.
        limits = {"max_steps": work.repack_steps, "work": work.repack_step} if work is not None else {}
        repacker = Repacker({j.id: j for j in jobs}, ledger, placed, ranked, queue_costs, **limits)
        settings = policy.solver
        repack_start = perf_counter()
        repacks = repacker.run(start + settings.budget_s - REASONS_SHARE * build_seconds, settings.backend)
        repack_seconds = perf_counter() - repack_start
        if repacks:
            used += f" + {repacks} repacks"

    moves = migrations(snapshot.running, groups, ledger, forecast.ratios, policy) if policy.lookahead else ()
    preempted = preemptions([j for j in jobs if j.id not in placed], queue_costs,
                            {r.job_id: r.start_hours for r in reservations}, snapshot,
                            [placement_of(j, placed[j.id]) for j in jobs if j.id in placed] +
                            [m.placement for m in moves], policy) if policy.preemption.enabled else ()
    starting = {p.job_id for p in preempted}
    placements, queued = [], []
    objective = 0.0
    reservations = tuple(r for r in reservations if r.job_id not in placed and r.job_id not in starting)
    reserved = {r.job_id: r for r in reservations}
    infeasibility = Infeasibility(snapshot.offers, snapshot.blocked_offers, policy)
    for job in jobs:
        if job.id in placed:
            placement = placement_of(job, placed[job.id])
            placements.append(placement)
            objective += placement.objective
        elif job.id in starting:
            objective += next(p.placement.objective for p in preempted if p.job_id == job.id)
        elif job.id in reserved:
            objective += queue_costs.get(job.id, 0.0)
            queued.append((job.id, why_reserved(reserved[job.id])))
        elif not job_options[job.id]:
            queued.append((job.id, infeasibility.why(job)))
        else:
            objective += queue_costs[job.id]
            queued.append((job.id, why_queued(job, job_options[job.id], queue_costs[job.id], ledger, policy,
                                              waits.get(job.id))))
    stats = SolveStats(method=used, status=status, build_seconds=build_seconds, solve_seconds=solve_seconds,
                       total_seconds=perf_counter() - start, objective=objective, num_classes=len(classes),
                       num_variables=num_vars, lower_bound=bound, repack_seconds=repack_seconds)
    plan = Plan(tuple(placements), tuple(queued), stats, tuple(sorted(queue_costs.items())), reservations, moves,
                preempted)
    return RoundResult(plan, job_options, ledger, waits)


def look_ahead(snapshot: Snapshot, jobs: tuple[Job, ...], policy: Policy
               ) -> tuple[Snapshot, list[Group], Forecast, tuple[Reservation, ...]]:
    """The forecast and the round's reservations, and the snapshot and offer groups with the reserved nodes
    marked (without look-ahead the forecast sees no running work: only what is free now)."""
    groups = group_offers(snapshot)
    forecast = Forecast(snapshot.offers, snapshot.running if policy.lookahead else (), snapshot.duration_ratios)
    reservations = plan_reservations(jobs, forecast, groups, policy, snapshot.reserved)
    if reservations:
        snapshot = with_reservations(snapshot, reservations)
        groups = group_offers(snapshot)
        forecast = Forecast(snapshot.offers, snapshot.running, snapshot.duration_ratios, holds(reservations))
    return snapshot, groups, forecast, reservations


def _solve_counts(formulation, policy: Policy, deadline: float, work: RoundWork | None
                  ) -> tuple[list[float] | None, str, float | None]:
    """Class counts: the integer program's, or the LP relaxation's (realised by rounding) when that is as good.

    The LP is solved first: when it is integral, or rounding it down loses less
    than the policy's gap, or the round's work limits leave the integer program
    out (a model too large for it to pay its way: at 10,000 jobs its root node
    alone took 6.5 s), or the time limit leaves no room, its values are used,
    and `_realise` rounds them. Otherwise the integer program runs, within its
    work limit (or at most MILP_SHARE of the time limit when bounded by the
    clock), starting from the rounded-down LP point (feasible: every row has
    non-negative coefficients, so HiGHS prunes against it from the start: 0.84
    s -> 0.66 s at 2,000 jobs). Its answer is used when it is optimal, or when
    it stopped with a point already within the policy's gap of the bound; else
    the rounded LP is (points further from the bound measured no better).
    Returns (values, status, lower bound of the class model).
    """
    settings = policy.solver
    program = formulation.program
    relaxed = milp.solve(program, integer=False, backend=settings.backend,
                         time_limit_s=max(deadline - perf_counter(), MIN_LP_SHARE * settings.budget_s),
                         work=work.relaxation if work is not None else None)
    if work is not None and relaxed.timed_out:
        log.error("a work-limited round's LP relaxation reached its wall-clock safety net")
    if relaxed.values is None:
        return None, relaxed.status, None
    if not relaxed.optimal:  # stopped early: its point is feasible, but its objective bounds nothing
        return relaxed.values, f"LP stopped early ({relaxed.status})", None
    floored = [math.floor(v + 1e-6) for v in relaxed.values]
    if all(abs(v - f) < 1e-6 for v, f in zip(relaxed.values, floored)):
        return relaxed.values, "Optimal (LP integral)", relaxed.objective
    floored_objective = program.offset + sum(c * f for c, f in zip(program.cost, floored))
    if floored_objective - relaxed.objective <= settings.mip_rel_gap * abs(relaxed.objective):
        return relaxed.values, "LP rounded (within the gap)", relaxed.objective
    if work is not None and work.integer_program is None:
        return relaxed.values, "LP rounded (the model is too large for the integer program)", relaxed.objective
    remaining = min(deadline - perf_counter(), MILP_SHARE * settings.budget_s)
    if remaining <= 0.05:
        if work is not None:
            log.error("a work-limited round reached its wall-clock safety net before the integer program")
        return relaxed.values, "LP rounded (no time left for the integer program)", relaxed.objective
    exact = milp.solve(program, integer=True, backend=settings.backend, time_limit_s=remaining,
                       mip_rel_gap=settings.mip_rel_gap, start=[float(f) for f in floored],
                       work=work.integer_program if work is not None else None)
    if work is not None and exact.timed_out:
        log.error("a work-limited round's integer program reached its wall-clock safety net (%.1f s)", remaining)
    bound = max(relaxed.objective, exact.bound)
    if exact.values is not None and exact.optimal:
        return exact.values, exact.status, bound
    if exact.values is not None and exact.objective - bound <= settings.mip_rel_gap * abs(exact.objective):
        return exact.values, f"{exact.status}, within the gap", bound
    return relaxed.values, f"LP rounded ({exact.status})", bound


def _realise(variables: list[tuple[JobClass, SignatureOption]], values: list[float], ledger: CapacityLedger,
             ranked: dict[str, list[tuple[float, int, SignatureOption]]], placed: dict[str, Chosen]) -> None:
    """Turn class counts into job placements: long jobs on cheap slots, whole GPUs packed first."""
    per_class: dict[int, list[tuple[SignatureOption, int]]] = defaultdict(list)
    classes: dict[int, JobClass] = {}
    remainders: list[tuple[float, JobClass, SignatureOption]] = []
    for (cls, option), value in zip(variables, values):
        count = math.floor(value + 1e-6)
        if count > 0:
            per_class[cls.index].append((option, count))
            classes[cls.index] = cls
        if value - count > 1e-6:
            remainders.append((value - count, cls, option))
    assignments: list[tuple[float, float, Job, SignatureOption]] = []
    for index, slots in per_class.items():
        cls = classes[index]
        jobs = sorted(cls.jobs, key=lambda j: (-j.expected_hours, j.id))
        slots.sort(key=lambda s: (s[0].objective_per_hour, s[0].group.index))
        cursor = 0
        for option, count in slots:
            for job in jobs[cursor:cursor + count]:
                objective = next(c for c, _, o in ranked[job.id] if o is option)
                assignments.append((cls.queue_cost - objective, objective, job, option))
            cursor += count
    # Most valuable first: when packing falls short of what the model counted on, the least valuable jobs
    # spill. (Largest-first orders were measured worse: they stack GPU-heavy work on the same nodes.)
    assignments.sort(key=lambda a: (a[3].group.node_count is None, -a[0], a[2].id))
    for _, objective, job, option in assignments:
        offers = ledger.try_place(job, option)
        if offers is not None:
            placed[job.id] = Chosen(objective, option, offers)
    # Rounding up what the LP left fractional, surest first: one more job of the class on that option.
    remainders.sort(key=lambda r: (-r[0], r[1].index, r[2].group.index))
    for _, cls, option in remainders:
        job = next((j for j in sorted(cls.jobs, key=lambda j: j.id) if j.id not in placed), None)
        if job is None:
            continue
        objective = next(c for c, _, o in ranked[job.id] if o is option)
        offers = ledger.try_place(job, option)
        if offers is not None:
            placed[job.id] = Chosen(objective, option, offers)


def _ranked(job: Job, options: list[SignatureOption], policy: Policy) -> list[tuple[float, int, SignatureOption]]:
    """A job's options with their objectives, best first (ties by position, so the order is deterministic)."""
    return sorted((job_objective(job, option, policy), i, option) for i, option in enumerate(options))


def _objective(placed: dict[str, Chosen], queue_costs: dict[str, float]) -> float:
    return sum(placed[job_id].objective if job_id in placed else cost for job_id, cost in queue_costs.items())


def _fill(jobs: tuple[Job, ...], ranked: dict[str, list[tuple[float, int, SignatureOption]]],
          queue_costs: dict[str, float], ledger: CapacityLedger, policy: Policy, placed: dict[str, Chosen]) -> None:
    """Priority-ordered greedy over the unplaced jobs: best option that beats waiting and fits the limits."""
    pending = [j for j in jobs if j.id not in placed and j.id in ranked]
    pending.sort(key=lambda j: (-delay_rate(j, policy) / gpu_units(j, j.demands[0], policy), -j.waited_hours, j.id))
    for job in pending:
        queue = queue_costs[job.id]
        for objective, _, option in ranked[job.id]:
            if objective >= queue:
                break
            offers = ledger.try_place(job, option)
            if offers is not None:
                placed[job.id] = Chosen(objective, option, offers)
                break
