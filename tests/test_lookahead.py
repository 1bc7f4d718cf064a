"""Placement that looks ahead: the capacity forecast, waiting when it pays, reservations with EASY backfill.

The pure core is real (PuLP/HiGHS); running work reaches it as `Running` with the facts the forecast
needs. The engine test drives the real Engine, store and reconciler on a simulated clock with
`TimedNodesDouble`, a double of the on-prem provider protocol (one 8-GPU node whose work ends after
its expected hours), and `placement.sim.SimulatedCloud` as the public tier.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clouds.base import LaunchRequest, Observation, WorkStatus
from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalogs
from placement.model import DurationRatio, ReasonCode, Running, Tier
from placement.service import Engine, ServiceConfig
from placement.sim import SimulatedCloud
from placement.solve import solve
from placement.solve.forecast import FinishedRun, Forecast, learn_ratios, remaining_hours, Ratios
from placement.store import JobChange, JobState, Store
from tests.solver_fixtures import builtin_policy, check_plan, job, onprem, public, snapshot

POLICY = builtin_policy("balanced")
NODE_PRICE = 16.0  # $/h for the whole 8-GPU node: $2/GPU-h
ENGINE_NODE_PRICE = 8.0  # the engine test's node: below the shipped catalog's cheapest 8xA100 ($15.92/h)
CLOUD_PRICE = 32.0  # $/h for a public 8xA100 instance


def busy(name: str, job_id: str, *, gpus: float, elapsed: float, expected: float | None, team: str = "ml",
         job_name: str | None = None) -> Running:
    """Work on on-prem node `name` holding `gpus` GPUs there, `elapsed` hours into an `expected`-hour run."""
    return Running(job_id=job_id, team=team, tier=Tier.ONPREM, offer_id=f"onprem/{name}", gpus=gpus,
                   rate_per_hour=NODE_PRICE * gpus / 8, name=job_name or job_id, nodes=(name,),
                   per_node=(gpus, 0.0, 0.0), elapsed_hours=elapsed, expected_hours=expected)


def node(name: str, free_gpus: float, price: float = NODE_PRICE):
    """An on-prem 8xA100 node with `free_gpus` free now (its price is for the whole node)."""
    return onprem(name, gpus=free_gpus, price=price, whole=(8.0, 96.0, 1024.0))


# ---------------------------------------------------------------------------------------------- forecast

def test_the_forecast_predicts_when_a_node_has_room_from_its_running_jobs() -> None:
    offers = [node("n1", 2)]
    running = [busy("n1", "a", gpus=4, elapsed=1.0, expected=1.5), busy("n1", "b", gpus=2, elapsed=0.0, expected=3.0)]
    forecast = Forecast(offers, running)
    assert forecast.start(job("fits-now", gpus=2), POLICY).hours == 0.0
    assert forecast.start(job("after-a", gpus=6), POLICY).hours == pytest.approx(0.5)  # 2 free + a's 4
    assert forecast.start(job("after-b", gpus=8), POLICY).hours == pytest.approx(3.0)
    assert forecast.start(job("h100", gpus=1, gpu="H100"), POLICY) is None
    # A service replica has no expected end: its GPUs never come back in the forecast.
    assert Forecast(offers, [busy("n1", "svc", gpus=6, elapsed=1.0, expected=None)]).start(
        job("big", gpus=8), POLICY) is None


def test_learned_ratios_correct_the_forecast_and_overrunning_work_is_given_more_time() -> None:
    runs = [FinishedRun("ml", "train", 2.0, 1.0)] * 3 + [FinishedRun("ml", "eval", 1.0, 1.5)] * 2 + \
        [FinishedRun("ml", "train", 2.0, 40.0)]  # one stuck run: the median ignores it
    ratios = learn_ratios(runs)
    assert DurationRatio("ml", "train", 0.5, 4) in ratios
    assert not any(r.name == "eval" for r in ratios)  # two runs are too few to trust
    team = next(r for r in ratios if r.name is None)
    assert team.runs == 6 and team.ratio == pytest.approx(1.0)  # median of 0.5, 0.5, 0.5, 1.5, 1.5, 20
    lookup = Ratios(ratios)
    work = busy("n1", "t", gpus=8, elapsed=0.5, expected=4.0, job_name="train")
    assert remaining_hours(work, lookup) == pytest.approx(4.0 * 0.5 - 0.5)
    forecast = Forecast([node("n1", 0)], [work], ratios)
    assert forecast.start(job("next", gpus=8), POLICY).hours == pytest.approx(1.5)  # not 3.5, as the estimate says
    overrun = busy("n1", "o", gpus=8, elapsed=3.0, expected=2.0, team="cv")
    assert remaining_hours(overrun, lookup) == pytest.approx(0.5)  # half as long again as it has overrun


def test_the_store_gives_the_finished_runs_that_teach_the_ratios(tmp_path: Path) -> None:
    from placement.store import NewJob

    store = Store(tmp_path / "p.db")
    spec = {"run": "x", "placement": {"team": "ml", "expected_hours": 2.0}}
    ids = store.add_jobs([NewJob(id=f"j{i}", name="train", team="ml", priority="normal", spec=spec, source="f#1")
                          for i in range(3)], 0.0, "b")
    for job_id, (state, hours) in zip(ids, [(JobState.SUCCEEDED, 1.0), (JobState.SUCCEEDED, 3.0),
                                            (JobState.FAILED, 0.1)]):
        store.update_job(job_id, 100.0, JobChange(state=state, started_at=100.0,
                                                  finished_at=100.0 + hours * 3600), event="x")
    runs = store.finished_runs()
    assert sorted(runs) == [("ml", "train", 2.0, 1.0), ("ml", "train", 2.0, 3.0)]  # the failed run says nothing



def test_the_engine_learns_the_ratios_again_once_another_run_has_finished(tmp_path: Path) -> None:
    from placement.store import NewJob

    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, telemetry_interval_s=None,
                           catalogs=(str(SHIPPED_CATALOG_DIR),))
    clock = Clock()
    engine = Engine(config, {}, clock=clock)
    train = {"run": "x", "placement": {"team": "ml", "expected_hours": 2.0}}

    def finish(first: int, actual_hours: list[float]) -> None:
        ids = engine.store.add_jobs([NewJob(id=f"j{first + i}", name="train", team="ml", priority="normal",
                                            spec=train, source="f#1") for i in range(len(actual_hours))],
                                    clock.now, f"b{first}")
        for job_id, hours in zip(ids, actual_hours):
            engine.store.update_job(job_id, clock.now, JobChange(state=JobState.SUCCEEDED, started_at=clock.now,
                                                                 finished_at=clock.now + hours * 3600), event="x")
        clock.now += 600

    def learned() -> dict[tuple[str, str | None], float]:
        engine.round()
        return {(r.team, r.name): r.ratio for r in engine.last_snapshot.duration_ratios}

    assert learned() == {}
    finish(0, [1.0, 1.0, 1.0])  # half the estimate
    assert learned()[("ml", "train")] == pytest.approx(0.5)
    assert learned()[("ml", "train")] == pytest.approx(0.5)  # nothing new finished: the same ratios
    finish(3, [6.0, 6.0, 6.0, 6.0])  # three times the estimate: the median of seven runs moves
    assert learned() == {("ml", "train"): pytest.approx(3.0), ("ml", None): pytest.approx(3.0)}

# ---------------------------------------------------------------------------------------------- wait or burst

def _waiting_world(priority: str = "normal", max_wait_hours: float | None = None, gpus: int = 8):
    """One 8xA100 node, full, freeing in 4 minutes; a long job arrives; the cloud sells `gpus`xA100."""
    offers = [node("n1", 0), public("p4d", gpus=gpus, price=CLOUD_PRICE * gpus / 8)]
    running = [busy("n1", "current", gpus=8, elapsed=1.0 - 4 / 60, expected=1.0)]
    new = job("long", gpus=gpus, hours=17.0, priority=priority, max_wait_hours=max_wait_hours)
    return snapshot([new], offers, running=running)


WAITING = (ReasonCode.WAITING_FOR_CAPACITY, ReasonCode.WAITING_FOR_RESERVED_CAPACITY)


@pytest.mark.parametrize("gpus, code", [(4, ReasonCode.WAITING_FOR_CAPACITY),
                                        (8, ReasonCode.WAITING_FOR_RESERVED_CAPACITY)])  # a whole node: reserved
def test_a_job_waits_four_minutes_for_a_node_rather_than_pay_the_cloud_premium(gpus: int, code: ReasonCode) -> None:
    snap = _waiting_world(gpus=gpus)
    plan = solve(snap, POLICY)
    check_plan(snap, POLICY, plan)
    assert plan.placements == ()
    reason = plan.reason_of("long")
    assert reason.code is code
    assert "n1" in reason.message and "in 4 min" in reason.message
    # The figures, by hand: 4 minutes of the GPUs at $2/GPU-h of delay, then 17 h of their share of the node
    # ($2/GPU-h) and its 1-minute start-up, against 17 h of the cloud and its 8-minute start-up.
    wait = 2.0 * gpus * 4 / 60 + 17 * NODE_PRICE * gpus / 8 + 2.0 * gpus * 1 / 60
    burst = 17 * CLOUD_PRICE * gpus / 8 + 2.0 * gpus * 8 / 60
    assert dict(plan.queue_costs)["long"] == pytest.approx(wait)
    assert f"${burst - wait:,.2f} more" in reason.message


@pytest.mark.parametrize("max_wait_min", [None, 15])
def test_a_critical_job_waits_when_the_forecast_start_leaves_time_to_burst(max_wait_min: float | None) -> None:
    """4 minutes of delay are worth less than the premium; a 15-minute max_wait still leaves 11 minutes, more
    than the public tier's 8-minute start-up, after the forecast start."""
    snap = _waiting_world("critical", max_wait_hours=None if max_wait_min is None else max_wait_min / 60)
    waits = solve(snap, POLICY)
    assert waits.placements == () and waits.reason_of("long").code in WAITING


