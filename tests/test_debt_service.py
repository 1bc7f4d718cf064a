"""`Engine.debt`, `explain`'s efficiency and `placement debt` on a small hand-made history, figures by hand.

The history goes through the real store: job records as the reconciler writes them (a launch decision
and the job's fields), and GPU and process samples as a telemetry agent's drained `Batch`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import placement.cli as cli
import placement.cli.common as cli_common
from clouds.energy import grid_intensity, pue
from clouds.telemetry_samples import AgentStatus, Batch, GpuSample, ProcessSample
from placement.model import Tier
from placement.debt_accounting import SAMPLE_LAG_S
from placement.service import Engine, ServiceConfig
from placement.store import Intent, JobChange, JobState, NewJob, Store

GIB = 1024 ** 3
HOUR = 3600.0
T0 = 1_700_000_000.0
NOW = T0 + 2 * HOUR
STEP = 10  # seconds between samples
ONPREM_PUE, ONPREM_GRID = pue("onprem"), grid_intensity("onprem", None).gco2_per_kwh
A100_80_IDLE_W, A100_80_AT_50_W = 400 * 0.114, 400 * 0.7386  # no CCF row: the CCF shape scaled to its 400 W TDP


def ran(engine: Engine, name: str, team: str, *, tier: str, nodes: tuple[str, ...], gpus: float, gpu: str,
        provider: str, region: str | None, rate: float, start: float, end: float | None) -> str:
    """A job that was launched (as the reconciler records it), started at `start` and finished at `end`."""
    [job_id] = engine.store.add_jobs([NewJob(name, name, team, "normal", {"name": name}, f"{name}.yaml")], T0, name)
    handle = f"{name}-h"
    payload = {"tier": tier, "provider": provider, "gpu": gpu, "gpus_per_node": gpus, "num_nodes": max(len(nodes), 1),
               "region": region, "nodes": list(nodes)}
    engine.store.record_decisions([Intent(job_id, 1, "launch", handle, payload, JobChange(
        state=JobState.LAUNCHING, attempt=1, tier=Tier(tier), target="/".join(nodes) or "p5.48xlarge", handle=handle,
        nodes=nodes, gpus=gpus, rate_per_hour=rate), status="done")], start)
    engine.store.update_job(job_id, start, JobChange(state=JobState.RUNNING, started_at=start), event="running")
    if end is not None:
        engine.store.update_job(job_id, end, JobChange(state=JobState.SUCCEEDED, finished_at=end), event="finished")
    return job_id


def gpu_samples(node: str, index: int, profile) -> list[GpuSample]:
    """Every STEP seconds from T0 to NOW inclusive; `profile(t)` gives (utilization %, watts or None)."""
    return [GpuSample(node, index, t, *profile(t)[:1], 0.0, 0, 80 * GIB, profile(t)[1])
            for t in range(int(T0), int(NOW) + 1, STEP)]


def process_samples(node: str, index: int, pid: int, handle: str, start: float, end: float, gib: float
                    ) -> list[ProcessSample]:
    return [ProcessSample(node, index, t, pid, handle, int(gib * GIB)) for t in range(int(start), int(end), STEP)]


@pytest.fixture
def history(tmp_path: Path) -> tuple[Engine, dict[str, str]]:
    """On-prem node a100-0 (A100-80GB): job a (vision, 1 GPU, first hour, $4/h) at 20% on GPU 0 holding 10 GiB;
    job b (nlp, 2 GPUs, from 0.5 h on, still running, $8/h) at 90% on GPU 1 only, holding 60 GiB.
    Job e (nlp, one A100-80GB on each of n-0 and n-1, both hours, $6/h in all) at 50%, power not reported.
    Job c (nlp, 8 H100 on AWS, first hour, $55.04/h) has no telemetry. Job d never ran."""
    engine = Engine(ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=()), {},
                    clock=lambda: NOW)
    ids = {
        "a": ran(engine, "a", "vision", tier="onprem", nodes=("a100-0",), gpus=1, gpu="A100-80GB", provider="onprem",
                 region=None, rate=4.0, start=T0, end=T0 + HOUR),
        "b": ran(engine, "b", "nlp", tier="onprem", nodes=("a100-0",), gpus=2, gpu="A100-80GB", provider="onprem",
                 region=None, rate=8.0, start=T0 + 0.5 * HOUR, end=None),
        "e": ran(engine, "e", "nlp", tier="onprem", nodes=("n-0", "n-1"), gpus=1, gpu="A100-80GB", provider="onprem",
                 region=None, rate=6.0, start=T0, end=None),
        "c": ran(engine, "c", "nlp", tier="public", nodes=(), gpus=8, gpu="H100", provider="aws", region="us-east-1",
                 rate=55.04, start=T0, end=T0 + HOUR),
    }
    [ids["d"]] = engine.store.add_jobs([NewJob("d", "d", "nlp", "normal", {"name": "d"}, "d.yaml")], T0, "d")
    engine.store.add_telemetry(Batch(
        tuple(gpu_samples("a100-0", 0, lambda t: (20.0, 100.0) if t < T0 + HOUR else (0.0, 60.0))
              + gpu_samples("a100-0", 1, lambda t: (90.0, 300.0) if t >= T0 + 0.5 * HOUR else (0.0, 60.0))
              + gpu_samples("n-0", 0, lambda t: (50.0, None)) + gpu_samples("n-1", 0, lambda t: (50.0, None))),
        tuple(process_samples("a100-0", 0, 101, "a-h", T0, T0 + HOUR, 10)
              + process_samples("a100-0", 1, 202, "b-h", T0 + 0.5 * HOUR, NOW, 60)
              + process_samples("a100-0", 2, 303, "someone-else", T0, NOW, 5)
              + process_samples("n-0", 0, 404, "e-h", T0, NOW, 45) + process_samples("n-1", 0, 505, "e-h", T0, NOW, 45)),
        dropped=0))
    engine.store.set_agent_status(AgentStatus("a100-0", True, None, 10.0, 721, 0, 0.0004), NOW)
    engine.store.set_agent_status(AgentStatus("t4-0", False, "NVML unavailable: Driver Not Loaded", 10.0, 0, 0, None),
                                  NOW)
    return engine, ids


def test_debt_per_job_and_team_worst_first(history) -> None:
    engine, ids = history
    answer = json.loads(json.dumps(engine.debt()))  # JSON-serialisable as it is
    jobs = {row["job"]: row for row in answer["jobs"]}
    assert [row["job"] for row in answer["jobs"]] == [ids["b"], ids["e"], ids["a"], ids["c"]]  # $6.6, $6, $3.2, $0
    assert ids["d"] not in jobs

    a = jobs[ids["a"]]
    assert (a["allocated_gpu_hours"], a["utilized_gpu_hours"], a["debt_gpu_hours"]) == pytest.approx((1, 0.2, 0.8))
    assert (a["debt_usd"], a["cost_usd"], a["mean_utilization"]) == pytest.approx((0.8 * 4, 4, 0.2))
    assert a["energy_kwh"] == pytest.approx(0.1 * ONPREM_PUE, abs=1e-4)  # 100 W for an hour, measured
    assert a["carbon_kg"] == pytest.approx(0.1 * ONPREM_PUE * ONPREM_GRID / 1000, abs=1e-4)
    assert {f["kind"] for f in a["flags"]} == {"LowUtilization", "OversizedGpuMemory"}
    low = next(f for f in a["flags"] if f["kind"] == "LowUtilization")
    assert low["gpus"] == 0.25 and "20.0%" in low["reason"]  # 0.2 busy GPUs at the 80% target
    assert next(f for f in a["flags"] if f["kind"] == "OversizedGpuMemory")["gpu_type"] == "T4"  # 12 GiB fits 16 GB

    b = jobs[ids["b"]]  # 2 GPUs for 1.5 h, one of them at 90%, the other never touched (idle power)
    assert (b["allocated_gpu_hours"], b["utilized_gpu_hours"]) == pytest.approx((3, 1.35))
    assert b["debt_usd"] == pytest.approx((3 - 1.35) * 4) and b["flags"] == []
    assert b["energy_kwh"] == pytest.approx((0.3 * 1.5 + A100_80_IDLE_W / 1000 * 1.5) * ONPREM_PUE, abs=1e-4)

    e = jobs[ids["e"]]  # one allocation per node, summed back into the job
    assert sorted(e["nodes"]) == ["n-0", "n-1"] and e["gpus"] == 2
    assert (e["allocated_gpu_hours"], e["utilized_gpu_hours"], e["debt_usd"]) == pytest.approx((4, 2, 2 * 3.0))
    assert e["energy_kwh"] == pytest.approx(4 * A100_80_AT_50_W / 1000 * ONPREM_PUE, abs=1e-4)  # the power curve

    c = jobs[ids["c"]]  # allocation-only: nothing observed, no debt claimed, energy at full load
    assert c["telemetry"] is False and a["telemetry"] is True
    assert (c["allocated_gpu_hours"], c["observed_gpu_hours"], c["debt_usd"], c["cost_usd"]) == pytest.approx(
        (8, 0, 0, 55.04))
    assert c["energy_kwh"] == pytest.approx(8 * 0.7 * pue("aws"), abs=1e-4)
    assert c["carbon_kg"] == pytest.approx(8 * 0.7 * pue("aws") * grid_intensity("aws", "us-east-1").gco2_per_kwh
                                           / 1000, abs=1e-4)

    assert [t["team"] for t in answer["teams"]] == ["nlp", "vision"]
    assert answer["teams"][0]["debt_usd"] == pytest.approx(6.6 + 6.0)
    assert answer["total"]["allocated_gpu_hours"] == pytest.approx(1 + 3 + 4 + 8)
    assert answer["telemetry"]["available"] is True
    assert {a["node"]: a["reason"] for a in answer["telemetry"]["agents"]}["t4-0"].startswith("NVML unavailable")


def test_window_and_team_filters(history) -> None:
    engine, ids = history
    recent = {row["job"]: row for row in engine.debt(since_s=0.5 * HOUR)["jobs"]}
    assert set(recent) == {ids["b"], ids["e"]}  # a and c ended an hour ago
    assert (recent[ids["b"]]["allocated_gpu_hours"], recent[ids["b"]]["utilized_gpu_hours"]) == pytest.approx((1, 0.45))
    vision = engine.debt(team="vision")
    assert [row["job"] for row in vision["jobs"]] == [ids["a"]] and [t["team"] for t in vision["teams"]] == ["vision"]
    with pytest.raises(ValueError, match="positive duration"):
        engine.debt(since_s=0)


def test_plot_and_series(history, tmp_path: Path) -> None:
    engine, _ = history
    answer = engine.debt(since_s=2 * HOUR, plot_path=str(tmp_path / "debt.png"))
    assert Path(answer["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    series = answer["series"]
    first = series["t"].index(T0)  # 60-second steps from T0 - ... : in the first, a, e and c hold 1 + 2 + 8 GPUs
    assert series["allocated_gpus"][first] == pytest.approx(11) and series["utilized_gpus"][first] == pytest.approx(
        0.2 + 1.0)


def test_explain_shows_the_jobs_flags(history) -> None:
    engine, ids = history
    efficiency = engine.explain(ids["a"])["efficiency"]
    assert efficiency["job"] == ids["a"] and {f["kind"] for f in efficiency["flags"]} == {"LowUtilization",
                                                                                          "OversizedGpuMemory"}
    assert "efficiency" not in engine.explain(ids["d"])  # never ran


def test_cli_debt(history, tmp_path: Path, monkeypatch) -> None:
    """The command as typed, with the Ray service call replaced by the engine it would reach (`cli.common.ask` is the boundary)."""
    engine, ids = history
    monkeypatch.setattr(cli_common, "service_handle", lambda address: engine)
    monkeypatch.setattr(cli_common, "ask", lambda method, *args: json.loads(json.dumps(method(*args))))
    runner = CliRunner()
    plot = tmp_path / "cli.png"
    result = runner.invoke(cli.app, ["debt", "--since", "1d", "--plot", str(plot), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert [row["job"] for row in answer["jobs"]][:2] == [ids["b"], ids["e"]] and "series" not in answer
    assert answer["plot"] == str(plot) and plot.read_bytes()[:4] == b"\x89PNG"
    table = runner.invoke(cli.app, ["debt", "--team", "vision"], catch_exceptions=False)
    assert table.exit_code == 0 and ids["a"] in table.output and "LowUtilization" in table.output
    assert ids["b"] not in table.output
    bad = runner.invoke(cli.app, ["debt", "--since", "a week"])
    assert bad.exit_code == 1 and "--since" in bad.output


def test_status_shows_each_jobs_energy_and_carbon_as_debt_works_them_out(history) -> None:
    engine, ids = history
    whole = {row["job"]: row for row in engine.debt(since_s=3 * HOUR)["jobs"]}  # every run lies inside

    def figures() -> dict[str, tuple[float | None, float | None]]:
        return {row["id"]: (row["energy_kwh"], row["carbon_kg"]) for row in engine.status()}

    live = figures()
    assert live[ids["d"]] == (None, None)  # never ran
    assert live[ids["a"]] == pytest.approx((0.1 * ONPREM_PUE, 0.1 * ONPREM_PUE * ONPREM_GRID / 1000), abs=1e-4)
    for key in "abce":
        assert live[ids[key]] == pytest.approx((whole[ids[key]]["energy_kwh"], whole[ids[key]]["carbon_kg"]),
                                               abs=1e-4), key
    assert engine.accounting.assess_finished(NOW) == 2  # a and c have finished: their figures are worked out once, and kept
    assert figures() == live
    engine.store.compact_telemetry(fold_before=NOW + 60, delete_before=NOW + 60, max_gap_s=60)  # every sample gone
    gone = figures()
    assert gone[ids["a"]] == live[ids["a"]]
    assert gone[ids["e"]][0] == pytest.approx(4 * 0.4 * ONPREM_PUE, abs=1e-4)  # still running: now the curve at 100%


def test_status_reads_running_jobs_from_their_checkpoints_and_the_samples_since(history) -> None:
    engine, ids = history
    live = {row["id"]: row["energy_kwh"] for row in engine.status()}
    engine.accounting.assess_finished(NOW)  # as a round does: a and c have finished
    assert engine.accounting.checkpoint_usage(NOW) == 3  # b, and e on each of its two nodes
    assert engine.accounting.checkpoint_usage(NOW + 60) == 0  # at most every CHECKPOINT_INTERVAL_S
    # what came before the checkpoint (SAMPLE_LAG_S ago) is no longer read: without it, e would be at the curve's 100%
    engine.store.compact_telemetry(fold_before=NOW - SAMPLE_LAG_S - 60, delete_before=NOW - SAMPLE_LAG_S - 60,
                                   max_gap_s=60)
    assert {row["id"]: row["energy_kwh"] for row in engine.status()} == pytest.approx(live, abs=1e-4)


def test_a_finished_jobs_figures_are_its_checkpoint_and_what_came_after(history) -> None:
    engine, ids = history
    engine.accounting.checkpoint_usage(NOW)
    engine.store.update_job(ids["b"], NOW + 600, JobChange(state=JobState.SUCCEEDED,
                                                           finished_at=NOW + 600), event="succeeded")
    b = engine.store.job(ids["b"])
    whole = engine.accounting.report([b], b.started_at, NOW + 600)[0].total  # every sample read
    engine.accounting.assess_finished(NOW + 600)
    stored = engine.store.job_usage([b.id])[b.id]
    assert dataclasses.astuple(stored) == pytest.approx((whole.allocated_gpu_hours, whole.utilized_gpu_hours,
                                                         whole.debt_usd, whole.energy_kwh, whole.carbon_kg), rel=1e-9)
    assert engine.store.usage_checkpoints([b.handle]) == {}  # final figures replace the checkpoint


def test_cli_status_has_energy_and_carbon_columns_and_totals(history, monkeypatch) -> None:
    engine, ids = history
    monkeypatch.setattr(cli_common, "service_handle", lambda address: engine)
    monkeypatch.setattr(cli_common, "ask", lambda method, *args: json.loads(json.dumps(method(*args))))
    result = CliRunner().invoke(cli.app, ["status"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "kWh" in result.output and "kg CO2e" in result.output
    rows = engine.status()
    assert f"{sum(r['energy_kwh'] or 0 for r in rows):,.3f} kWh" in result.output
    assert f"{sum(r['carbon_kg'] or 0 for r in rows):,.3f} kg CO2e" in result.output
    assert f"{rows[0]['energy_kwh']:,.3f}" in result.output


def test_team_figures_for_the_dashboard(history) -> None:
    engine, _ = history
    teams = engine.team_debt(window_s=HOUR)
    assert set(teams) == {"nlp"}  # vision's only job ended an hour ago
    nlp = teams["nlp"]
    assert nlp.utilized_gpus == pytest.approx(0.9 + 0.5 + 0.5)  # b busy on one GPU at 90%; e on two at 50%
    assert nlp.debt_usd == pytest.approx((2 - 0.9) * 4 + (2 - 1.0) * 3)  # b and e: 2 GPU-hours each in the hour
    last_hour = {row["team"]: row for row in engine.debt(since_s=HOUR)["teams"]}["nlp"]
    assert (nlp.energy_kwh, nlp.carbon_kg) == pytest.approx((last_hour["energy_kwh"], last_hour["carbon_kg"]),
                                                            abs=1e-4)


def test_flag_thresholds_come_from_the_policy(history, tmp_path: Path) -> None:
    engine, ids = history
    assert {f["kind"] for f in engine.explain(ids["a"])["efficiency"]["flags"]} == {"LowUtilization",
                                                                                    "OversizedGpuMemory"}
    policy = tmp_path / "patient.yaml"
    policy.write_text("name: patient\ndebt:\n  low_utilization_window_s: 7200\n  memory_fraction: 0.1\n")
    patient = Engine(dataclasses.replace(engine.config, policy=str(policy)), {}, clock=lambda: NOW)
    assert patient.policy.debt.low_utilization_window_s == 7200
    assert patient.explain(ids["a"])["efficiency"]["flags"] == []  # observed 1 h, under the policy's 2 h
    assert {row["job"]: row["flags"] for row in patient.debt()["jobs"]}[ids["a"]] == []


def test_store_reads_samples_in_a_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.add_telemetry(Batch(tuple(gpu_samples("x", 0, lambda t: (50.0, None))[:4]),
                              tuple(process_samples("x", 0, 1, "h", T0, T0 + 40, 1)), 0))
    assert [s.t for s in store.gpu_samples(T0 + 10, T0 + 20)] == [T0 + 10, T0 + 20]
    assert store.gpu_samples(T0, T0 + 30, nodes=["y"]) == []
    assert [p.handle for p in store.process_samples(T0, T0 + 30, handles=["h"])] == ["h"] * 4
    assert store.prune_telemetry(T0 + 20) == 2 + 2


def test_service_agents_report_no_nvml_and_nothing_breaks(ray_cluster, tmp_path: Path) -> None:
    """One agent per GPU node of the shared cluster; without NVML each reports why, and sends no samples."""
    from placement.actor import TelemetryFeed

    store = Store(tmp_path / "t.db")
    feed = TelemetryFeed(store, interval_s=1.0, wait_s=5.0)
    try:
        deadline = time.time() + 60
        while len(store.agent_statuses()) < 3 and time.time() < deadline:
            feed.collect(time.time())
    finally:
        feed.stop()
    statuses = {s.node: s for s, _ in store.agent_statuses()}
    assert set(statuses) == {"a100-0", "a100-1", "t4-0"}  # the GPU nodes; not the GPU-less head
    assert not any(s.available for s in statuses.values()) and all(s.reason for s in statuses.values())
    assert store.gpu_samples(0, time.time() + 1) == []
