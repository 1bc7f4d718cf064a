"""The reconciler records each downscale decision, with the job's new state, before it stops the work.

The store is the real SQLite store on disk; the provider is `StoreReadingProvider`, a double of the
provider protocol whose `terminate()` reads the store at the moment it is called and keeps what it
found, so each test can say what was already on disk when the work was stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clouds.base import LaunchRequest, Observation, WorkStatus
from placement.model import Tier
from placement.reconciler import Reconciler
from placement.solve.downscale import ActionKind, DownscaleAction
from placement.store import JobChange, JobState, NewJob, Store

NOW = 1_000_000.0


@dataclass(frozen=True)
class Seen:
    """What the store held when `terminate(handle)` was called."""

    handle: str
    grace_seconds: float
    decisions: list  # the job's decisions: (action, handle, status, payload)
    state: JobState
    reason_code: str | None
    spec: dict


class StoreReadingProvider:
    """A public-tier provider double: terminate() reads the job's decisions and state from the store."""

    tier = Tier.PUBLIC
    name = "aws"

    def __init__(self, store: Store, fail: bool = False):
        self.store, self.fail = store, fail
        self.seen: list[Seen] = []

    def offers(self, reserved):
        return []

    def launch(self, request: LaunchRequest) -> None:
        raise AssertionError("a downscale launches nothing")

    def observe(self, handles):
        return {h: Observation(WorkStatus.RUNNING) for h in handles}

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        record = self.store.job(handle.rsplit("-a", 1)[0])  # handles here are `<job id>-a<attempt>`
        self.seen.append(Seen(handle, grace_seconds,
                              [(d.action, d.handle, d.status, d.payload) for d in self.store.decisions(record.id)],
                              record.state, record.reason_code, record.spec))
        if self.fail:
            raise KeyboardInterrupt("killed while stopping the work")

    def logs(self, handle: str) -> str:
        return ""


def running_job(store: Store, name: str = "train", rate: float = 32.0) -> str:
    """A job running on the public tier under handle `<id>-a1`."""
    (job_id,) = store.add_jobs([NewJob(name, name, "ml", "low", {"name": name, "resources": {"use_spot": False}},
                                       "train.yaml#1")], NOW, batch=name)
    store.update_job(job_id, NOW, JobChange(state=JobState.RUNNING, attempt=1, tier=Tier.PUBLIC, target="p4d",
                                            offer_id="aws/us-east-1/p4d/on-demand", handle=f"{job_id}-a1",
                                            rate_per_hour=rate, started_at=NOW), event="running")
    return job_id


def action(job_id: str, kind: ActionKind, grace: float = 120.0) -> DownscaleAction:
    return DownscaleAction(job_id=job_id, kind=kind, team="ml", saves_per_hour=32.0, value_lost=1.0,
                           grace_seconds=grace, reason=f"global rate cap $10.00/h: {kind.value}")


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "p.db")
    yield store
    store.close()


@pytest.mark.parametrize("kind, state", [(ActionKind.STOP, JobState.PENDING), (ActionKind.STOP_IDLE, JobState.PENDING),
                                         (ActionKind.MOVE_TO_SPOT, JobState.PENDING),
                                         (ActionKind.SCALE_DOWN, JobState.CANCELLED)])
def test_a_downscale_is_on_disk_before_the_work_is_stopped(store, kind, state):
    job_id = running_job(store)
    provider = StoreReadingProvider(store)
    Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: NOW).downscale([action(job_id, kind)])

    (seen,) = provider.seen
    assert seen.handle == f"{job_id}-a1" and seen.grace_seconds == 120.0
    # At the moment of the stop, the decision and the job's new state were already stored.
    (decision,) = seen.decisions
    assert decision[:3] == ("terminate", f"{job_id}-a1", "intended")
    assert decision[3]["downscale"] == kind.value and decision[3]["grace_seconds"] == 120.0
    assert decision[3]["reason"] == f"global rate cap $10.00/h: {kind.value}"
    assert seen.state is state
    assert seen.reason_code == (None if kind is ActionKind.SCALE_DOWN else "Downscaled")
    assert seen.spec["resources"]["use_spot"] is (kind is ActionKind.MOVE_TO_SPOT)
    # Afterwards the decision is done, and nothing is left for a restart to finish.
    assert [d.status for d in store.decisions(job_id)] == ["done"]
    assert store.open_decisions() == []


def test_a_service_killed_while_stopping_finishes_the_recorded_stop_once(store):
    job_id = running_job(store)
    dying = StoreReadingProvider(store, fail=True)
    with pytest.raises(KeyboardInterrupt):
        Reconciler(store, {Tier.PUBLIC: dying}, clock=lambda: NOW).downscale([action(job_id, ActionKind.STOP)])
    assert store.job(job_id).state is JobState.PENDING
    (open_decision,) = store.open_decisions()
    assert open_decision.action == "terminate" and open_decision.handle == f"{job_id}-a1"

    restarted = StoreReadingProvider(store)
    reconciler = Reconciler(store, {Tier.PUBLIC: restarted}, clock=lambda: NOW + 5)
    reconciler.resume()
    (seen,) = restarted.seen
    assert seen.handle == f"{job_id}-a1" and seen.grace_seconds == 120.0
    assert store.open_decisions() == []
    reconciler.resume()  # nothing left: the stop is not repeated
    reconciler.downscale([action(job_id, ActionKind.STOP)])  # the job is no longer running: nothing to stop
    assert len(restarted.seen) == 1


