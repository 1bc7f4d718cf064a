"""How the capacity ledger picks nodes (placement/solve/ledger.py): best fit by default, balance on request.

Two identical 8-GPU nodes (96 CPUs, 384 GB). Best fit keeps an empty node
for a whole-node job that comes later; balanced placement, which the round
uses to realise the model's counts, keeps memory beside the free GPUs so that
memory-heavy jobs do not strand them.
"""

from __future__ import annotations

from placement.model import Job
from placement.solve.candidates import build_classes, group_offers
from placement.solve.ledger import CapacityLedger
from tests.solver_fixtures import builtin_policy, job, onprem, snapshot


def ledger_for(jobs: list[Job]) -> tuple[CapacityLedger, dict]:
    snap = snapshot(jobs, [onprem(f"n{i}", gpus=8, vcpus=96, memory_gb=384) for i in range(2)])
    policy = builtin_policy("balanced")
    groups = group_offers(snap)
    _, options = build_classes(snap.jobs, groups, policy)
    return CapacityLedger(snap, groups, policy), options


def place_all(ledger: CapacityLedger, options: dict, jobs: list[Job]) -> dict[str, str]:
    """Each job on its (only) on-prem option, in order; job id -> node name for those that fit."""
    where = {}
    for j in jobs:
        used = ledger.try_place(j, options[j.id][0])
        if used is not None:
            where[j.id] = used[0].name
    return where


def memory_heavy_then_light() -> list[Job]:
    heavy = [job(f"heavy{i}", gpus=1, cpus=4, memory_gb=190) for i in range(2)]
    return heavy + [job(f"light{i:02d}", gpus=1, cpus=4, memory_gb=10) for i in range(14)]


def test_best_fit_stacks_memory_heavy_jobs_and_strands_gpus():
    jobs = memory_heavy_then_light()
    ledger, options = ledger_for(jobs)
    where = place_all(ledger, options, jobs)
    assert where["heavy0"] == where["heavy1"]  # 380 of 384 GB on one node: its other 6 GPUs are stranded
    assert sum(1 for j in where if j.startswith("light")) == 8


def test_balanced_placement_keeps_memory_beside_free_gpus():
    jobs = memory_heavy_then_light()
    ledger, options = ledger_for(jobs)
    with ledger.balanced():
        where = place_all(ledger, options, jobs)
    assert where["heavy0"] != where["heavy1"]
    assert len(where) == len(jobs)  # 7 GPUs and 194 GB left on each node: room for 7 light jobs on both
    # The switch is scoped: afterwards the ledger is back to best fit.
    assert not ledger._balanced


def test_best_fit_keeps_an_empty_node_for_a_whole_node_job():
    small = [job(f"one{i}", gpus=1, cpus=8, memory_gb=32) for i in range(4)]
    whole = job("eight", gpus=8, cpus=32, memory_gb=128)
    ledger, options = ledger_for(small + [whole])
    where = place_all(ledger, options, small + [whole])
    assert len({where[j.id] for j in small}) == 1
    assert "eight" in where
