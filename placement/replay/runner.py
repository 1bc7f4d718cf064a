"""Event-driven replay: one loop drives the engine or a baseline over a trace on a simulated clock.

Rounds happen on the control-interval grid, at the first grid point after something that can change a
decision: an arrival, a start-up ending, a completion, a spot reclaim, a pending job reaching its
max_wait (only then does waiting cost more: `placement.solve.costs.delay_rate`), a UTC day boundary
when a policy has day or month budgets, and the round after a downscale. Between them nothing a round
looks at changes, so the clock jumps. Every figure comes from what the simulated providers ran.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from clouds.base import LaunchRequest
from placement.model import Tier
from placement.replay.traces.common import TraceJob
from placement.replay.world import World
from placement.sim import SimulatedCloud, SimulatedWork
from placement.spec import duration_hours
from placement.store import JobState
from policies.model import Policy

Progress = Callable[[float], None]  # simulated seconds done


@dataclass(frozen=True, slots=True)
class RoundRow:
    t: float  # simulated seconds from the start
    seconds: float  # the round's wall-clock time
    solve_seconds: float
    pending: int
    spend: dict[str, float]  # $/h of private + public work per scope (global, teams)
    limits: dict[str, float]  # the $/h each capped scope may spend (engine runs with caps)
    onprem_gpus: float  # GPUs held on-prem
    downscaled: int = 0
    placing: int = 0  # jobs the round had to place (its solve seconds say something only then)


@dataclass
class Run:
    """One policy or baseline over the trace: what was submitted, what ran, and each round."""

    name: str
    kind: str  # "policy" or "baseline"
    jobs: dict[str, TraceJob]  # by the id it ran under
    work: list[SimulatedWork]
    rounds: list[RoundRow]
    wall_s: float
    end_s: float  # simulated seconds the replay covered
    offers: dict[str, object] = field(default_factory=dict)  # offer id -> Offer, for energy


class Driver(Protocol):
    """The engine or a baseline, as the loop sees it."""

    def submit(self, jobs: list[TraceJob], now: float) -> list[str]:
        """Take these arrivals; returns the ids they run under."""
        ...

    def round(self, now: float) -> RoundRow:
        ...

    def deadlines(self, now: float) -> Iterable[float]:
        """Moments after `now` at which this driver's decisions may change though nothing else did."""
        ...

    def close(self) -> None:
        ...


def with_estimates(jobs: list[TraceJob], sigma: float, seed: int) -> list[TraceJob]:
    """The jobs with `expected_hours` = true duration x a seeded log-normal error (sigma 0: the truth)."""
    if sigma < 0:
        raise ValueError(f"--estimate-noise must be >= 0, got {sigma}")
    if sigma == 0:
        return list(jobs)
    rng = random.Random(f"estimates:{seed}")
    noisy = []
    for job in jobs:
        spec = dict(job.spec)
        placement = dict(spec["placement"])
        placement["expected_hours"] = round(max(job.true_hours * math.exp(rng.gauss(0.0, sigma)), 1e-4), 6)
        spec["placement"] = placement
        noisy.append(TraceJob(job.submit_s, spec, job.true_hours, job.source))
    return noisy


def max_wait_s(job: TraceJob) -> float | None:
    wait = job.spec["placement"].get("max_wait")
    return duration_hours(wait) * 3600.0 if wait is not None else None


def simulate(world: World, jobs: list[TraceJob], name: str, kind: str, seed: int,
             make_driver: Callable[[dict[Tier, SimulatedCloud], Callable[[], float]], Driver],
             progress: Progress | None = None) -> Run:
    """Drive one policy or baseline over `jobs` (arrival order) until the horizon or until nothing is left."""
    now = [world.epoch]
    truth: dict[str, float] = {}

    def run_seconds(request: LaunchRequest) -> float:
        return truth[request.job_id]

    providers = world.providers(lambda: now[0], run_seconds, seed)
    driver = make_driver(providers, lambda: now[0])
    by_id: dict[str, TraceJob] = {}
    rounds: list[RoundRow] = []
    end = world.epoch + world.horizon_s
    interval = world.interval_s
    i, t = 0, world.epoch
    wall = time.perf_counter()
    try:
        while t < end:
            now[0] = t
            arrived = []
            while i < len(jobs) and world.epoch + jobs[i].submit_s <= t:
                arrived.append(jobs[i])
                i += 1
            if arrived:
                for job_id, job in zip(driver.submit(arrived, t), arrived):
                    truth[job_id] = job.true_hours * 3600.0
                    by_id[job_id] = job
            row = driver.round(t)
            rounds.append(row)
            if progress is not None:
                progress(t - world.epoch)
            soonest = min([world.epoch + jobs[i].submit_s] if i < len(jobs) else [math.inf])
            soonest = min([soonest, *(p.next_change(t) for p in providers.values()), *driver.deadlines(t)])
            if row.downscaled:
                soonest = t + interval  # stopped work is placed again from the next round on
            if soonest == math.inf:
                break
            t = max(t + interval, world.epoch + math.ceil((soonest - world.epoch) / interval - 1e-9) * interval)
    finally:
        driver.close()
    offers = {o.id: o for o in world.onprem_nodes + world.cloud_offers()}
    work = [w for p in providers.values() for w in p.work.values()]
    return Run(name, kind, by_id, work, rounds, time.perf_counter() - wall, min(t, end) - world.epoch, offers)