def test_work_that_is_not_running_is_not_stopped(store):
    job_id = running_job(store)
    store.update_job(job_id, NOW, JobChange(state=JobState.SUCCEEDED, finished_at=NOW), event="succeeded")
    provider = StoreReadingProvider(store)
    Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: NOW).downscale([action(job_id, ActionKind.STOP)])
    assert provider.seen == [] and store.decisions(job_id) == []


class ObservedProvider(StoreReadingProvider):
    """The double again, now reporting the statuses a test sets for each handle."""

    def __init__(self, store: Store, statuses: dict[str, Observation]):
        super().__init__(store)
        self.statuses = statuses
        self.terminated: list[str] = []

    def observe(self, handles):
        return {h: self.statuses.get(h, Observation(WorkStatus.MISSING)) for h in handles}

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        super().terminate(handle, grace_seconds)
        self.terminated.append(handle)


def launching_job(store: Store, name: str) -> str:
    job_id = running_job(store, name)
    store.update_job(job_id, NOW, JobChange(state=JobState.LAUNCHING, started_at=None), event="launching")
    return job_id


def test_observed_statuses_become_job_states_with_their_reasons(store):
    starts, done, broke, lost = (launching_job(store, n) for n in ("starts", "done", "broke", "lost"))
    for job_id in (done, broke, lost):
        store.update_job(job_id, NOW, JobChange(state=JobState.RUNNING, started_at=NOW), event="running")
    log = "Traceback (most recent call last):\n" + "\n".join(f"  frame {i}" for i in range(10)) + "\nOOM: killed"
    provider = ObservedProvider(store, {f"{starts}-a1": Observation(WorkStatus.RUNNING, "up"),
                                        f"{done}-a1": Observation(WorkStatus.SUCCEEDED, "exit 0"),
                                        f"{broke}-a1": Observation(WorkStatus.FAILED, log),
                                        f"{lost}-a1": Observation(WorkStatus.LOST, "node n3 died")})
    Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: NOW + 3600).observe()

    running = store.job(starts)
    assert running.state is JobState.RUNNING and running.started_at == NOW + 3600
    assert ("running" in [kind for _, kind, _ in store.events(starts)])
    succeeded = store.job(done)
    assert (succeeded.state, succeeded.finished_at, succeeded.reason_code) == (JobState.SUCCEEDED, NOW + 3600, None)
    failed = store.job(broke)
    assert (failed.state, failed.finished_at, failed.reason_code) == (JobState.FAILED, NOW + 3600, "Failed")
    assert failed.reason == "Traceback (most recent call last):\n...\n  frame 8\n  frame 9\nOOM: killed"
    requeued = store.job(lost)
    assert (requeued.state, requeued.handle, requeued.tier, requeued.target, requeued.nodes, requeued.reason_code) == \
        (JobState.PENDING, None, None, None, (), "Requeued")
    assert requeued.reason == "its node was lost (node n3 died); placing it again"
    # Ended cloud work is torn down once its end is recorded; running and requeued work is not.
    assert sorted(provider.terminated) == sorted([f"{done}-a1", f"{broke}-a1"])
    # An hour of running work is charged at its rate; work that only just started is not charged yet.
    assert store.spent(done) == pytest.approx(32.0) and store.spent(starts) == 0.0


def test_cancelling_running_work_records_the_stop_first_and_pending_work_needs_no_stop(store):
    job_id = running_job(store)
    provider = StoreReadingProvider(store)
    reconciler = Reconciler(store, {Tier.PUBLIC: provider}, clock=lambda: NOW + 60)
    reconciler.cancel(store.job(job_id), reason="user asked")
    (seen,) = provider.seen
    assert seen.decisions == [("terminate", f"{job_id}-a1", "intended", {"tier": "public", "reason": "user asked"})]
    assert seen.state is JobState.CANCELLED
    cancelled = store.job(job_id)
    assert (cancelled.state, cancelled.finished_at, cancelled.reason) == (JobState.CANCELLED, NOW + 60, "user asked")
    assert [d.status for d in store.decisions(job_id)] == ["done"]

    (waiting,) = store.add_jobs([NewJob("w", "w", "ml", "low", {"name": "w"}, "w.yaml#1")], NOW, batch="w")
    reconciler.cancel(store.job(waiting), reason="not needed")
    assert len(provider.seen) == 1 and store.decisions(waiting) == []
    assert store.job(waiting).state is JobState.CANCELLED and store.job(waiting).reason == "not needed"
    assert "cancelled" in [kind for _, kind, _ in store.events(waiting)]
    reconciler.cancel(store.job(waiting))  # already ended: nothing changes
    assert store.job(waiting).reason == "not needed"
