"""The replay of a real trace through the real engine: identical figures twice, true durations, the sweep's
front, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from placement.cli import app
from placement.replay.compare import Setup, prepare, run_all
from placement.replay.sweep import front, parse_sweep, variant
from policies import load_policy

TRACES = Path(__file__).resolve().parents[1] / "configs" / "traces"
OPENB = TRACES / "alibaba_gpu2023_openb_jobs.csv"
TIMINGS = ("wall_s", "round_s", "solve_s")  # the only figures that depend on the machine


def small_setup(**changes) -> Setup:
    """Six hours of openb (day 119: 35 GPU jobs), on-prem at a third of their peak demand, estimates off by
    a log-normal error, six hours to drain."""
    return Setup(OPENB, window="119d:119.25d", drain_h=6.0, estimate_noise=0.5, seed=3, **changes)


def without_timings(results: dict) -> list[dict]:
    return [{k: v for k, v in run.items() if k not in TIMINGS} for run in results["runs"]]


def test_the_same_replay_twice_gives_identical_figures():
    setup = small_setup(policies=["balanced"], baselines=["sky-k8s"])
    first = run_all(setup, prepare(setup))
    second = run_all(setup, prepare(setup))
    assert first["setup"]["jobs"] > 20 and first["runs"][0]["rounds"] > 20
    assert without_timings(first) == without_timings(second)
    engine = first["runs"][0]
    assert engine["finished"] > 0 and engine["usd_onprem"] > 0


def test_the_simulated_jobs_run_their_true_duration_not_their_estimate():
    setup = small_setup(policies=["balanced"])
    prepared = prepare(setup)
    results = run_all(setup, prepared)
    run = results["_runs"][0]
    done = [w for w in run.work if w.job_id in run.jobs and w.ended(run.end_s + prepared.world.epoch) is not None
            and w.stopped_at is None]
    assert done
    for work in done:
        truth = run.jobs[work.job_id].true_hours * 3600.0
        assert work.run_seconds == pytest.approx(truth)
    estimates = [(j.spec["placement"]["expected_hours"], j.true_hours) for j in run.jobs.values()]
    assert sum(1 for e, t in estimates if abs(e - t) > 0.01 * t) > len(estimates) // 2  # noise is on


def test_the_front_keeps_the_runs_no_other_run_beats_on_both():
    points = [("a", 10.0, 30.0), ("b", 20.0, 10.0), ("c", 25.0, 12.0), ("d", 10.0, 35.0), ("e", 5.0, 60.0)]
    assert front(points) == ["e", "a", "b"]  # c loses to b on both, d to a on wait
    assert front([("x", 1.0, 1.0), ("y", 1.0, 1.0)]) == ["x", "y"]  # equal points beat neither


def test_a_sweep_sets_any_policy_field_by_its_dotted_path():
    assert parse_sweep("weights.latency=0.25,0.5,1") == ("weights.latency", [0.25, 0.5, 1])
    balanced = load_policy("balanced")
    assert variant(balanced, "weights.latency", 4).weights.latency == 4
    assert variant(balanced, "priorities.high", 20).priorities["high"] == 20
    capped = variant(balanced, "caps.global.usd_per_hour", 50)
    assert capped.caps.global_.usd_per_hour == 50 and capped.name == "balanced caps.global.usd_per_hour=50"
    with pytest.raises(ValueError, match="weights.latency"):
        variant(balanced, "weights.latency", -1)
    with pytest.raises(ValueError, match="valid: FIELD=V1,V2"):
        parse_sweep("weights.latency")


def test_the_command_prints_json_with_every_run_and_job(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("submit_s,duration_s,gpus,gpu_types,priority\n0,3600,1,T4,high\n0,7200,1,T4,low\n"
                    "120,1800,8,T4,critical\n300,,1,T4,high\n")
    result = CliRunner().invoke(app, ["replay", str(jobs), "--format", "jobs", "--baseline", "onprem-fifo",
                                      "--drain", "4", "--json", "--plot", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [r["name"] for r in answer["runs"]] == ["balanced", "onprem-fifo"]
    assert answer["setup"]["skipped_rows"] == 1 and "duration_s is empty" in answer["setup"]["skipped_reasons"][0]
    assert all(len(r["per_job"]) == 3 for r in answer["runs"])
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "cost_vs_wait.png", "onprem_allocation.png", "queue.png", "spend_rate.png"]


def test_the_command_names_what_is_wrong():
    result = CliRunner().invoke(app, ["replay", str(OPENB), "--window", "126d:119d"])
    assert result.exit_code == 1 and "END must be after START" in result.output
    result = CliRunner().invoke(app, ["replay", str(OPENB), "--baseline", "slurm"])
    assert result.exit_code == 1 and "unknown baseline 'slurm'" in result.output


def test_the_trace_nodes_are_scaled_to_the_share_of_peak_demand_asked_for():
    from clouds.inventory import import_alibaba_nodes
    from placement.replay.world import scaled_nodes

    nodes = import_alibaba_nodes(TRACES / "alibaba_gpu2023_openb_nodes_raw.csv")
    for target in (8.8, 13.5, 100.0, 1000.0):
        chosen = scaled_nodes(nodes, target, seed=0)
        total = sum(n.gpus for n in chosen)
        assert abs(total - target) <= 1.0 or abs(total - target) / target < 0.01, (target, total)
        assert all(n.gpus for n in chosen) and chosen == scaled_nodes(nodes, target, seed=0)
    assert scaled_nodes(nodes, 100.0, seed=0) != scaled_nodes(nodes, 100.0, seed=1)