@pytest.mark.parametrize("max_wait_min", [2, 10])  # 10: bursting after a 4-minute wait would start at minute 12
def test_a_critical_job_bursts_rather_than_wait_past_its_max_wait(max_wait_min: float) -> None:
    snap = _waiting_world("critical", max_wait_hours=max_wait_min / 60)
    plan = solve(snap, POLICY)
    check_plan(snap, POLICY, plan)
    (placement,) = plan.placements
    assert placement.job_id == "long" and placement.tier is Tier.PUBLIC


def test_a_high_job_out_of_time_bursts_rather_than_wait_past_its_max_wait_for_a_node() -> None:
    """One GPU of n1 is free now, the other seven free in 20 minutes. A fresh high job (30-minute max_wait) may
    wait for them; one that has waited 25 minutes may not: bursting later would start it past its max_wait.
    A critical job that also wants n1 does not keep it queued: it runs now, on n1 or on the cloud, although
    the cloud premium for 17 hours ($34) is worth more than an hour of its delay ($10)."""
    offers = [node("n1", 1), public("p1", gpus=1, price=CLOUD_PRICE / 8)]
    running = [busy("n1", "current", gpus=7, elapsed=1.0 - 20 / 60, expected=1.0)]
    fresh = job("long", gpus=1, hours=17.0, priority="high", max_wait_hours=0.5)
    urgent = job("urgent", gpus=1, hours=17.0, priority="critical")
    waits = solve(snapshot([fresh, urgent], offers, running=running), POLICY)
    assert waits.placement_of("long") is None and waits.reason_of("long").code in WAITING
    late = dataclasses.replace(fresh, waited_hours=25 / 60)
    snap = snapshot([late, urgent], offers, running=running)
    plan = solve(snap, POLICY)
    check_plan(snap, POLICY, plan)
    assert plan.placement_of("long") is not None
    # The same job with its max_wait not a deadline (the policy's `strict_max_wait` empty) stays queued.
    lenient = POLICY.model_copy(update={"strict_max_wait": []})
    assert solve(snap, lenient).placement_of("long") is None


