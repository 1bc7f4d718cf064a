"""The same snapshot and policy give byte-identical plans however loaded the machine is.

A round is bounded by work by default (`solver.work_limit`: simplex iterations, branch-and-bound nodes and
repack steps sized from the model, placement/solve/work.py), so what it decides cannot depend on how much CPU
it got. The check solves one seeded 500-job instance of benchmarks/placement_scale.py five times with the
`balanced` policy and its 2 s round: once as the machine is, four times while a CPU-burning process per core
runs. With `work_limit: false` (the wall-clock deadlines of before) the same check fails: under load the repack
gets fewer steps and the plans differ. (With a 0.8 s round it did not always: on a busy machine the clock then
left the repack no time in any of the five runs.)
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import gc
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from clouds.catalog import load_catalog_dir
from placement.model import Plan
from placement.solve import engine
from tests.solver_fixtures import builtin_policy, check_plan

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("placement_scale", ROOT / "benchmarks" / "placement_scale.py")
scale = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("placement_scale", scale)
_spec.loader.exec_module(scale)

JOBS, NODES, SEED = 500, 100, 7
RUNS = 5


def canonical(plan: Plan) -> str:
    """Everything the round decided, as text: placements, queued jobs and their reasons, the objective and what
    it weighed; not its timings or its solver's status words."""
    def plain(value):
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, (set, frozenset)):
            return sorted(value)
        raise TypeError(type(value))

    decided = {"placements": [dataclasses.asdict(p) for p in plan.placements],
               "queued": [(job_id, dataclasses.asdict(reason)) for job_id, reason in plan.queued],
               "objective": repr(plan.stats.objective), "queue_costs": [(j, repr(c)) for j, c in plan.queue_costs],
               "reservations": [dataclasses.asdict(r) for r in plan.reservations],
               "migrations": [dataclasses.asdict(m) for m in plan.migrations],
               "preemptions": [dataclasses.asdict(p) for p in plan.preemptions],
               "method": plan.stats.method}
    return json.dumps(decided, default=plain, sort_keys=True)


@contextmanager
def cpu_burners() -> Iterator[None]:
    """One busy-looping process per core for as long as the block runs."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


def test_a_round_gives_the_same_plan_on_a_loaded_machine():
    policy = builtin_policy("balanced")
    assert policy.solver.work_limit  # the default
    catalog = load_catalog_dir(ROOT / "configs" / "catalogs")
    snap = scale.make_snapshot(JOBS, NODES, catalog.offers, SEED)
    first = engine.solve(snap, policy)
    check_plan(snap, policy, first)
    assert "repacks" in first.stats.method  # the repack ran: the step that a deadline used to cut short
    with cpu_burners():
        loaded = [engine.solve(snap, policy) for _ in range(RUNS - 1)]
    expected = canonical(first)
    for plan in loaded:
        assert canonical(plan) == expected


def test_a_round_beside_other_threads_leaves_garbage_collection_on(monkeypatch):
    """`gc.disable()` holds for the whole process: a round pauses collection only where it runs alone."""
    seen = []
    solve_round = engine._solve_round

    def recording(*args):
        seen.append(gc.isenabled())
        return solve_round(*args)

    monkeypatch.setattr(engine, "_solve_round", recording)
    policy = builtin_policy("balanced")
    snap = scale.make_snapshot(50, 10, [], SEED)
    beside = threading.Thread(target=engine.solve, args=(snap, policy))
    beside.start()  # this thread stays alive beside the round's
    beside.join()
    with monkeypatch.context() as alone:  # as in `placement plan`, the replay and the benchmark (other test
        alone.setattr(threading, "active_count", lambda: 1)  # runs may leave Ray's threads about)
        engine.solve(snap, policy)
    assert seen == [True, False]
    assert gc.isenabled()
