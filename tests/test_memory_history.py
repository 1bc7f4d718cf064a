"""Measured GPU memory applied to the next job: a finished run's NVML peak replaces the estimate of the next job with
the same facts (or team and name), and a run that ran out of GPU memory is placed again on a larger GPU.

The pure part (`placement.memory_history.remember`) on hand-made rows; then the service end to end on the private
pools of configs/inventory.yaml (private-l4: L4, 24 GB; private-a100: A100-80GB): a measured run recorded through
the real store (launch decision, samples as a telemetry agent's drained batch), and a run that fails with PyTorch's
CUDA out-of-memory error, reported by a test double of the private provider (the narrowest boundary: SkyPilot's
Kubernetes launch cannot be reached here).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clouds.base import LaunchRequest, Observation, WorkStatus
from clouds.telemetry_samples import Batch
from placement.memory_estimate import ModelFacts, estimate
from placement.memory_history import MemoryPeak, facts_key, ran_out_of_memory, remember
from placement.model import Demand, Job, Offer, Tier
from placement.service import Engine, ServiceConfig
from placement.store import Intent, JobChange, JobState, NewJob
from tests.test_debt_service import GIB, HOUR, NOW, T0, gpu_samples, process_samples

RESNET = {"model": "resnet50", "precision": "bf16", "optimizer": "sgd_momentum", "batch_size": 512}
OOM_LOG = ("Traceback (most recent call last):\n  File \"train.py\", line 88, in <module>\n"
           "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
           "22.05 GiB of which 1.12 GiB is free.")


def spec(name: str = "train-r", gpu_memory: dict | None = None, accelerators: dict | None = None) -> dict:
    placement = {"team": "vision", "tiers": ["private"], "expected_hours": 2}
    if gpu_memory is not None:
        placement["gpu_memory"] = gpu_memory
    return {"name": name, "resources": {"accelerators": accelerators or {"L4": 1, "A100-80GB": 1}},
            "run": "python train.py", "placement": placement}


def peak(job_id: str, *, team: str = "vision", name: str = "train-r", facts: str | None = None,
         gib: float | None = None, oom_on: tuple[str, float] | None = None, at: float = T0) -> MemoryPeak:
    gpu, memory = oom_on or ("A100-80GB", 80.0)
    return MemoryPeak(job_id, team, name, facts, gpu, memory, int(gib * GIB) if gib is not None else None,
                      oom_on is not None, at)


def job(gpu_memory_gb: float | None = 30.0, estimated: bool = True, **fields) -> Job:
    return Job(id="train-r-9", name="train-r", team="vision", priority="normal",
               demands=(Demand(accelerator="L4", accelerator_count=1),), gpu_memory_gb=gpu_memory_gb,
               gpu_memory_estimated=estimated, **fields)


# --- the pure part ------------------------------------------------------------------------------------------

def test_the_cuda_out_of_memory_message_is_recognised():
    assert ran_out_of_memory(OOM_LOG)
    assert ran_out_of_memory("RuntimeError: CUDA error: out of memory\nCUDA kernel errors might be ...")
    assert not ran_out_of_memory("Job entrypoint command failed with exit code 1: ZeroDivisionError")


def test_a_measured_peak_replaces_the_estimate_same_facts_first():
    key = facts_key(spec(gpu_memory=RESNET))
    other = facts_key(spec(gpu_memory={**RESNET, "batch_size": 64}))
    rows = [peak("a", facts=key, gib=14, at=T0), peak("b", facts=other, gib=5, at=T0 + 10)]
    remembered, [note] = remember(job(), key, rows, margin=0.1)
    assert remembered.gpu_memory_gb == pytest.approx(15.1)  # 14 GiB = 15.03e9 bytes, rounded up to 0.1 GB
    assert remembered.gpu_memory_estimated and remembered.gpu_memory_needed(0.1) == pytest.approx(16.7)
    assert note.startswith("measured peak 15.1 GB of a run with the same model facts (a on A100-80GB) replaces "
                           "the estimate 30 GB")
    # A job with other facts (a smaller batch) learns nothing from either run; one without facts, from the latest
    # run of the same team and name.
    smaller = facts_key(spec(gpu_memory={**RESNET, "batch_size": 8}))
    assert remember(job(), smaller, rows, margin=0.1) == (job(), ())
    remembered, [note] = remember(job(None), None, rows, margin=0.1)
    assert remembered.gpu_memory_gb == pytest.approx(5.4) and "same team and name (b on" in note
    assert note.endswith("replaces no figure; placed with the policy's 10% margin")
    # A need given outright stays as given; another team's run of another name says nothing.
    assert remember(job(30.0, estimated=False), key, rows, 0.1) == (job(30.0, estimated=False), ())
    assert remember(job(), None, [dataclasses.replace(rows[0], team="nlp")], 0.1) == (job(), ())


def test_a_run_out_of_memory_rules_out_gpus_no_larger_than_its_own():
    rows = [peak("train-r-9", oom_on=("L4", 24.0))]
    remembered, [note] = remember(job(10.0), None, rows, margin=0.1)
    assert (remembered.gpu_memory_gb, remembered.gpu_memory_estimated) == (24.1, False)
    assert note == "its last run ran out of GPU memory on L4 (24 GB): needs a GPU with more than 24 GB"
    similar, [note] = remember(dataclasses.replace(job(None), id="train-r-10"), None, rows, margin=0.1)
    assert similar.gpu_memory_gb == 24.1 and note.startswith("similar run train-r-9 ran out")
    # Its need already rules the GPU out: nothing changes but the note.
    big, [note] = remember(job(40.0), None, rows, margin=0.1)
    assert big == job(40.0) and "already rules that GPU out" in note


def test_the_store_keeps_the_latest_measured_run_per_team_name_and_facts_and_every_run_out_of_memory(tmp_path):
    store = engine_at(tmp_path, [NOW]).store
    key = facts_key(spec(gpu_memory=RESNET))
    for job_id, at, gib, facts in (("a", T0, 14, key), ("b", T0 + 10, 15, key), ("c", T0 + 5, 9, None),
                                   ("d", T0 + 1, 5, key)):
        store.record_memory_peak(peak(job_id, facts=facts, gib=gib, at=at, name="train-r" if job_id != "d" else "x"),
                                 attempt=1)
    store.record_memory_peak(peak("e", oom_on=("L4", 24.0), at=T0), attempt=1)
    store.record_memory_peak(peak("e", oom_on=("A100", 40.0), at=T0 + 2), attempt=2)
    kept = store.memory_peaks()
    assert [(p.job_id, p.out_of_memory) for p in kept] == [("e", True), ("d", False), ("e", True), ("c", False),
                                                           ("b", False)]
    assert [p.gpu_memory_gb for p in kept if p.out_of_memory] == [24.0, 40.0]


# --- the service --------------------------------------------------------------------------------------------

def engine_at(tmp_path: Path, clock: list[float], providers: dict | None = None) -> Engine:
    return Engine(ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=()),
                  providers or {}, clock=lambda: clock[0])


def measured_run(engine: Engine, data: dict, peak_gib: float) -> str:
    """A run of `data` on the on-prem A100-80GB node a100-0 from T0 to T0 + 1 h holding `peak_gib`, succeeded."""
    [job_id] = engine.store.add_jobs([NewJob(data["name"], data["name"], "vision", "normal", data,
                                             f"{data['name']}.yaml")], T0, batch="measured")
    handle = f"{job_id}-h"
    engine.store.record_decisions([Intent(job_id, 1, "launch", handle, {
        "tier": "onprem", "provider": "onprem", "gpu": "A100-80GB", "nodes": ["a100-0"]}, JobChange(
        state=JobState.RUNNING, attempt=1, tier=Tier.ONPREM, target="a100-0", handle=handle, nodes=("a100-0",), gpus=1,
        rate_per_hour=4.0, started_at=T0), status="done")], T0)
    engine.store.add_telemetry(Batch(tuple(gpu_samples("a100-0", 0, lambda t: (85.0, 300.0))),
                                     tuple(process_samples("a100-0", 0, 7, handle, T0, T0 + HOUR, peak_gib)), 0))
    engine.store.update_job(job_id, T0 + HOUR, JobChange(state=JobState.SUCCEEDED,
                                                         finished_at=T0 + HOUR), event="succeeded")
    return job_id


def pool_of(engine: Engine, job_id: str) -> str:
    record = engine.store.job(job_id)
    assert record.tier == "private", record
    return record.target.split("/")[0]


def test_a_jobs_measured_peak_overrides_the_estimate_next_time(tmp_path):
    """ResNet-50 at batch 512: estimated at more than an L4 holds with the margin, so it goes to an A100; its run
    held 14 GiB, so the next job with the same facts fits the cheaper L4."""
    figures = estimate(ModelFacts(**RESNET))
    assert figures.required_gb(0.1) > 24
    engine = engine_at(tmp_path, [NOW])
    [before] = engine.submit([{"source": "train-r.yaml#1", "data": spec(gpu_memory=RESNET)}])
    engine.round()
    assert pool_of(engine, before) == "private-a100"
    measured = measured_run(engine, spec(gpu_memory=RESNET), peak_gib=14)
    [after] = engine.submit([{"source": "train-r.yaml#1", "data": spec("train-r-again", gpu_memory=RESNET)}])
    engine.round()  # works out the finished run's figures, then places
    [kept] = engine.store.memory_peaks()
    assert (kept.job_id, kept.peak_bytes, kept.gpu_type, kept.out_of_memory) == (measured, 14 * GIB, "A100-80GB",
                                                                                 False)
    assert kept.facts == facts_key(spec(gpu_memory=RESNET))
    assert pool_of(engine, after) == "private-l4"
    [note] = engine.explain(after)["gpu_memory"]
    assert note.startswith(f"measured peak 15.1 GB of a run with the same model facts ({measured} on A100-80GB) "
                           f"replaces the estimate {figures.peak_gb:g} GB")


class PrivateDouble:
    """Test double of the private provider (SkyPilot's Kubernetes launches): serves the inventory's pool offers,
    records launches, and reports what each launch did as the test sets it."""

    tier = Tier.PRIVATE
    name = "private-double"

    def __init__(self, offers: list[Offer]):
        self._offers = offers
        self.launched: list[LaunchRequest] = []
        self.status: dict[str, Observation] = {}

    def offers(self, reserved: dict[str, tuple[float, float, float]]) -> list[Offer]:
        return list(self._offers)

    def launch(self, request: LaunchRequest) -> None:
        self.launched.append(request)
        self.status.setdefault(request.handle, Observation(WorkStatus.RUNNING))

    def observe(self, handles: list[str]) -> dict[str, Observation]:
        return {h: self.status.get(h, Observation(WorkStatus.MISSING)) for h in handles}

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        self.status[handle] = Observation(WorkStatus.STOPPED)

    def logs(self, handle: str) -> str:
        return ""


def test_a_job_that_ran_out_of_gpu_memory_is_placed_again_on_a_larger_gpu(tmp_path):
    clock = [NOW]
    probe = engine_at(tmp_path / "probe", clock)
    double = PrivateDouble([o for o in probe.static_offers if o.tier is Tier.PRIVATE])
    engine = engine_at(tmp_path, clock, {Tier.PRIVATE: double})
    [job_id] = engine.submit([{"source": "train-r.yaml#1", "data": spec()}])  # no memory hint: the cheapest GPU
    engine.round()
    assert pool_of(engine, job_id) == "private-l4"
    [first] = double.launched
    double.status[first.handle] = Observation(WorkStatus.FAILED, "Job entrypoint command failed with exit code 1, "
                                                                 "last available logs:\n" + OOM_LOG)
    clock[0] += 60
    engine.round()  # observes the failure, keeps the GPU it ran out on, and places the job again
    record = engine.store.job(job_id)
    assert (record.state, record.attempt, pool_of(engine, job_id)) == (JobState.LAUNCHING, 2, "private-a100")
    assert double.launched[-1].placement.gpu == "A100-80GB"
    events = {kind: detail for _, kind, detail in engine.store.events(job_id)}
    assert "torch.OutOfMemoryError: CUDA out of memory" in events["out-of-memory"]
    [ran_out] = engine.store.memory_peaks()
    assert (ran_out.job_id, ran_out.gpu_type, ran_out.gpu_memory_gb, ran_out.out_of_memory) == (job_id, "L4", 24.0,
                                                                                               True)
    # The same team and name, submitted again, keeps off the L4 too; and with only L4s allowed, it waits for memory.
    [again] = engine.submit([{"source": "train-r.yaml#1", "data": spec("train-r")}])
    [only_l4] = engine.submit([{"source": "train-r.yaml#1", "data": spec("train-r", accelerators={"L4": 1})}])
    clock[0] += 60
    engine.round()
    assert pool_of(engine, again) == "private-a100"
    waiting = engine.store.job(only_l4)
    assert waiting.state is JobState.PENDING and waiting.reason_code == "InsufficientGpuMemory"
    assert "needs 24.1 GB per GPU" in waiting.reason
    assert engine.explain(only_l4)["gpu_memory"] == [
        f"similar run {job_id} ran out of GPU memory on L4 (24 GB): needs a GPU with more than 24 GB"]


def test_the_reason_is_shown_while_the_job_waits_for_a_larger_gpu(tmp_path):
    clock = [NOW]
    probe = engine_at(tmp_path / "probe", clock)
    double = PrivateDouble([o for o in probe.static_offers if o.tier is Tier.PRIVATE])
    engine = engine_at(tmp_path, clock, {Tier.PRIVATE: double})
    [job_id] = engine.submit([{"source": "train-r.yaml#1", "data": spec()}])
    engine.round()
    double.status[double.launched[0].handle] = Observation(WorkStatus.FAILED, OOM_LOG)
    engine.reconciler.observe()  # before the next round places it
    [row] = engine.status(job_id)
    assert (row["state"], row["reason_code"]) == ("pending", "OutOfMemory")
    assert row["reason"] == "ran out of GPU memory on L4 (24 GB per GPU); placing it again on a GPU with more memory"