def test_a_job_with_no_on_prem_capacity_coming_bursts_as_before() -> None:
    offers = [node("n1", 0), public("p4d", price=CLOUD_PRICE)]
    running = [busy("n1", "svc", gpus=8, elapsed=1.0, expected=None)]  # a service: never frees
    plan = solve(snapshot([job("long", gpus=8, hours=17.0, priority="normal")], offers, running=running), POLICY)
    assert [p.tier for p in plan.placements] == [Tier.PUBLIC]


# ---------------------------------------------------------------------------------------------- reservations

def _reservation_world(small_hours: float):
    """n1 has 2 free GPUs and 6 held by work ending in 30 minutes; an 8-GPU job waits for it."""
    offers = [node("n1", 2), public("p4d", price=CLOUD_PRICE), public("p1", gpus=1, price=CLOUD_PRICE / 8 * 1.5)]
    running = [busy("n1", "current", gpus=6, elapsed=0.5, expected=1.0)]
    jobs = [job("big", gpus=8, hours=10.0, priority="normal"),
            job("small", gpus=1, hours=small_hours, priority="low")]
    return snapshot(jobs, offers, running=running)


def test_a_long_small_job_may_not_backfill_into_a_reservation() -> None:
    snap = _reservation_world(small_hours=3.0)
    plan = solve(snap, POLICY)
    check_plan(snap, POLICY, plan)
    (reservation,) = plan.reservations
    assert reservation.job_id == "big" and reservation.nodes == ("n1",)
    assert reservation.start_hours == pytest.approx(0.5)
    reason = plan.reason_of("big")
    assert reason.code is ReasonCode.WAITING_FOR_RESERVED_CAPACITY and "in 30 min" in reason.message
    small = plan.placement_of("small")
    assert small is None or small.tier is Tier.PUBLIC  # not on n1: it would still hold a GPU when big starts


