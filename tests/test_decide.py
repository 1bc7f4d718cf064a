"""One place decides (placement/solve/decide.py): budgets as rate limits for every caller, idle work downscaled
first, give-ups and replica targets as core decisions from typed facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from placement.cli import app
from placement.debt import Allocation, JobUsage, Usage
from placement.model import ReasonCode, Tier
from placement.solve.decide import decide, replica_target
from placement.solve.downscale import ActionKind, RunningWork
from placement.solve.ledger import GLOBAL
from placement.solve.limits import Accrued
from placement.solve.state import Failover, LaunchFailures, Replica, RunningJob, ServiceFacts, State
from placement.state_builder import idle_jobs
from tests.solver_fixtures import job, make_policy, public, running

NOON = 1_700_049_600.0  # 2023-11-15 12:00 UTC: 12 h left in the UTC day
runner = CliRunner()

PUBLIC_JOB = """\
name: big-train
resources:
  accelerators: H100:8
num_nodes: 4
placement:
  team: ml
  priority: high
  expected_hours: 4
  tiers: [public]
run: python train.py
"""


def plan_json(tmp_path: Path, caps: str | None) -> dict:
    spec = tmp_path / "job.yaml"
    spec.write_text(PUBLIC_JOB)
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: day-budget\n" + (f"caps:\n{caps}" if caps else ""))
    result = runner.invoke(app, ["plan", str(spec), "--policy", str(policy), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_placement_plan_queues_what_a_day_budget_cannot_pay_for(tmp_path: Path) -> None:
    free = plan_json(tmp_path, None)
    assert [p["job"] for p in free["placements"]] == ["big-train"]  # without the budget it bursts...
    assert free["placements"][0]["usd_per_hour"] > 100
    capped = plan_json(tmp_path, "  global:\n    usd_per_day: 1\n")
    assert capped["placements"] == []  # ...with $1 a day it cannot
    (queued,) = capped["queued"]
    assert queued["job"] == "big-train" and queued["reason"] == ReasonCode.OVER_BUDGET.value
    assert queued["scope"] == GLOBAL
    assert "global day budget $1.00 ($1.00 left" in queued["message"] and "/h now" in queued["message"]


def work(job_id: str, rate: float, priority: str, *, idle: bool = False, hours: float = 10.0) -> RunningJob:
    policy = make_policy()
    return RunningJob(running(job_id, tier=Tier.PUBLIC, rate=rate),
                      RunningWork(job_id, "ml", Tier.PUBLIC, rate, policy.delay_rate(priority) * 8, hours, idle=idle))


def capped(usd_per_hour: float, grace_seconds: float = 300.0):
    return make_policy(caps={"global": {"usd_per_hour": usd_per_hour}}, downscale={"grace_seconds": grace_seconds})


def test_a_cap_exceeded_past_its_grace_stops_idle_work_first() -> None:
    policy = capped(25.0)
    over = {GLOBAL: NOON - 301.0}  # over the cap for longer than the grace period
    busy, idle = work("busy-low", 20.0, "low"), work("idle-critical", 20.0, "critical", idle=True)
    decisions = decide(State(now=NOON, running=(busy, idle), over_since=over), policy)
    assert [(a.job_id, a.kind) for a in decisions.downscaled] == [("idle-critical", ActionKind.STOP_IDLE)]
    assert "stop idle batch idle-critical" in decisions.downscaled[0].reason
    assert decisions.over_since == over and decisions.rates[GLOBAL] == pytest.approx(40.0)
    assert [r.job_id for r in decisions.snapshot.running] == ["busy-low"]  # its capacity and rate are freed
    # Not idle, the critical job is the costliest to stop: the low-priority one goes instead.
    awake = work("idle-critical", 20.0, "critical")
    decisions = decide(State(now=NOON, running=(busy, awake), over_since=over), policy)
    assert [(a.job_id, a.kind) for a in decisions.downscaled] == [("busy-low", ActionKind.STOP)]


def test_within_the_grace_period_nothing_is_downscaled_and_the_overrun_is_remembered() -> None:
    decisions = decide(State(now=NOON, running=(work("a", 20.0, "low", idle=True), work("b", 20.0, "low"))),
                       capped(25.0))
    assert decisions.downscale is None and decisions.over_since == {GLOBAL: NOON}


def test_a_budget_spent_is_a_zero_rate_for_the_round_and_its_jobs_wait_over_budget() -> None:
    policy = make_policy(caps={"teams": {"ml": {"usd_per_day": 100.0}}})
    offer = public("p4d", price=32.0)
    pending = (job("train", tiers=[Tier.PUBLIC]),)
    fresh = decide(State(now=NOON, pending=pending, offers=(offer,)), policy)
    assert fresh.limits["ml"].usd_per_hour == pytest.approx(100.0 / 12)  # $100 over the 12 h left
    assert fresh.policy.caps.teams["ml"].usd_per_hour == pytest.approx(100.0 / 12)  # placed under it as a rate
    assert fresh.policy.caps.teams["ml"].usd_per_day is None and policy.caps.teams["ml"].usd_per_day == 100.0
    assert fresh.plan.placements == ()  # $32/h is more than $8.33/h
    spent = decide(State(now=NOON, pending=pending, offers=(offer,), accrued={"ml": Accrued(today=100.0)}), policy)
    assert spent.limits["ml"].usd_per_hour == 0.0
    ((job_id, why),) = spent.plan.queued
    assert job_id == "train" and why.code is ReasonCode.OVER_BUDGET and why.scope == "ml"
    assert "team ml day budget $100.00 ($0.00 left, 12.0 h to go) allows $0.00/h now" in why.message
    roomy = decide(State(now=NOON, pending=pending, offers=(offer,)), make_policy(
        caps={"teams": {"ml": {"usd_per_day": 1000.0}}}))
    assert [p.job_id for p in roomy.plan.placements] == ["train"]


def test_a_rate_cap_keeps_its_own_reason() -> None:
    decisions = decide(State(now=NOON, pending=(job("train", tiers=[Tier.PUBLIC]),), offers=(public("p4d"),)),
                       make_policy(caps={"global": {"usd_per_hour": 5.0}}))
    ((_, why),) = decisions.plan.queued
    assert why.code is ReasonCode.OVER_SURGE_CAP


def test_after_max_attempts_the_core_gives_up_with_a_reason_code() -> None:
    offer = public("p4d")
    pending = (job("flaky", tiers=[Tier.PUBLIC]), job("fine", tiers=[Tier.PUBLIC]))
    failures = (LaunchFailures("flaky", 3, "no capacity in us-east-1"), LaunchFailures("fine", 2, "quota"))
    decisions = decide(State(now=NOON, pending=pending, offers=(offer,), failures=failures,
                             failover=Failover(max_attempts=3)), make_policy())
    (give_up,) = decisions.give_ups
    assert (give_up.job_id, give_up.attempts, give_up.max_attempts) == ("flaky", 3, 3)
    assert give_up.reason.code is ReasonCode.LAUNCH_ATTEMPTS_EXHAUSTED
    assert "3 launches failed" in give_up.reason.message and "no capacity in us-east-1" in give_up.reason.message
    assert dict(decisions.plan.queued)["flaky"] == give_up.reason
    assert [j.id for j in decisions.snapshot.jobs] == ["fine"]  # never offered to the solver again
    assert [p.job_id for p in decisions.plan.placements] == ["fine"]
    again = decide(State(now=NOON, pending=pending, offers=(offer,), failures=failures,
                         failover=Failover(max_attempts=4)), make_policy())
    assert again.give_ups == () and {p.job_id for p in again.plan.placements} == {"flaky", "fine"}


def test_offers_on_cool_down_are_blocked_until_the_cool_down_ends() -> None:
    from placement.solve.state import Cooldown

    offer = public("p4d")
    cool = (Cooldown(frozenset({offer.id}), until=NOON + 60, reason="no capacity"),)
    state = State(now=NOON, pending=(job("a", tiers=[Tier.PUBLIC]),), offers=(offer,), cooldowns=cool)
    assert decide(state, make_policy()).snapshot.blocked_offers == {offer.id}
    later = State(now=NOON + 61, pending=state.pending, offers=(offer,), cooldowns=cool)
    assert decide(later, make_policy()).snapshot.blocked_offers == frozenset()


def service(load: float | None, replicas: tuple[Replica, ...], next_number: int) -> ServiceFacts:
    return ServiceFacts("llm-1", "llm", 2, 6, 4.0, load, replicas, next_number)


def test_replica_targets_follow_the_load_within_min_and_max() -> None:
    two = (Replica("llm-replica-1-2", 1, False, 10.0), Replica("llm-replica-2-3", 2, False, 10.0))
    up = replica_target(service(17.0, two, 3))  # ceil(17 / 4) = 5
    assert (up.want, up.have, up.add, up.cancel) == (5, 2, (3, 4, 5), ())
    assert replica_target(service(400.0, two, 3)).add == (3, 4, 5, 6)  # at most max_replicas
    five = two + (Replica("llm-replica-3-4", 3, False, 20.0), Replica("llm-replica-4-5", 4, True, 20.0),
                  Replica("llm-replica-5-6", 5, False, 30.0))
    down = replica_target(service(0.0, five, 6))  # never below min_replicas: pending first, then the newest
    assert down.cancel == ("llm-replica-4-5", "llm-replica-5-6", "llm-replica-3-4") and down.add == ()
    assert down.cause == "scaled down: llm-1 needs 2 replicas for 0 requests/s"


def test_decide_carries_replica_targets_and_keeps_leaving_replicas_out_of_the_round() -> None:
    replicas = (Replica("llm-replica-1-2", 1, False, 10.0), Replica("llm-replica-2-3", 2, False, 10.0),
                Replica("llm-replica-3-4", 3, True, 20.0))
    pending = (job("llm-replica-3-4", tiers=[Tier.PUBLIC]),)
    running_replicas = tuple(RunningJob(running(r.job_id, tier=Tier.PUBLIC, rate=3.0)) for r in replicas[:2])
    decisions = decide(State(now=NOON, pending=pending, running=running_replicas, offers=(public("p4d"),),
                             services=(service(0.0, replicas, 4),)), make_policy())
    (target,) = decisions.replicas
    assert target.cancel == ("llm-replica-3-4",)
    assert decisions.snapshot.jobs == () and decisions.plan.placements == ()


def test_repricing_is_decided_before_caps_weigh_the_rates() -> None:
    from placement.model import Demand

    offer = public("p4d", price=64.0)  # the catalog doubled the price of what runs at $32/h
    running_job = RunningJob(running("a", tier=Tier.PUBLIC, rate=32.0, offer_id=offer.id),
                             RunningWork("a", "ml", Tier.PUBLIC, 32.0), offer, Demand(accelerator=offer.gpu,
                                                                                      accelerator_count=8))
    decisions = decide(State(now=NOON, running=(running_job,)), make_policy(caps={"global": {"usd_per_hour": 100}}))
    (change,) = decisions.repricings
    assert (change.job_id, change.old_rate, change.new_rate) == ("a", 32.0, 64.0)
    assert decisions.rates[GLOBAL] == pytest.approx(64.0)
    assert decisions.snapshot.running[0].rate_per_hour == pytest.approx(64.0)


def usage(job_id: str, observed_hours: float, utilized: float, gpus: float = 8) -> JobUsage:
    allocation = Allocation(f"{job_id}-a1", job_id, "ml", "node", "A100", gpus, 0.0, None, 32.0, 1.2, 400.0)
    return JobUsage(allocation, Usage(allocated_gpu_hours=gpus * observed_hours, observed_gpu_hours=gpus *
                                      observed_hours, utilized_gpu_hours=utilized), observed_hours)


def test_idle_work_is_what_telemetry_watched_over_the_window_and_saw_do_nothing() -> None:
    window = 1800.0
    parts = [usage("idle", 0.5, 0.0), usage("busy", 0.5, 2.0), usage("unwatched", 0.1, 0.0),
             usage("cpu", 0.5, 0.0, gpus=0)]
    assert idle_jobs(parts, window) == {"idle"}


def test_the_deciding_core_imports_no_adapter() -> None:
    """decide and its facts import only the core, the value objects and the policy model: no store, service,
    CLI, provider, Ray or SkyPilot (so `plan`, the service and a replay run the same decisions)."""
    import ast

    core = Path(__file__).resolve().parents[1] / "placement" / "solve"
    allowed = ("placement.solve", "placement.model", "policies.model", "numpy", "highspy")
    for name in ("decide.py", "state.py", "limits.py", "chains.py", "downscale.py"):
        tree = ast.parse((core / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        outside = {m for m in imported if m.split(".")[0] in ("placement", "policies", "clouds", "ray", "sky")
                   and not m.startswith(allowed)}
        assert not outside, f"{name} imports {sorted(outside)}"


def test_the_service_tells_decide_which_running_work_telemetry_saw_idle(tmp_path: Path) -> None:
    """Two H100 instances on AWS over a $60/h cap: the one whose GPUs did nothing for the idle window is what
    the round stops (without telemetry, job-id order would stop the other); the State is the service's own."""
    from clouds.telemetry import Batch
    from placement.service import Engine, ServiceConfig
    from tests.test_debt_service import NOW, T0, gpu_samples, process_samples, ran

    engine = Engine(ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=()), {},
                    clock=lambda: NOW)
    engine.policy = make_policy(caps={"global": {"usd_per_hour": 60.0}}, downscale={"grace_seconds": 0})
    public_run = dict(tier="public", nodes=(), gpus=8, gpu="H100", provider="aws", region="us-east-1", rate=55.04,
                      start=T0, end=None)
    idle, busy = ran(engine, "idle", "nlp", **public_run), ran(engine, "busy", "nlp", **public_run)
    samples = [s for i in range(8) for s in gpu_samples("idle-h", i, lambda t: (0.0, 70.0))
               + gpu_samples("busy-h", i, lambda t: (90.0, 600.0))]
    engine.store.add_telemetry(Batch(tuple(samples), tuple(
        p for i in range(8) for p in process_samples("busy-h", i, 100 + i, "busy-h", T0, NOW, 40)), dropped=0))
    assert engine.accounting.idle_work(NOW) == {idle}
    state = engine.state_builder.build(NOW, engine.policy, lambda records: [], engine.accounting.idle_work(NOW))
    assert {r.job_id: r.work.idle for r in state.running} == {idle: True, busy: False}
    decisions = decide(state, engine.policy)
    assert [(a.job_id, a.kind) for a in decisions.downscaled] == [(idle, ActionKind.STOP_IDLE)]
    blind = engine.state_builder.build(NOW, engine.policy, lambda records: [])
    assert [(a.job_id, a.kind) for a in decide(blind, engine.policy).downscaled] == [(busy, ActionKind.STOP)]
    engine.policy = make_policy()  # no cap: telemetry is not read for idle work at all
    assert engine.accounting.idle_work(NOW) == frozenset()
