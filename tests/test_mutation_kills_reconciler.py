"""What the reconciler records when it acts and watches (placement/reconciler.py), beyond tests/test_reconciler.py.

Written against the mutants mutmut left alive (docs/mutation.md). The store is the real SQLite store; the
provider doubles are those of tests/test_reconciler.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clouds.base import LaunchError, LaunchRequest, Observation, Scope, WorkStatus
from placement.model import Migration, Placement, Plan, Preemption, SolveStats, Tier
from placement.reconciler import Reconciler, brief
from placement.memory_history import facts_key
from placement.solve.downscale import ActionKind, DownscaleAction
from placement.solve.state import Failover
from placement.store import Intent, JobChange, JobState, NewJob, Store
from tests.solver_fixtures import onprem, public
from tests.test_reconciler import StoreReadingProvider

NOW = 1_000_000.0
STATS = SolveStats("greedy", "ok", 0.0, 0.0, 0.0, 0.0)
OOM_LOG = "Traceback (most recent call last):\n  File \"train.py\", line 9\ntorch.OutOfMemoryError: CUDA out of memory."


def test_a_long_failure_message_keeps_its_first_line_and_its_last_lines_within_the_limit():
    message = "\n".join(["first", "", *(f"line {i}" for i in range(8))])
    assert brief(message) == "first\n...\nline 5\nline 6\nline 7"
    assert brief("a\nb\nc\nd") == "a\nb\nc\nd"  # first line + three more: nothing to cut
    assert brief("x" * 500) == "x" * 397 + "..."
    assert len(brief("y" * 400)) == 400 and brief("y" * 400) == "y" * 400


def test_a_five_line_message_is_cut_to_its_first_and_last_three_lines():
    assert brief("a\nb\nc\nd\ne") == "a\n...\nc\nd\ne"


class OnPremDouble(StoreReadingProvider):
    """The store-reading double on the on-prem tier, keeping what it is asked to launch."""

    tier = Tier.ONPREM
    name = "onprem"

    def __init__(self, store: Store, statuses: dict[str, Observation] | None = None):
        super().__init__(store)
        self.launched: list[LaunchRequest] = []
        self.statuses = statuses or {}

    def launch(self, request: LaunchRequest) -> None:
        self.launched.append(request)

    def observe(self, handles):
        return {h: self.statuses.get(h, Observation(WorkStatus.RUNNING)) for h in handles}


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "p.db")
    yield store
    store.close()


def _job(store: Store, name: str, spec: dict | None = None) -> str:
    (job_id,) = store.add_jobs([NewJob(name, name, "ml", "low", spec or {"name": name}, f"{name}.yaml#1")], NOW,
                               batch=name)
    return job_id


def _running_on_prem(store: Store, name: str, spec: dict | None = None, offer_id: str = "onprem/a100-0") -> str:
    job_id = _job(store, name, spec)
    store.update_job(job_id, NOW, JobChange(state=JobState.RUNNING, attempt=1, tier=Tier.ONPREM, target="a100-0",
                                            offer_id=offer_id, handle=f"{job_id}-a1", nodes=("a100-0",), gpus=4,
                                            rate_per_hour=0.0, started_at=NOW), event="running")
    return job_id


def _placement(job_id: str) -> Placement:
    return Placement(job_id=job_id, offer_id="onprem/a100-0", tier=Tier.ONPREM, provider="onprem", target="a100-0",
                     gpu="A100-80GB", gpus_per_node=4, num_nodes=1, spot=False, rate_per_hour=0.0,
                     expected_cost=0.0, objective=1.0, nodes=("a100-0",))


def _preemption(job_id: str, victims: tuple[str, ...], gain: float = 1.23456789) -> Preemption:
    return Preemption(job_id=job_id, victims=victims, victim_teams=("ml",) * len(victims), nodes=("a100-0",),
                      gain_usd=gain, reason=f"Preempted(by={job_id}, gain=${gain:.2f})", placement=_placement(job_id))


def test_a_preemption_records_each_victims_stop_before_stopping_it_then_launches_the_job(store):
    victim, urgent = _running_on_prem(store, "victim"), _job(store, "urgent")
    provider = OnPremDouble(store)
    plan = Plan(placements=(), stats=STATS, queued=(("other", None),), preemptions=(_preemption(urgent, (victim,)),))
    Reconciler(store, {Tier.ONPREM: provider}, clock=lambda: NOW + 60).preempt(plan, grace_seconds=90.0)

    (seen,) = provider.seen
    assert seen.handle == f"{victim}-a1" and seen.grace_seconds == 90.0
    (decision,) = seen.decisions
    assert decision[:3] == ("terminate", f"{victim}-a1", "intended")
    assert decision[3] == {"tier": "onprem", "reason": f"Preempted(by={urgent}, gain=$1.23)", "preempted_by": urgent,
                           "gain_usd": 1.2346, "grace_seconds": 90.0}
    assert seen.state is JobState.PENDING and seen.reason_code == "Preempted"
    requeued = store.job(victim)
    assert (requeued.handle, requeued.nodes, requeued.tier, requeued.target) == (None, (), None, None)
    assert requeued.reason == f"Preempted(by={urgent}, gain=$1.23)"
    assert [d.status for d in store.decisions(victim)] == ["done"]
    (launch,) = provider.launched
    assert (launch.job_id, launch.attempt, launch.placement.nodes) == (urgent, 1, ("a100-0",))
    assert store.job(urgent).state is JobState.LAUNCHING and store.open_decisions() == []


def test_a_preemption_whose_victim_is_gone_waits_and_the_next_one_still_happens(store):
    ended, victim = _running_on_prem(store, "ended"), _running_on_prem(store, "victim")
    store.update_job(ended, NOW, JobChange(state=JobState.SUCCEEDED, finished_at=NOW), event="succeeded")
    first, second, third = _job(store, "first"), _job(store, "second"), _job(store, "third")
    provider = OnPremDouble(store)
    plan = Plan(placements=(), stats=STATS, queued=(), preemptions=(_preemption(first, ("no-such-job",)),
                                                        _preemption(second, (ended,)),
                                                        _preemption(third, (victim,))))
    Reconciler(store, {Tier.ONPREM: provider}, clock=lambda: NOW).preempt(plan, grace_seconds=0.0)
    assert [s.handle for s in provider.seen] == [f"{victim}-a1"]  # the ended job is not stopped again
    assert [r.job_id for r in provider.launched] == [third]
    assert store.job(first).state is store.job(second).state is JobState.PENDING
    assert store.job(ended).state is JobState.SUCCEEDED and store.decisions(ended) == []


def test_work_that_ran_out_of_gpu_memory_is_requeued_with_the_gpu_its_launch_named(store):
    spec = {"name": "train", "placement": {"gpu_memory": {"parameters": "7B"}}}
    job_id = _running_on_prem(store, "train", spec)
    store.record_decisions([Intent(job_id, 1, "launch", f"{job_id}-a1", {"gpu": "L4"}, JobChange(), status="done")],
                           NOW)
    provider = OnPremDouble(store, {f"{job_id}-a1": Observation(WorkStatus.FAILED, OOM_LOG)})
    Reconciler(store, {Tier.ONPREM: provider}, clock=lambda: NOW + 60).observe()
    record = store.job(job_id)
    assert (record.state, record.handle, record.tier, record.target, record.nodes) == (JobState.PENDING, None, None,
                                                                                      None, ())
    assert record.reason_code == "OutOfMemory"
    assert record.reason == "ran out of GPU memory on L4 (24 GB per GPU); placing it again on a GPU with more memory"
    events = {kind: detail for _, kind, detail in store.events(job_id)}
    assert events["out-of-memory"] == brief(OOM_LOG)
    (peak,) = store.memory_peaks()
    assert (peak.job_id, peak.team, peak.name, peak.facts, peak.gpu_type, peak.gpu_memory_gb, peak.out_of_memory,
            peak.at) == (job_id, "ml", "train", facts_key(spec), "L4", 24.0, True, NOW + 60)
    assert facts_key(spec) is not None
    assert provider.seen == []  # on-prem work ends by itself: nothing to tear down


def test_an_out_of_memory_run_takes_its_gpu_from_the_offer_and_keeps_unreadable_facts_by_name(store, caplog):
    node = onprem("a100-0", gpu_memory_gb=40)
    job_id = _running_on_prem(store, "train", {"name": "train", "placement": {"gpu_memory": {"params_b": 7}}},
                              offer_id=node.id)
    provider = OnPremDouble(store, {f"{job_id}-a1": Observation(WorkStatus.FAILED, OOM_LOG)})
    Reconciler(store, {Tier.ONPREM: provider}, clock=lambda: NOW + 60, offers={node.id: node}).observe()
    (peak,) = store.memory_peaks()
    assert (peak.facts, peak.gpu_type, peak.gpu_memory_gb) == (None, None, 40.0)
    assert store.job(job_id).reason == "ran out of GPU memory on its GPU; placing it again on a GPU with more memory"
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{job_id}: its gpu_memory facts do not parse; kept by team and name"]


class PublicDouble(StoreReadingProvider):
    """The store-reading double on the public tier: launches fail with `error` (when given) or are kept."""

    def __init__(self, store: Store, error: Exception | None = None):
        super().__init__(store)
        self.error, self.launched, self.stopped = error, [], []

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        super().terminate(handle, grace_seconds)
        self.stopped.append(self.store.job(handle.rsplit("-a", 1)[0]))  # the whole record as the stop found it

    def launch(self, request: LaunchRequest) -> None:
        if self.error is not None:
            raise self.error
        self.launched.append(request)


P4D = dataclasses.replace(public("p4d"), id="aws/us-east-1/p4d/od")


def _public_placement(job_id: str) -> Placement:
    return Placement(job_id=job_id, offer_id=P4D.id, tier=Tier.PUBLIC, provider="aws", target="p4d", gpu="A100",
                     gpus_per_node=8, num_nodes=1, spot=False, rate_per_hour=32.0, expected_cost=64.0, objective=64.0)


def _launch_once(store: Store, error: Exception, **kw) -> tuple[str, list]:
    """Apply a one-placement plan whose launch raises `error`; returns the job and the `on_error` calls."""
    job_id, calls = _job(store, "train"), []
    reconciler = Reconciler(store, {Tier.PUBLIC: PublicDouble(store, error)}, clock=lambda: NOW,
                            on_error=lambda provider, kind: calls.append((provider, kind)), offers={P4D.id: P4D}, **kw)
    reconciler.apply(Plan(placements=(_public_placement(job_id),), queued=(), stats=STATS), {job_id: store.job(job_id)})
    return job_id, calls


def test_a_failed_launch_blocks_its_instance_type_and_puts_the_job_back_with_the_reason(store):
    job_id, calls = _launch_once(store, LaunchError("no capacity", scope=Scope.INSTANCE),
                                 failover=Failover(cooldown_s=3000.0))
    assert calls == [("aws", "launch")]
    ((block, until, why),) = store.active_blocks(NOW)
    assert (str(block), until, why) == ("public/aws/us-east-1/p4d", NOW + 3000.0, "no capacity")
    record = store.job(job_id)
    assert (record.state, record.handle, record.nodes, record.tier, record.target, record.reason_code) == (
        JobState.PENDING, None, (), None, None, "LaunchFailed")
    assert record.reason == ("launch 1 failed: no capacity; public/aws/us-east-1/p4d is avoided for 50 min; "
                             "the next round tries the next best offer")
    assert [(k, d) for _, k, d in store.events(job_id) if k == "launch-failed"] == [("launch-failed", "no capacity")]
    assert [d.status for d in store.decisions(job_id)] == ["failed"]


def test_a_failed_launch_without_a_scope_blocks_nothing_and_counts_every_failure(store):
    job_id, _ = _launch_once(store, LaunchError("flaky"))
    assert store.active_blocks(NOW) == []
    assert store.job(job_id).reason == "launch 1 failed: flaky; the next round tries the next best offer"
    reconciler = Reconciler(store, {Tier.PUBLIC: PublicDouble(store, LaunchError("flaky"))}, clock=lambda: NOW,
                            offers={P4D.id: P4D})
    reconciler.apply(Plan(placements=(_public_placement(job_id),), queued=(), stats=STATS), {job_id: store.job(job_id)})
    assert store.job(job_id).reason == "launch 2 failed: flaky; the next round tries the next best offer"


def test_a_launch_the_provider_calls_final_fails_the_job_when_it_happened(store):
    job_id, _ = _launch_once(store, LaunchError("bad task", retryable=False))
    record = store.job(job_id)
    assert (record.state, record.finished_at, record.reason_code, record.reason, record.handle, record.tier) == (
        JobState.FAILED, NOW, "LaunchFailed", "bad task", None, None)


def test_a_loud_failure_is_logged_once_per_blocked_scope(store, caplog):
    error = LaunchError("no credentials", scope=Scope.CLOUD, loud=True)
    reconciler = Reconciler(store, {Tier.PUBLIC: PublicDouble(store, error)}, clock=lambda: NOW, offers={P4D.id: P4D})
    for name in ("one", "two"):
        job_id = _job(store, name)
        reconciler.apply(Plan(placements=(_public_placement(job_id),), queued=(), stats=STATS),
                         {job_id: store.job(job_id)})
    unscoped = LaunchError("api server down", loud=True)
    quiet = LaunchError("no capacity", scope=Scope.INSTANCE)
    for error in (unscoped, quiet):
        job_id = _job(store, str(error))
        reconciler.providers[Tier.PUBLIC].error = error
        reconciler.apply(Plan(placements=(_public_placement(job_id),), queued=(), stats=STATS),
                         {job_id: store.job(job_id)})
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["aws: no credentials (offers under public/aws are avoided for 600 s)",
                      "aws: api server down (offers under - are avoided for 600 s)"]


def test_cancelling_work_on_a_tier_without_a_launcher_records_the_end_without_a_stop(store):
    job_id = _running_on_prem(store, "train")
    store.update_job(job_id, NOW, JobChange(reason_code="Requeued", reason="was requeued"), event="x")
    reconciler = Reconciler(store, {Tier.PUBLIC: PublicDouble(store)}, clock=lambda: NOW + 5)
    reconciler.cancel(store.job(job_id), reason="user asked")
    record = store.job(job_id)
    assert (record.state, record.finished_at, record.reason_code, record.reason) == (JobState.CANCELLED, NOW + 5, None,
                                                                                    "user asked")
    assert [(k, d) for _, k, d in store.events(job_id) if k == "cancelled"] == [("cancelled", "user asked")]
    assert store.decisions(job_id) == []
    waiting = _job(store, "waiting")
    reconciler.cancel(store.job(waiting))
    assert store.job(waiting).reason == "cancelled"  # no reason given: it says what happened


def _migration(job_id: str, saves: float = 12.345678) -> Migration:
    return Migration(job_id=job_id, from_offer=P4D.id, nodes=("a100-0",), remaining_hours=2.0, saves_usd=saves,
                     restart_usd=1.0, reason=f"Migrating: saves ${saves:.2f}", placement=_placement(job_id))


def _running_public(store: Store, name: str) -> str:
    job_id = _job(store, name)
    store.update_job(job_id, NOW, JobChange(state=JobState.RUNNING, attempt=1, tier=Tier.PUBLIC, target="p4d",
                                            offer_id=P4D.id, handle=f"{job_id}-a1", rate_per_hour=32.0,
                                            started_at=NOW), event="running")
    return job_id


def test_a_migration_records_the_stop_before_stopping_the_cloud_work_then_launches_it_on_prem(store):
    job_id = _running_public(store, "train")
    cloud, onprem_nodes = PublicDouble(store), OnPremDouble(store)
    plan = Plan(placements=(), queued=(), stats=STATS, migrations=(_migration(job_id),))
    Reconciler(store, {Tier.PUBLIC: cloud, Tier.ONPREM: onprem_nodes}, clock=lambda: NOW).migrate(plan, 75.0)
    (seen,) = cloud.seen
    assert seen.handle == f"{job_id}-a1" and seen.grace_seconds == 75.0
    assert seen.decisions == [("terminate", f"{job_id}-a1", "intended",
                               {"tier": "public", "reason": "Migrating: saves $12.35", "migrate": True,
                                "to": ["a100-0"], "saves_usd": 12.3457, "grace_seconds": 75.0})]
    assert (seen.state, seen.reason_code) == (JobState.PENDING, "Migrating")
    (at_stop,) = cloud.stopped
    assert (at_stop.handle, at_stop.nodes, at_stop.tier, at_stop.target, at_stop.reason) == (
        None, (), None, None, "Migrating: saves $12.35")
    (launch,) = onprem_nodes.launched
    assert (launch.job_id, launch.attempt, launch.placement.nodes) == (job_id, 2, ("a100-0",))
    assert [(d.action, d.status) for d in store.decisions(job_id)] == [("terminate", "done"), ("launch", "done")]
    assert store.job(job_id).state is JobState.LAUNCHING


def test_a_migration_of_work_that_ended_is_dropped_and_the_next_one_still_moves(store):
    ended, moving = _running_public(store, "ended"), _running_public(store, "moving")
    store.update_job(ended, NOW, JobChange(state=JobState.SUCCEEDED, finished_at=NOW), event="succeeded")
    cloud, onprem_nodes = PublicDouble(store), OnPremDouble(store)
    plan = Plan(placements=(), queued=(), stats=STATS,
                migrations=(_migration("no-such-job"), _migration(ended), _migration(moving)))
    Reconciler(store, {Tier.PUBLIC: cloud, Tier.ONPREM: onprem_nodes}, clock=lambda: NOW).migrate(plan, 0.0)
    assert [s.handle for s in cloud.seen] == [f"{moving}-a1"]
    assert [r.job_id for r in onprem_nodes.launched] == [moving]
    assert (cloud.seen[0].state, cloud.seen[0].reason_code) == (JobState.PENDING, "Migrating")
    assert store.decisions(moving)[0].payload["reason"] == "Migrating: saves $12.35"
    assert store.decisions(ended) == []


class DyingLauncher(OnPremDouble):
    def launch(self, request: LaunchRequest) -> None:
        raise KeyboardInterrupt("killed while launching")


def test_a_launch_finished_after_a_restart_goes_to_the_nodes_recorded_for_it(store):
    job_id = _job(store, "train")
    plan = Plan(placements=(_placement(job_id),), queued=(), stats=STATS)
    with pytest.raises(KeyboardInterrupt):
        Reconciler(store, {Tier.ONPREM: DyingLauncher(store)}, clock=lambda: NOW).apply(plan, {job_id: store.job(job_id)})
    restarted = OnPremDouble(store)
    Reconciler(store, {Tier.ONPREM: restarted}, clock=lambda: NOW + 5).resume()
    (launch,) = restarted.launched
    assert launch.placement == _placement(job_id) and launch.placement.nodes == ("a100-0",)
    assert store.open_decisions() == [] and [d.status for d in store.decisions(job_id)] == ["done"]


def _down(job_id: str, kind: ActionKind) -> DownscaleAction:
    return DownscaleAction(job_id=job_id, kind=kind, team="ml", saves_per_hour=32.0, value_lost=1.0,
                           grace_seconds=30.0, reason=f"over the cap: {kind.value}")


def test_downscaled_work_ends_or_goes_back_with_its_placement_cleared_and_the_rest_of_its_spec_kept(store):
    spec = {"name": "x", "resources": {"accelerators": "A100:8", "disk_size": 256}}
    replica, batch, spot = (_running_public_spec(store, n, spec) for n in ("replica", "batch", "spot"))
    store.update_job(replica, NOW, JobChange(reason_code="Requeued", reason="was requeued"), event="x")
    provider = PublicDouble(store)
    Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: NOW + 30).downscale(
        [_down("no-such-job", ActionKind.STOP), _down(replica, ActionKind.SCALE_DOWN), _down(batch, ActionKind.STOP),
         _down(spot, ActionKind.MOVE_TO_SPOT)])
    ended = store.job(replica)
    assert (ended.state, ended.finished_at, ended.reason_code, ended.reason) == (JobState.CANCELLED, NOW + 30, None,
                                                                                 "over the cap: scale_down")
    for job_id in (batch, spot):
        back = store.job(job_id)
        assert (back.state, back.handle, back.nodes, back.tier, back.target, back.reason_code) == (
            JobState.PENDING, None, (), None, None, "Downscaled")
    assert store.job(batch).spec["resources"] == {"accelerators": "A100:8", "disk_size": 256}
    assert store.job(spot).spec["resources"] == {"accelerators": "A100:8", "disk_size": 256, "use_spot": True}
    assert [s.handle for s in provider.seen] == [f"{replica}-a1", f"{batch}-a1", f"{spot}-a1"]


def _running_public_spec(store: Store, name: str, spec: dict) -> str:
    job_id = _job(store, name, spec)
    store.update_job(job_id, NOW, JobChange(state=JobState.RUNNING, attempt=1, tier=Tier.PUBLIC, target="p4d",
                                            offer_id=P4D.id, handle=f"{job_id}-a1", nodes=("n1",),
                                            rate_per_hour=32.0, started_at=NOW), event="running")
    return job_id


def test_observed_starts_and_ends_are_recorded_with_what_the_provider_said(store):
    starting = _job(store, "starting")
    store.update_job(starting, NOW, JobChange(state=JobState.LAUNCHING, attempt=1, tier=Tier.ONPREM, target="a100-0",
                                              handle=f"{starting}-a1"), event="launching")
    done = _running_on_prem(store, "done")
    store.update_job(done, NOW, JobChange(reason_code="Requeued", reason="was requeued once"), event="x")
    provider = OnPremDouble(store, {f"{starting}-a1": Observation(WorkStatus.RUNNING, "started on a100-0"),
                                    f"{done}-a1": Observation(WorkStatus.SUCCEEDED, "exit code 0")})
    Reconciler(store, {Tier.ONPREM: provider}, clock=lambda: NOW + 60).observe()
    assert ("running", "started on a100-0") in [(k, d) for _, k, d in store.events(starting)]
    assert ("succeeded", "exit code 0") in [(k, d) for _, k, d in store.events(done)]
    finished = store.job(done)
    assert (finished.state, finished.reason_code, finished.reason) == (JobState.SUCCEEDED, None, None)


class FailingLauncher(OnPremDouble):
    def launch(self, request: LaunchRequest) -> None:
        raise LaunchError("node busy")


def test_a_failed_on_prem_launch_gives_its_nodes_back(store):
    job_id = _job(store, "train")
    Reconciler(store, {Tier.ONPREM: FailingLauncher(store)}, clock=lambda: NOW).apply(
        Plan(placements=(_placement(job_id),), queued=(), stats=STATS), {job_id: store.job(job_id)})
    record = store.job(job_id)
    assert (record.state, record.nodes, record.target) == (JobState.PENDING, (), None)


def test_lost_and_failed_work_is_recorded_with_what_the_provider_said(store):
    lost, broke, slow = _running_on_prem(store, "lost"), _running_on_prem(store, "broke"), _job(store, "slow")
    store.update_job(slow, NOW, JobChange(state=JobState.LAUNCHING, attempt=2, tier=Tier.ONPREM, target="a100-0",
                                          handle=f"{slow}-a1", rate_per_hour=8.0, started_at=NOW - 7200),
                     event="launching")  # relaunched: its start time is the last attempt's
    provider = OnPremDouble(store, {f"{lost}-a1": Observation(WorkStatus.LOST, "node a100-0 died"),
                                    f"{broke}-a1": Observation(WorkStatus.FAILED, "exit code 3"),
                                    f"{slow}-a1": Observation(WorkStatus.MISSING)})
    Reconciler(store, {Tier.ONPREM: provider}, clock=lambda: NOW + 60).observe()
    requeued = store.job(lost)
    assert (requeued.state, requeued.nodes) == (JobState.PENDING, ())
    assert ("requeued", "node a100-0 died") in [(k, d) for _, k, d in store.events(lost)]
    assert ("failed", "exit code 3") in [(k, d) for _, k, d in store.events(broke)]
    # Not seen yet, well within the launch time-out: still launching, and nothing is charged for it.
    assert store.job(slow).state is JobState.LAUNCHING and store.spent(slow) == 0.0


class DownProvider(PublicDouble):
    def observe(self, handles):
        raise ConnectionError("api server unreachable")


def test_a_provider_outage_is_logged_and_counted_and_other_tiers_are_still_watched(store, caplog):
    cloud, local = _running_public(store, "cloud"), _running_on_prem(store, "local")  # the cloud tier is seen first
    calls = []
    nodes = OnPremDouble(store, {f"{local}-a1": Observation(WorkStatus.SUCCEEDED, "exit 0")})
    providers = {Tier.PUBLIC: DownProvider(store), Tier.ONPREM: nodes}
    Reconciler(store, providers, clock=lambda: NOW + 60,
               on_error=lambda provider, kind: calls.append((provider, kind))).observe()
    assert calls == [("aws", "observe")]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "observing aws failed: api server unreachable"]
    assert store.job(cloud).state is JobState.RUNNING
    assert store.job(local).state is JobState.SUCCEEDED


def test_a_launch_that_left_no_trace_past_the_time_out_fails_and_one_that_failed_says_why(store):
    gone, failed = (_job(store, n) for n in ("gone", "failed"))
    for job_id in (gone, failed):
        store.update_job(job_id, NOW, JobChange(state=JobState.LAUNCHING, attempt=1, tier=Tier.PUBLIC, target="p4d",
                                                offer_id=P4D.id, handle=f"{job_id}-a1"), event="launching")
    provider = PublicDouble(store)
    provider.observe = lambda handles: {f"{gone}-a1": Observation(WorkStatus.MISSING),
                                        f"{failed}-a1": Observation(WorkStatus.LAUNCH_FAILED, "quota exceeded")}
    later = NOW + 3000.0 + 1  # just past a 50 min time-out
    Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: later, offers={P4D.id: P4D},
               failover=Failover(launch_timeout_s=3000.0)).observe()
    assert store.job(gone).reason == "launch 1 failed: the launch left no trace in 50 min; the next round tries the " \
                                     "next best offer"
    assert store.job(failed).reason == "launch 1 failed: quota exceeded; the next round tries the next best offer"
    assert store.job(gone).state is store.job(failed).state is JobState.PENDING


def test_a_launch_that_has_not_shown_up_yet_at_the_time_out_keeps_launching(store):
    job_id = _job(store, "slow")
    store.update_job(job_id, NOW, JobChange(state=JobState.LAUNCHING, attempt=1, tier=Tier.PUBLIC, target="p4d",
                                            offer_id=P4D.id, handle=f"{job_id}-a1"), event="launching")
    provider = PublicDouble(store)
    provider.observe = lambda handles: {h: Observation(WorkStatus.MISSING) for h in handles}
    Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: NOW + 3000.0,
               failover=Failover(launch_timeout_s=3000.0)).observe()
    assert store.job(job_id).state is JobState.LAUNCHING


def test_a_launch_request_carries_the_jobs_team_priority_tier_target_and_prices(store):
    job_id = _job(store, "train")
    provider = PublicDouble(store)
    placement = dataclasses.replace(_public_placement(job_id), cpus_per_node=48.0, memory_gb_per_node=576.0)
    Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: NOW, offers={P4D.id: P4D}).apply(
        Plan(placements=(placement,), queued=(), stats=STATS), {job_id: store.job(job_id)})
    record = store.job(job_id)
    assert (record.state, record.target, record.gpus, record.cpus, record.memory_gb) == (JobState.LAUNCHING, "p4d", 8,
                                                                                         48.0, 576.0)
    (request,) = provider.launched
    assert request.metadata == {"team": "ml", "priority": "low", "tier": "public", "target": "p4d",
                                "usd_per_hour": "32.0000", "expected_usd": "64.00", "engine": "placement",
                                "store": store.uid}
    assert request.offer == P4D


def test_a_placement_on_a_tier_without_a_launcher_is_recorded_as_planned_and_done(store):
    job_id = _job(store, "train")
    store.update_job(job_id, NOW, JobChange(reason_code="WaitingForCapacity", reason="was waiting"), event="x")
    Reconciler(store, {}, clock=lambda: NOW).apply(Plan(placements=(_placement(job_id),), queued=(), stats=STATS),
                                                   {job_id: store.job(job_id)})
    record = store.job(job_id)
    assert (record.state, record.attempt, record.target, record.nodes, record.handle) == (
        JobState.PLANNED, 1, "a100-0", ("a100-0",), None)
    assert (record.reason_code, record.reason) == (None, None)
    (decision,) = store.decisions(job_id)
    assert (decision.action, decision.attempt, decision.handle, decision.status) == ("plan", 1, None, "done")
    assert decision.payload["nodes"] == ["a100-0"] and decision.payload["tier"] == "onprem"


def test_work_on_a_tier_nobody_watches_does_not_stop_the_others_being_watched(store):
    cloud, local = _running_public(store, "cloud"), _running_on_prem(store, "local")  # the cloud tier comes first
    nodes = OnPremDouble(store, {f"{local}-a1": Observation(WorkStatus.SUCCEEDED, "exit 0")})
    Reconciler(store, {Tier.ONPREM: nodes}, clock=lambda: NOW + 60).observe()
    assert store.job(local).state is JobState.SUCCEEDED and store.job(cloud).state is JobState.RUNNING
