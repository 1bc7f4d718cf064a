"""Recommendations of flagged jobs used by the next submission of a similar job (same team and name).

The pure part (`placement.rightsizing.rightsize`) on hand-made flags; then the service end to end: a flagged run of
`train-a` recorded through the real store (launch decision, samples as a telemetry agent's drained batch), a
round that assesses it, and a second `train-a` placed on the private pools of configs/inventory.yaml.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clouds.telemetry_samples import Batch
from placement.debt import FlagKind, Recommendation
from placement.model import Demand, Job, Tier
from placement.rightsizing import SKY_DEFAULT_CPUS, SimilarJobFlag, rightsize, shape
from placement.debt_accounting import SAMPLE_LAG_S
from placement.service import Engine, ServiceConfig
from placement.store import Intent, JobChange, JobState, NewJob
from policies.debt import DebtSettings
from tests.test_debt_service import GIB, HOUR, NOW, T0, gpu_samples, process_samples

SETTINGS = DebtSettings()


def job(*demands: Demand, **fields) -> Job:
    return Job(id="train-a-9", name="train-a", team="vision", priority="normal", demands=demands, **fields)


def flag(kind: FlagKind, gpu_type: str | None, gpus: float, ran_on: str | None = "A100-80GB",
         peak_gib: float | None = 15.0) -> SimilarJobFlag:
    text = "run on CPU only" if gpu_type is None else f"ask for {gpu_type}:{gpus:g}"
    return SimilarJobFlag("train-a-1", kind, "why", Recommendation(gpu_type, gpus, text), ran_on,
                          int(peak_gib * GIB) if peak_gib is not None else None)


A100 = Demand(accelerator="A100-80GB", accelerator_count=1, cpus=16, memory_gb=64, cloud="aws")
SMALLER = flag(FlagKind.OVERSIZED_MEMORY, "L4", 1)


def test_switched_off_the_job_is_unchanged_and_the_flag_is_shown() -> None:
    original = job(A100)
    rightsized, notes = rightsize(original, [SMALLER], SETTINGS, apply=False)
    assert rightsized == original
    [note] = notes
    assert note.demand is None
    assert note.note == ("similar job train-a-1 was flagged (OversizedGpuMemory): ask for L4:1; "
                         "shown only (policy debt.apply_recommendations is off)")


def test_a_smaller_gpu_is_added_after_the_users_demands_at_their_first_rank() -> None:
    ordered = job(dataclasses.replace(A100, rank=0), Demand(accelerator="H100", accelerator_count=1, rank=1))
    rightsized, [note] = rightsize(ordered, [SMALLER], SETTINGS, apply=True)
    assert rightsized.demands[:2] == ordered.demands  # the user's own demands, untouched and first
    added = rightsized.demands[2]
    assert (added.accelerator, added.accelerator_count, added.rank) == ("L4", 1, 0)
    assert (added.cpus, added.memory_gb, added.cloud) == (16, 64, "aws")  # the rest of the user's shape
    assert note.demand == added and note.note.endswith("offered L4:1 as an alternative")
    # 15 GiB observed x 1.2 headroom is the floor; the user's A100-80GB and H100 both hold it, so it applies
    assert rightsized.gpu_memory_gb == pytest.approx(15 * 1.2)


def test_the_memory_floor_is_not_raised_where_it_would_exclude_a_users_gpu() -> None:
    with_t4 = job(A100, Demand(accelerator="T4", accelerator_count=1))
    rightsized, _ = rightsize(with_t4, [SMALLER], SETTINGS, apply=True)
    assert rightsized.gpu_memory_gb is None and shape(rightsized.demands[-1]) == "L4:1"


def test_the_jobs_own_memory_floor_stays_and_rules_out_a_gpu_too_small() -> None:
    needs_30 = job(A100, gpu_memory_gb=30.0)
    rightsized, [note] = rightsize(needs_30, [SMALLER], SETTINGS, apply=True)
    assert rightsized == needs_30
    assert note.demand is None and "needs 30.0 GB per GPU and 1 of a L4 has 24 GB" in note.note
    peak_too_big = flag(FlagKind.OVERSIZED_MEMORY, "L4", 1, peak_gib=21)  # 21 GiB x 1.2 > 24 GB
    assert rightsize(job(A100), [peak_too_big], SETTINGS, apply=True)[0] == job(A100)


def test_a_fraction_of_a_gpu_must_hold_the_peak_in_its_share_of_the_memory() -> None:
    # A quarter of an A100-80GB has 20 GB of it: a 15 GiB peak (18 GB with headroom) fits, a 20 GiB one does not.
    fits = flag(FlagKind.LOW_UTILIZATION, "A100-80GB", 0.25, peak_gib=15)
    assert shape(rightsize(job(A100), [fits], SETTINGS, apply=True)[0].demands[-1]) == "A100-80GB:0.25"
    too_big = flag(FlagKind.LOW_UTILIZATION, "A100-80GB", 0.25, peak_gib=20)
    rightsized, [note] = rightsize(job(A100), [too_big], SETTINGS, apply=True)
    assert rightsized == job(A100) and "0.25 of a A100-80GB has 20 GB" in note.note


def test_fewer_gpus_are_not_offered_when_the_peak_may_be_a_shard() -> None:
    eight = dataclasses.replace(A100, accelerator_count=8)
    light = flag(FlagKind.LOW_UTILIZATION, "A100-80GB", 2, peak_gib=10)
    assert shape(rightsize(job(eight), [light], SETTINGS, apply=True)[0].demands[-1]) == "A100-80GB:2"
    heavy = flag(FlagKind.LOW_UTILIZATION, "A100-80GB", 2, peak_gib=45)  # 54 GB with headroom > half of 80
    rightsized, [note] = rightsize(job(eight), [heavy], SETTINGS, apply=True)
    assert rightsized == job(eight) and "shard" in note.note


def test_cpu_only_and_fraction_of_a_gpu_alternatives() -> None:
    no_cpus = Demand(accelerator="A100-80GB", accelerator_count=1)
    cpu, [note] = rightsize(job(no_cpus), [flag(FlagKind.NO_GPU_USE, None, 0.0, peak_gib=None)], SETTINGS,
                            apply=True)
    [_, added] = cpu.demands
    assert added.accelerator is None and added.accelerator_count == 0 and added.cpus == SKY_DEFAULT_CPUS
    assert shape(note.demand) == "CPU"
    quarter, _ = rightsize(job(A100), [flag(FlagKind.LOW_UTILIZATION, "A100-80GB", 0.25)], SETTINGS, apply=True)
    assert shape(quarter.demands[-1]) == "A100-80GB:0.25"


def test_pinned_instance_types_multi_node_jobs_and_duplicates_keep_their_shape() -> None:
    pinned = job(dataclasses.replace(A100, instance_type="p4de.24xlarge"))
    assert "pins an instance type" in rightsize(pinned, [SMALLER], SETTINGS, apply=True)[1][0].note
    multi = job(A100, num_nodes=2)
    assert "2-node job keeps its shape" in rightsize(multi, [SMALLER], SETTINGS, apply=True)[1][0].note
    already = job(A100, Demand(accelerator="L4", accelerator_count=1))
    rightsized, [note] = rightsize(already, [SMALLER], SETTINGS, apply=True)
    assert rightsized.demands == already.demands and "already among its demands" in note.note


# --- the service ----------------------------------------------------------------------------------------


def train_a(gpu_memory_gb: float | None = None) -> list[dict]:
    placement = {"team": "vision", "tiers": ["private"], "expected_hours": 2}
    if gpu_memory_gb is not None:
        placement["gpu_memory"] = {"per_gpu_gb": gpu_memory_gb}
    return [{"source": "train-a.yaml#1", "data": {"name": "train-a", "resources": {"accelerators": "A100-80GB:1"},
                                                   "run": "python train.py", "placement": placement}}]


def engine_with(tmp_path: Path, apply: bool, name: str = "p.db") -> Engine:
    policy = tmp_path / f"policy-{apply}.yaml"
    policy.write_text(f"name: t\ndebt: {{apply_recommendations: {str(apply).lower()}}}\n")
    return Engine(ServiceConfig(store_path=str(tmp_path / name), policy=str(policy), round_interval_s=None,
                                catalogs=()), {}, clock=lambda: NOW)


def run_of_train_a(engine: Engine, node: str, end: float, peak_gib: float,
                   end_state: JobState | None = JobState.SUCCEEDED) -> str:
    """train-a launched on one on-prem A100-80GB from T0 (as the reconciler records it), busy at 85% while holding
    `peak_gib` until `end`, then ended in `end_state` (None: left running); its samples arrive as a telemetry
    agent's drained batch."""
    [job_id] = engine.store.add_jobs([NewJob("train-a", "train-a", "vision", "normal", {"name": "train-a"},
                                             "train-a.yaml")], T0, batch=f"{node}-{end}")
    handle = f"{job_id}-h"
    engine.store.record_decisions([Intent(job_id, 1, "launch", handle, {
        "tier": "onprem", "provider": "onprem", "gpu": "A100-80GB", "nodes": [node]}, JobChange(
        state=JobState.RUNNING, attempt=1, tier=Tier.ONPREM, target=node, handle=handle, nodes=(node,), gpus=1,
        rate_per_hour=4.0, started_at=T0), status="done")], T0)
    engine.store.add_telemetry(Batch(tuple(gpu_samples(node, 0, lambda t: (85.0, 300.0))),
                                     tuple(process_samples(node, 0, 7, handle, T0, end, peak_gib)), 0))
    if end_state is not None:
        engine.store.update_job(job_id, end, JobChange(state=end_state, finished_at=end), event=end_state.value)
    return job_id


