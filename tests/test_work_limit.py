"""Work-limited rounds (`solver.work_limit`, the default): the same state gives the same plan however slow the
machine is, because the repack counts steps and the integer programs count nodes (tests/test_determinism.py
checks it on a loaded machine)."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from placement.solve import engine, repack
from tests.solver_fixtures import builtin_policy, check_plan, job, onprem, plan_key, public, revise, snapshot


def instance(seed: int):
    """Twelve 4-GPU nodes whose memory binds, forty 1- and 2-GPU jobs: the packer leaves room for repacks."""
    rng = random.Random(seed)
    nodes = [onprem(f"n{i:02d}", gpus=4, vcpus=64, memory_gb=200, price=8.0) for i in range(12)]
    jobs = [job(f"j{k:02d}", gpus=rng.choice([1, 1, 2]), memory_gb=rng.choice([20, 50, 90, 120]), cpus=8,
                priority=rng.choice(["low", "normal", "high"]), hours=rng.choice([1, 2, 4, 8]))
            for k in range(40)]
    return snapshot(jobs, nodes + [public("p1", gpus=1, price=4.0), public("p2", gpus=2, price=8.0)])


@pytest.fixture
def slow_clock(monkeypatch):
    """A loaded machine: every reading of the round's clock is 0.25 s later than the one before."""
    ticks = itertools.count()
    start = time.perf_counter()

    def slow() -> float:
        return start + 0.25 * next(ticks)

    monkeypatch.setattr(engine, "perf_counter", slow)
    monkeypatch.setattr(repack, "perf_counter", slow)


def test_a_work_limited_round_is_the_same_on_a_slow_machine(request):
    policy = revise(builtin_policy("balanced"), solver={"work_limit": True, "repack_steps": 30})
    snaps = [instance(seed) for seed in (3, 4)]
    quiet = [engine.solve(s, policy) for s in snaps]
    request.getfixturevalue("slow_clock")
    loaded = [engine.solve(s, policy) for s in snaps]
    for snap, a, b in zip(snaps, quiet, loaded):
        check_plan(snap, policy, a)
        assert plan_key(a) == plan_key(b)


def test_a_time_limited_round_does_less_on_a_slow_machine(monkeypatch, request):
    """Why the replay needs the work limit: on the clock alone, the repack runs out of time and stops early."""
    steps = []
    step = repack.Repacker._step

    def counted(self, *args, **kwargs):
        steps.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(repack.Repacker, "_step", counted)
    policy = revise(builtin_policy("balanced"), solver={"work_limit": False})
    engine.solve(instance(3), policy)
    quiet = len(steps)
    steps.clear()
    request.getfixturevalue("slow_clock")
    engine.solve(instance(3), policy)
    assert len(steps) < quiet
    steps.clear()
    engine.solve(instance(3), revise(policy, solver={"work_limit": True, "repack_steps": 5}))
    assert len(steps) == min(5, quiet)  # bounded by the step count, not cut short by the slow clock


def test_the_work_limits_grow_with_the_budget_and_shrink_with_the_model():
    """More time buys more repack steps; a larger model leaves fewer; past a size the integer program is left out
    (its root node alone outlasts the budget), unless the policy names its node limit."""
    from placement.solve.work import MIN_REPACK_STEPS, round_work
    from policies.model import SolverSettings

    default, longer = SolverSettings(), SolverSettings(time_limit_s=16.0)
    small, large = round_work(1_000, default), round_work(10_000, default)
    assert small.integer_program is not None and large.integer_program is None
    assert small.repack_steps > large.repack_steps >= MIN_REPACK_STEPS
    assert round_work(1_000, longer).repack_steps > small.repack_steps
    assert round_work(10_000, longer).integer_program is not None
    assert round_work(1_000_000, default).repack_steps == MIN_REPACK_STEPS
    assert large.relaxation.iterations >= 10_000  # the LP used 0.2 iterations per variable at 10,000 jobs
    named = round_work(10_000, SolverSettings(max_nodes=50, repack_steps=7))
    assert named.integer_program.nodes == 50 and named.repack_steps == 7 and named.repack_step.nodes == 50


def test_a_round_gets_the_limits_of_its_size(monkeypatch):
    """The engine hands the repack the step count and step limits `round_work` sized, and skips them on the clock."""
    seen = []
    run = repack.Repacker.run

    def recording(self, *args):
        seen.append((self.max_steps, self.work))
        return run(self, *args)

    monkeypatch.setattr(repack.Repacker, "run", recording)
    policy = builtin_policy("balanced")
    engine.solve(instance(3), policy)
    engine.solve(instance(3), revise(policy, solver={"work_limit": False}))
    (steps, work), clock = seen
    assert steps > 0 and work.nodes is not None
    assert clock == (None, None)