def test_a_short_small_job_backfills_before_the_reservation() -> None:
    snap = _reservation_world(small_hours=0.25)
    plan = solve(snap, POLICY)
    check_plan(snap, POLICY, plan)
    assert [r.job_id for r in plan.reservations] == ["big"]
    small = plan.placement_of("small")
    assert small is not None and small.nodes == ("n1",)


def test_without_a_forecast_the_same_small_job_takes_the_free_gpus() -> None:
    """The control for the two tests above: with no expected end for the running work, nothing is reserved."""
    snap = _reservation_world(small_hours=3.0)
    snap = snapshot(snap.jobs, snap.offers, running=[busy("n1", "current", gpus=6, elapsed=0.5, expected=None)])
    plan = solve(snap, POLICY)
    assert plan.reservations == () and plan.placement_of("small").nodes == ("n1",)


# ---------------------------------------------------------------------------------------------- packing

def test_a_small_job_fills_a_used_node_and_leaves_the_empty_one_whole_for_a_large_job() -> None:
    """Two 8xA100 nodes: `used` has 4 GPUs free, `empty` all 8 at a share price 1% lower. The small job goes to
    `used` (best fit), so the 8-GPU job that arrives next finds `empty` whole and runs on-prem at once."""
    offers = [node("used", 4, price=NODE_PRICE * 1.01), node("empty", 8), public("p4d", price=CLOUD_PRICE),
              public("p1", gpus=1, price=CLOUD_PRICE / 8)]
    running = [busy("used", "current", gpus=4, elapsed=1.0, expected=100.0)]
    snap = snapshot([job("small", gpus=1, hours=10.0)], offers, running=running)
    first = solve(snap, POLICY)
    check_plan(snap, POLICY, first)
    assert first.placement_of("small").nodes == ("used",)
    # The next round: the small job runs where it was put; the large job arrives.
    taken = {name: (1.0 if name in first.placement_of("small").nodes else 0.0) for name in ("used", "empty")}
    later_offers = [node("used", 4 - taken["used"], price=NODE_PRICE * 1.01), node("empty", 8 - taken["empty"]),
                    public("p4d", price=CLOUD_PRICE)]
    later_running = running + [busy(name, "small", gpus=1, elapsed=0.0, expected=10.0)
                               for name, gpus in taken.items() if gpus]
    later = snapshot([job("large", gpus=8, hours=20.0, priority="normal")], later_offers, running=later_running)
    plan = solve(later, POLICY)
    check_plan(later, POLICY, plan)
    large = plan.placement_of("large")
    assert large is not None and large.tier is Tier.ONPREM and large.nodes == ("empty",)