def flagged_run(engine: Engine, end_state: JobState = JobState.SUCCEEDED) -> str:
    """An hour at 85% holding 15 GiB: a L4 (24 GB) would do."""
    return run_of_train_a(engine, "a100-0", T0 + HOUR, 15, end_state)


def pool_of(engine: Engine, job_id: str) -> str:
    record = engine.store.job(job_id)
    assert record.tier == "private", record
    return record.target.split("/")[0]


@pytest.mark.parametrize("end_state", [JobState.SUCCEEDED, JobState.CANCELLED])
def test_the_next_train_a_goes_to_the_cheaper_recommended_gpu_only_with_the_switch_on(tmp_path, end_state) -> None:
    placed = {}
    for apply in (True, False):
        engine = engine_with(tmp_path, apply, name=f"{apply}.db")
        flagged = flagged_run(engine, end_state)
        [second] = engine.submit(train_a())
        engine.round()
        placed[apply] = pool_of(engine, second)
        [row] = engine.status(second)
        [note] = row["rightsizing"]
        assert note.startswith(f"similar job {flagged} was flagged (OversizedGpuMemory): a L4 (24 GB) fits")
        assert note.endswith("offered L4:1 as an alternative" if apply else
                             "shown only (policy debt.apply_recommendations is off)")
        explained = engine.explain(second)
        assert [r["alternative"] for r in explained["rightsizing"]] == (["L4:1"] if apply else [None])
        sources = {a["offer"]: a["from_recommendation"] for a in explained["alternatives"]}
        assert sources == ({"private/private-l4/L4": f"similar job {flagged} (OversizedGpuMemory)",
                            "private/private-a100/A100-80GB": None} if apply else
                           {"private/private-a100/A100-80GB": None})
        assert engine.status(flagged)[0]["rightsizing"] == []  # the flagged run itself
    assert placed == {True: "private-l4", False: "private-a100"}


