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