def test_best_fit_never_outweighs_a_real_price_difference() -> None:
    """The term breaks ties between owned nodes; a node 20% dearer per GPU still loses to an empty one."""
    offers = [node("used", 4, price=NODE_PRICE * 1.2), node("empty", 8)]
    running = [busy("used", "current", gpus=4, elapsed=1.0, expected=100.0)]
    plan = solve(snapshot([job("small", gpus=1, hours=10.0)], offers, running=running), POLICY)
    assert plan.placement_of("small").nodes == ("empty",)


# ---------------------------------------------------------------------------------------------- the engine

class Clock:
    def __init__(self) -> None:
        self.now = 1_767_571_200.0

    def __call__(self) -> float:
        return self.now


class TimedNodesDouble:
    """A provider-protocol double for on-prem: one 8xA100 node; work runs for its expected hours x `ratio`."""

    tier = Tier.ONPREM
    name = "onprem"

    def __init__(self, clock: Clock, ratio: float = 1.0) -> None:
        self.clock, self.ratio = clock, ratio
        self.ends: dict[str, float] = {}

    def offers(self, reserved):
        held = reserved.get("node-0", (0.0, 0.0, 0.0))
        return [node("node-0", 8 - held[0], price=ENGINE_NODE_PRICE)]

    def launch(self, request: LaunchRequest) -> None:
        hours = float(request.spec["placement"]["expected_hours"])
        self.ends.setdefault(request.handle, self.clock() + hours * self.ratio * 3600)

    def observe(self, handles):
        return {h: Observation(WorkStatus.MISSING if h not in self.ends else
                               WorkStatus.RUNNING if self.clock() < self.ends[h] else WorkStatus.SUCCEEDED)
                for h in handles}

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        self.ends[handle] = min(self.ends.get(handle, self.clock()), self.clock())

    def logs(self, handle: str) -> str:
        return ""


def spec(name: str, hours: float) -> dict:
    return {"name": name, "run": "python train.py", "resources": {"accelerators": "A100:8"},
            "placement": {"team": "ml", "priority": "normal", "tiers": ["onprem", "public"],
                          "expected_hours": hours}}