def test_a_failed_run_recommends_nothing(tmp_path) -> None:
    engine = engine_with(tmp_path, apply=True)
    flagged_run(engine, JobState.FAILED)  # the same hour at 85% holding 15 GiB, but it failed
    [second] = engine.submit(train_a())
    engine.round()
    assert pool_of(engine, second) == "private-a100"
    assert engine.status(second)[0]["rightsizing"] == []


def test_the_jobs_memory_need_still_applies_to_the_alternative(tmp_path) -> None:
    engine = engine_with(tmp_path, apply=True)
    flagged_run(engine)
    [second] = engine.submit(train_a(gpu_memory_gb=30))  # more than a L4's 24 GB
    engine.round()
    assert pool_of(engine, second) == "private-a100"
    assert "not applied: it needs 30.0 GB per GPU" in engine.status(second)[0]["rightsizing"][0]


def test_a_later_flagged_run_replaces_the_recommendation_and_an_unflagged_one_keeps_it(tmp_path) -> None:
    engine = engine_with(tmp_path, apply=True)
    first = flagged_run(engine)
    assert engine.accounting.assess_finished(NOW) == 1 and engine.accounting.assess_finished(NOW) == 0  # once per job
    [kept] = engine.store.recommendations()[("vision", "train-a")]
    assert (kept.job_id, kept.recommendation.gpu_type, kept.ran_on) == (first, "L4", "A100-80GB")
    assert kept.peak_mem_bytes == 15 * GIB
    # 10 minutes observed (under the 30-minute window): not flagged, the recommendation stays
    run_of_train_a(engine, "a100-1", T0 + 600, 30)
    assert engine.accounting.assess_finished(NOW) == 1
    assert [f.job_id for f in engine.store.recommendations()[("vision", "train-a")]] == [first]
    # an hour holding 30 GiB (x 1.2 = 36 GiB): flagged for an A100 (40 GB), which replaces the L4
    later = run_of_train_a(engine, "a100-1", T0 + HOUR, 30)
    engine.accounting.assess_finished(NOW)
    [replaced] = engine.store.recommendations()[("vision", "train-a")]
    assert (replaced.job_id, replaced.recommendation.gpu_type) == (later, "A100")


def test_a_run_checkpointed_midway_is_flagged_as_a_whole(tmp_path) -> None:
    """40 minutes up to the checkpoint and 20 after: only together are they the 30 minutes a flag needs."""
    engine = engine_with(tmp_path, apply=True)
    job_id = run_of_train_a(engine, "a100-0", T0 + HOUR, 15, end_state=None)
    assert engine.accounting.checkpoint_usage(T0 + 40 * 60 + SAMPLE_LAG_S) == 1
    engine.store.update_job(job_id, T0 + HOUR, JobChange(state=JobState.SUCCEEDED,
                                                         finished_at=T0 + HOUR), event="succeeded")
    engine.accounting.assess_finished(NOW)
    [flag] = engine.store.recommendations()[("vision", "train-a")]
    assert (flag.job_id, flag.recommendation.gpu_type, flag.peak_mem_bytes) == (job_id, "L4", 15 * GIB)
