"""The replay's baselines on small hand-worked cases: a job that waits, a job that bursts, a backfill.

One on-prem T4 node (start-up 60 s) and one public T4 instance at $0.50/h (start-up 480 s); rounds on a
60 s grid. Every expected number below is worked out by hand from those facts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clouds.inventory import load_inventory
from placement.replay.baselines import replay_baseline
from placement.replay.figures import figures
from placement.replay.traces.common import TraceJob, job_spec
from placement.replay.world import World
from policies import load_policy
from tests.solver_fixtures import public

T4_PUBLIC = public("g4dn.xlarge", gpu="T4", gpus=1, price=0.5, vcpus=4, memory_gb=16, gpu_memory_gb=16)


def world(tmp_path: Path, gpus: int) -> World:
    path = tmp_path / "inventory.yaml"
    path.write_text(f"nodes:\n  - name: n\n    gpu: T4\n    gpus: {gpus}\n    cpus: 32\n    memory_gb: 128\n"
                    f"    price_per_hour: {0.4 * gpus}\n")
    return World(load_inventory(path), path, public=(T4_PUBLIC,), horizon_s=6 * 3600.0)


def job(name: str, gpus: int, hours: float, priority: str = "high", at: float = 0.0) -> TraceJob:
    spec = job_spec(name, accelerators={"T4": gpus}, cpus=2, memory_gb=8, hours=hours, team="t", priority=priority)
    return TraceJob(at, spec, hours, f"hand:{name}")


def run(tmp_path: Path, baseline: str, jobs: list[TraceJob], gpus: int = 1) -> dict:
    w = world(tmp_path, gpus)
    result = figures(replay_baseline(w, jobs, baseline, load_policy("balanced"), 0), w.epoch, w.horizon_s,
                     w.onprem_gpus)
    return {r["name"]: r for r in result["per_job"]} | {"_": result}


def test_onprem_fifo_makes_the_second_job_wait_for_the_node(tmp_path):
    got = run(tmp_path, "onprem-fifo", [job("a", 1, 2.0), job("b", 1, 1.0)])
    assert got["a"]["wait_min"] == 1.0  # on-prem start-up
    # a runs from 60 s to 7,260 s (a grid point); b launches then and runs from 7,320 s
    assert got["b"]["wait_min"] == pytest.approx(7320 / 60)
    assert got["_"]["usd_public"] == 0.0 and got["b"]["tier"] == "onprem"


def test_sky_k8s_bursts_the_job_that_does_not_fit_at_once(tmp_path):
    got = run(tmp_path, "sky-k8s", [job("a", 1, 2.0), job("b", 1, 1.0)])
    assert got["b"]["tier"] == "public" and got["b"]["wait_min"] == 8.0  # public start-up
    assert got["_"]["usd_public"] == pytest.approx(0.5)  # one hour at $0.50


def test_burst_after_wait_bursts_once_the_job_has_waited_its_max_wait(tmp_path):
    got = run(tmp_path, "burst-after-wait", [job("a", 1, 2.0), job("b", 1, 1.0, priority="high")])
    assert got["b"]["tier"] == "public"
    assert got["b"]["wait_min"] == 30 + 8  # max_wait of high (30 min), then the public start-up
    low = run(tmp_path, "burst-after-wait", [job("a", 1, 2.0), job("b", 1, 1.0, priority="low")])
    assert low["b"]["tier"] == "onprem"  # no max_wait: it waits for the node


def test_easy_backfill_lets_a_short_job_in_before_the_reservation_but_not_a_long_one(tmp_path):
    # Two GPUs. a (1 GPU, 2 h) starts; b (2 GPUs) must wait for a: reserved from a's expected end, 7,260 s.
    # c (1 GPU, 1 h) ends before that and backfills at once; d (1 GPU, 3 h) would delay b, so it waits,
    # and once b holds both GPUs (7,260 s to 10,920 s) d starts after it.
    got = run(tmp_path, "onprem-fifo", [job("a", 1, 2.0), job("b", 2, 1.0), job("c", 1, 1.0), job("d", 1, 3.0)],
              gpus=2)
    assert got["c"]["wait_min"] == 1.0
    assert got["b"]["wait_min"] == pytest.approx(7320 / 60)
    assert got["d"]["wait_min"] == pytest.approx(10980 / 60)
    assert got["_"]["usd_public"] == 0.0