def test_the_engine_keeps_a_long_job_for_the_node_that_frees_in_four_minutes(tmp_path: Path) -> None:
    clock = Clock()
    nodes = TimedNodesDouble(clock)
    offers = [o for o in load_catalogs([SHIPPED_CATALOG_DIR]).offers if o.gpu == "A100" and o.gpu_count == 8]
    assert offers, "the shipped catalog sells 8xA100 instances"
    cloud = SimulatedCloud(offers, clock)
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, telemetry_interval_s=None,
                           catalogs=(str(SHIPPED_CATALOG_DIR),))
    engine = Engine(config, {Tier.ONPREM: nodes, Tier.PUBLIC: cloud}, clock=clock)
    (first,) = engine.submit([{"source": "a.yaml#1", "data": spec("first", 1.0)}])
    engine.round()
    engine.round()
    assert engine.store.job(first).tier == "onprem"
    clock.now += 56 * 60
    (second,) = engine.submit([{"source": "b.yaml#1", "data": spec("second", 17.0)}])
    engine.round()
    record = engine.store.job(second)
    assert record.state is JobState.PENDING and record.reason_code == "WaitingForReservedCapacity"
    assert "in 4 min" in record.reason and "node-0" in record.reason
    (reservation,) = engine.store.reservations()
    assert reservation.job_id == second and reservation.nodes == ("node-0",)
    assert reservation.start_at == pytest.approx(clock.now + 4 * 60, abs=1)
    answer = engine.explain(second)
    assert answer["reservation"]["nodes"] == ["node-0"]
    forecast = answer["forecast"]
    assert forecast["start_in_min"] == pytest.approx(4.0, abs=0.1) and forecast["burst_premium_usd"] > 0
    assert forecast["decision"] == "waits"
    clock.now += 5 * 60
    engine.round()
    engine.round()
    assert engine.store.job(second).tier == "onprem" and cloud.launched == []


# ---------------------------------------------------------------------------------------------- migrate back

def cloud_work(job_id: str, *, elapsed: float, expected: float, migratable: bool = True,
               restart_hours: float | None = None) -> Running:
    """An 8xA100 job running on the public cloud at $32/h."""
    return Running(job_id=job_id, team="ml", tier=Tier.PUBLIC, offer_id="aws/us-east-1/p4d/od", gpus=8,
                   rate_per_hour=CLOUD_PRICE, name=job_id, per_node=(8.0, 0.0, 0.0), elapsed_hours=elapsed,
                   expected_hours=expected, priority="normal", gpu="A100", migratable=migratable,
                   restart_hours=restart_hours)


def test_cloud_work_moves_back_on_prem_when_the_saving_beats_its_restart() -> None:
    offers = [node("n1", 8), public("p4d", price=CLOUD_PRICE)]
    plan = solve(snapshot([], offers, running=[cloud_work("long", elapsed=1.0, expected=11.0)]), POLICY)
    (move,) = plan.migrations
    # By hand: 10 h left x ($32 - $16)/h = $160 saved; the restart loses 0.25 h (balanced's restart_hours) of
    # 8 GPUs at normal priority's $2/GPU-h = $4.
    assert move.job_id == "long" and move.nodes == ("n1",)
    assert move.restart_usd == pytest.approx(4.0) and move.saves_usd == pytest.approx(160.0 - 4.0)
    assert move.placement.tier is Tier.ONPREM and move.placement.nodes == ("n1",)


@pytest.mark.parametrize("work", [
    cloud_work("nearly-done", elapsed=10.9, expected=11.0),  # 0.1 h x $16/h = $1.60 < the $4 restart
    cloud_work("rare-checkpoints", elapsed=1.0, expected=3.0, restart_hours=12.0),  # $32 saved < $192 restart
    cloud_work("cannot-restart", elapsed=1.0, expected=11.0, migratable=False)])
def test_cloud_work_stays_where_moving_is_not_worth_its_restart(work: Running) -> None:
    offers = [node("n1", 8), public("p4d", price=CLOUD_PRICE)]
    assert solve(snapshot([], offers, running=[work]), POLICY).migrations == ()


def test_pending_work_comes_before_moving_running_work_back() -> None:
    offers = [node("n1", 8), public("p4d", price=CLOUD_PRICE)]
    snap = snapshot([job("new", gpus=8, hours=5.0, priority="normal")], offers,
                    running=[cloud_work("long", elapsed=1.0, expected=11.0)])
    plan = solve(snap, POLICY)
    assert plan.placement_of("new").nodes == ("n1",) and plan.migrations == ()


