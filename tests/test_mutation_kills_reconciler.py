"""What the reconciler records when it acts and watches (placement/reconciler.py), beyond tests/test_reconciler.py.

Written against the mutants mutmut left alive (docs/mutation.md). The store is the real SQLite store; the
provider doubles are those of tests/test_reconciler.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clouds.base import LaunchRequest, Observation, WorkStatus
from placement.model import Placement, Plan, Preemption, SolveStats, Tier
from placement.reconciler import Reconciler, brief
from placement.memory_history import facts_key
from placement.store import Intent, JobChange, JobState, NewJob, Store
from tests.solver_fixtures import onprem
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
    assert f"{job_id}: its gpu_memory facts do not parse" in caplog.text