def work_limited(policy: Policy) -> Policy:
    """The policy bounded by work, not wall-clock time, so a replay gives the same figures on any machine."""
    return policy.model_copy(update={"solver": policy.solver.model_copy(update={"work_limit": True})})


class EngineDriver:
    """The real Engine (store, policy, solver, caps, downscaling, reconciler) on the simulated providers."""

    def __init__(self, world: World, policy: Policy, providers: dict[Tier, SimulatedCloud],
                 clock: Callable[[], float]):
        from placement.service import Engine, ServiceConfig  # the service's own module, imported when used

        self._tmp = tempfile.TemporaryDirectory(prefix="placement-replay-")
        config = ServiceConfig(store_path=str(Path(self._tmp.name) / "replay.db"), store_durable=False,
                               round_interval_s=None, telemetry_interval_s=None,
                               inventory=str(world.inventory_path), catalogs=(str(world.catalog_dir),))
        self.engine = Engine(config, dict(providers), clock=clock)
        self.engine.policy = work_limited(policy)
        self.world = world
        # job id -> when it must burst to start within its max_wait (the public start-up before it; the
        # forecast lets it wait until then: placement.solve.costs.allowed_wait_hours), and when it reaches it
        self._deadlines: dict[str, tuple[float, float]] = {}
        caps = policy.caps
        self._budgets = any(c.usd_per_day is not None or c.usd_per_month is not None
                            for c in ([caps.global_] if caps.global_ else []) + list(caps.teams.values()))

    def submit(self, jobs: list[TraceJob], now: float) -> list[str]:
        ids = self.engine.submit([{"source": j.source, "data": j.spec} for j in jobs])
        for job_id, job in zip(ids, jobs):
            wait = max_wait_s(job)
            if wait is not None:
                burst_s = self.engine.policy.startup_minutes.get(Tier.PUBLIC, 0.0) * 60.0
                self._deadlines[job_id] = (now + max(wait - burst_s, 0.0), now + wait)
        return ids

    def round(self, now: float) -> RoundRow:
        report = self.engine.round()
        onprem = sum(g for (tier, _), g in report.gpus_by_tier_team.items() if tier == Tier.ONPREM.value)
        return RoundRow(now - self.world.epoch, report.seconds, report.plan.stats.total_seconds,
                        report.jobs_by_state.get(JobState.PENDING.value, 0), dict(report.spend_rate_by_scope),
                        dict(report.limit_by_scope), onprem, len(report.downscaled),
                        len(report.plan.placements) + len(report.plan.queued))

    def deadlines(self, now: float) -> Iterable[float]:
        pending = {r.id for r in self.engine.store.jobs(states=[JobState.PENDING])}
        # A placed job's max_wait no longer matters; one requeued later is past it already.
        self._deadlines = {j: d for j, d in self._deadlines.items() if j in pending and d[-1] > now}
        found = [t for d in self._deadlines.values() for t in d if t > now]
        if self._budgets:
            found.append(now - (now % 86400.0) + 86400.0)  # the next UTC day: budgets become new rates
        return found

    def close(self) -> None:
        self.engine.store.close()
        self._tmp.cleanup()


def replay_policy(world: World, jobs: list[TraceJob], policy: Policy, seed: int, name: str | None = None,
                  progress: Progress | None = None) -> Run:
    return simulate(world, jobs, name or policy.name, "policy", seed,
                    lambda providers, clock: EngineDriver(world, policy, providers, clock), progress)