def test_the_engine_moves_spot_tolerant_cloud_work_back_when_the_node_frees(tmp_path: Path) -> None:
    clock = Clock()
    nodes = TimedNodesDouble(clock)
    offers = [o for o in load_catalogs([SHIPPED_CATALOG_DIR]).offers if o.gpu == "A100" and o.gpu_count == 8]
    cloud = SimulatedCloud(offers, clock, startup_s=0)
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, telemetry_interval_s=None,
                           catalogs=(str(SHIPPED_CATALOG_DIR),))
    engine = Engine(config, {Tier.ONPREM: nodes, Tier.PUBLIC: cloud}, clock=clock)
    (first,) = engine.submit([{"source": "a.yaml#1", "data": spec("first", 3.0)}])
    engine.round()
    later = spec("later", 20.0)
    later["placement"]["migratable"] = True
    later["placement"]["max_wait"] = "1m"  # it may not wait 3 hours for the node: it bursts
    (second,) = engine.submit([{"source": "b.yaml#1", "data": later}])
    engine.round()
    engine.round()
    assert engine.store.job(second).tier == "public" and engine.store.job(second).state is JobState.RUNNING
    burst = [detail for _, kind, detail in engine.store.events(second) if kind == "burst"]
    assert len(burst) == 1 and "expected free in 180 min" in burst[0] and "past its max_wait" in burst[0]
    clock.now += 3 * 3600 + 60
    engine.round()  # first ends; the node is free: the 17 h left of `later` move there
    record = engine.store.job(second)
    assert record.tier == "onprem" and record.attempt == 2
    assert [grace for _, grace in cloud.terminated] == [engine.policy.downscale.checkpoint_grace_seconds]
    decision = next(d for d in engine.store.decisions(second) if d.payload.get("migrate"))
    assert decision.payload["to"] == ["node-0"] and decision.payload["saves_usd"] > 0


def test_a_reservation_stays_with_the_job_that_held_it() -> None:
    """Two 8-GPU jobs wait for n1; the more valuable gets the reservation, unless the other held it last round."""
    offers = [node("n1", 2), public("p4d", price=CLOUD_PRICE)]
    running = [busy("n1", "current", gpus=6, elapsed=0.5, expected=1.0)]
    jobs = [job("first", gpus=8, hours=10.0, priority="normal"), job("urgent", gpus=8, hours=10.0, priority="high")]
    fresh = solve(snapshot(jobs, offers, running=running), POLICY)
    assert [r.job_id for r in fresh.reservations] == ["urgent"]
    held = solve(dataclasses.replace(snapshot(jobs, offers, running=running), reserved=frozenset({"first"})), POLICY)
    assert [r.job_id for r in held.reservations] == ["first"]


def test_the_engine_learns_from_finished_runs_how_long_a_teams_jobs_really_take(tmp_path: Path) -> None:
    clock = Clock()
    nodes = TimedNodesDouble(clock, ratio=0.5)  # every run takes half its estimate
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, telemetry_interval_s=None,
                           catalogs=(str(SHIPPED_CATALOG_DIR),))
    engine = Engine(config, {Tier.ONPREM: nodes}, clock=clock)
    train = spec("train", 2.0)
    train["placement"]["tiers"] = ["onprem"]
    engine.submit([{"source": f"t{i}.yaml#1", "data": train} for i in range(3)])
    for _ in range(4 * 12):  # four hours in five-minute rounds: the three runs go one after another
        engine.round()
        clock.now += 300
    engine.round()
    assert [r.state for r in engine.store.jobs()] == [JobState.SUCCEEDED] * 3
    learned = {(r.team, r.name): r.ratio for r in engine.last_snapshot.duration_ratios}
    assert learned[("ml", "train")] == pytest.approx(0.5, abs=300 / 3600 / 2.0 + 1e-9)  # within a round's step
