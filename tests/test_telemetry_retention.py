"""Telemetry retention: raw samples folded into per-minute rows, kept a while longer, then deleted.

Debt read from the folded rows must match debt read from the raw samples: checked on the real H100 samples
(replayed through the real NvmlSampler over the `FakeNvml` double of tests/test_telemetry.py) and on a
hand-made history driven through the service's engine and store.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import pytest

from clouds.telemetry import HANDLE_ENV, Batch, GpuSample, NvmlSampler, ProcessSample
from placement.debt import Allocation, GpuMinute, account, fold_minutes
from placement.model import Tier
from placement.debt_accounting import COMPACTION_INTERVAL_S
from placement.service import Engine, ServiceConfig
from placement.store import Intent, JobChange, JobState, NewJob, Store
from tests.test_telemetry import DEVICE_JSON, HANDLE, FakeNvml, attributor_for, h100_rows

HOUR, DAY = 3600.0, 86400.0
GIB = 1024 ** 3


def sample(t: float, util: float, power: float | None = 100.0, mem: int = 0, gpu: int = 0) -> GpuSample:
    return GpuSample("n", gpu, t, util, 0.0, mem, 80 * GIB, power)


def test_fold_by_hand() -> None:
    """GPU 0 every 20 s from t=50; GPU 1 at 0 and 100 (a gap over max_sample_gap_s). Cutoff 120 s."""
    samples = [sample(50, 10, 100, mem=1), sample(70, 50, 200, mem=5), sample(90, 100, None, mem=3),
               sample(110, 0, 100), sample(0, 40, 80, gpu=1), sample(100, 90, 80, gpu=1)]
    samples.sort(key=lambda s: (s.gpu_index, s.t))
    rows, folded_before = fold_minutes(samples, {("n", 0): 130.0}, cutoff=120.0, max_gap_s=60.0)
    by_key = {(r.gpu_index, int(r.t // 60)): r for r in rows}
    # GPU 0, minute 0: [50, 60) of the first sample; minute 1: [60, 70) at 10%, [70, 90) at 50%, [90, 110) at 100%
    assert by_key[(0, 0)] == GpuMinute("n", 0, 50.0, 10.0, 10.0, 100.0, 1, 80 * GIB)
    minute_1 = by_key[(0, 1)]
    assert (minute_1.t, minute_1.seconds, minute_1.mem_used_bytes) == (60.0, 50.0, 5)
    assert minute_1.util_gpu_pct == pytest.approx((10 * 10 + 20 * 50 + 20 * 100) / 50)
    assert minute_1.power_w == pytest.approx((10 * 100 + 20 * 200) / 30)  # over the seconds with a reading
    # the sample at 110 holds until 130, past the cutoff: it stays raw
    # GPU 1: the sample at 0 holds 60 s (the gap limit); the one at 100 is the GPU's last and holds no time
    assert by_key[(1, 0)].seconds == 60.0 and (1, 1) not in by_key
    assert folded_before == {("n", 0): 110.0, ("n", 1): 120.0}


def test_a_fold_continues_the_minute_an_earlier_fold_began(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.add_telemetry(Batch(tuple(sample(t, 100.0 if t < 110 else 0.0) for t in range(50, 200, 20)), (), 0))
    first = store.compact_telemetry(fold_before=120, delete_before=0, max_gap_s=60)
    assert (first.gpu_samples_folded, first.minute_rows_written) == (3, 2)  # 50, 70 and 90; 110 stays raw
    assert [s.t for s in store.gpu_samples(0, 1000)] == [110, 130, 150, 170, 190]
    store.compact_telemetry(fold_before=180, delete_before=0, max_gap_s=60)
    minute_1 = next(m for m in store.gpu_minutes(0, 1000) if m.t // 60 == 1)
    assert (minute_1.t, minute_1.seconds) == (60.0, 60.0)  # [60, 110) from the first fold, [110, 120) from this one
    assert minute_1.util_gpu_pct == pytest.approx(50 / 60 * 100)
    assert [s.t for s in store.gpu_samples(0, 1000)] == [170, 190]


def test_process_samples_keep_each_launchs_largest_memory_per_minute(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    held = [(0, 1, "h", 2), (0, 2, "h", 3), (10, 1, "h", 6), (10, 2, "h", 0), (30, 9, None, 7), (70, 1, "h", 1)]
    store.add_telemetry(Batch((), tuple(ProcessSample("n", 0, t, pid, handle, gib * GIB)
                                        for t, pid, handle, gib in held), 0))
    store.compact_telemetry(fold_before=130, delete_before=0, max_gap_s=60)
    folded = store.process_samples(0, 1000)
    # minute 0: h held 2 + 3 = 5 GiB at t=0 and 6 + 0 at t=10, so 6; the unattributed pid 9 apart
    assert [(p.t, p.handle, p.mem_used_bytes) for p in folded] == [(0, "h", 6 * GIB), (30, None, 7 * GIB),
                                                                    (70, "h", 1 * GIB)]
    assert store.compact_telemetry(fold_before=130, delete_before=60, max_gap_s=60).expired_rows == 2
    assert [p.t for p in store.process_samples(0, 1000)] == [70]


# --- the same debt from folded rows -----------------------------------------------------------------------


def assert_same_debt(raw, folded, rel: float = 0.01) -> None:
    """Per job: the same allocated GPU-hours, and observed, utilized and energy within `rel`."""
    raw_jobs, folded_jobs = ({j.allocation.handle: j.usage for j in r.jobs} for r in (raw, folded))
    assert raw_jobs.keys() == folded_jobs.keys()
    for handle, before in raw_jobs.items():
        after = folded_jobs[handle]
        assert after.allocated_gpu_hours == before.allocated_gpu_hours, handle
        for name in ("observed_gpu_hours", "utilized_gpu_hours", "energy_kwh", "debt_usd"):
            assert getattr(after, name) == pytest.approx(getattr(before, name), rel=rel), (handle, name)
        assert after.peak_mem_bytes == before.peak_mem_bytes, handle
    assert {(f.handle, f.kind) for f in folded.flags} == {(f.handle, f.kind) for f in raw.flags}


def test_the_real_h100_samples_give_the_same_debt_folded(tmp_path: Path) -> None:
    """36 minutes of the measured H100 run (its 270 s replayed 8 times), folded whole."""
    rows = h100_rows()
    fake = FakeNvml(rows, json.loads(DEVICE_JSON.read_text()))
    sampler = NvmlSampler("h100-0", nvml=fake, clock=fake.clock,
                          attribute=attributor_for({4242: {HANDLE_ENV: HANDLE}}).attribute)
    readings = [sampler.sample() for _ in range(8 * len(rows))]
    store = Store(tmp_path / "s.db")
    store.add_telemetry(Batch(tuple(g for r in readings for g in r.gpus),
                              tuple(p for r in readings for p in r.processes), 0))
    t0, t1 = readings[0].gpus[0].t, readings[-1].gpus[0].t
    allocation = Allocation(HANDLE, "gpt2", "nlp", "h100-0", "H100", 1, t0 + 7.3, t1 - 11.1, 12.29, 1.1, 400.0)

    def report():
        return account([allocation], store.gpu_samples(t0, t1), store.process_samples(t0, t1), t0, t1,
                       gpu_minutes=store.gpu_minutes(t0, t1))

    raw = report()
    done = store.compact_telemetry(fold_before=t1 + 120, delete_before=t0 - DAY, max_gap_s=60)
    assert store.gpu_samples(t0, t1) == [] and done.gpu_samples_folded == len(readings)
    assert done.minute_rows_written == pytest.approx((t1 - t0) / 60, abs=2)
    folded = report()
    assert_same_debt(raw, folded)
    [usage] = [j.usage for j in folded.jobs]
    assert 0.05 < usage.mean_utilization < 0.07  # the run's 6%
    assert {f.kind.value for f in folded.flags} == {"LowUtilization"}


def launched(store: Store, name: str, node: str, gpus: int, start: float, end: float | None, rate: float,
             team: str = "nlp") -> str:
    """An on-prem launch as the reconciler records it, finished at `end` (None: still running)."""
    [job_id] = store.add_jobs([NewJob(name, name, team, "normal", {"name": name}, f"{name}.yaml")], start, name)
    store.record_decisions([Intent(job_id, 1, "launch", f"{name}-h", {"tier": "onprem", "provider": "onprem",
                                                                        "gpu": "A100-80GB", "nodes": [node]},
                                   JobChange(state=JobState.RUNNING, attempt=1, tier=Tier.ONPREM, target=node,
                                             handle=f"{name}-h", nodes=(node,), gpus=gpus, rate_per_hour=rate,
                                             started_at=start), status="done")], start)
    if end is not None:
        store.update_job(job_id, end, JobChange(state=JobState.SUCCEEDED, finished_at=end), event="succeeded")
    return job_id


def history(store: Store, t0: float) -> None:
    """Node n, 2 GPUs sampled every 5 s for 3 h from t0 (not on a minute), utilization a saw-tooth and power
    following it; the node's sampler out for 10 minutes. Job x (1 GPU, GPU 0) from t0 + 37 s to t0 + 2 h 13 s at
    $4/h; job y (2 GPUs) from t0 + 1 h to t0 + 3 h, sharing GPU 0 with x, at $8/h."""
    outage = (t0 + 1.5 * HOUR, t0 + 1.5 * HOUR + 600)
    gpus, processes = [], []
    for step in range(int(3 * HOUR / 5) + 1):
        t = t0 + 5 * step
        for gpu in (0, 1) if not outage[0] <= t < outage[1] else ():
            util = (step * (3 + gpu)) % 101
            gpus.append(GpuSample("n", gpu, t, util, 0.0, 0, 80 * GIB, 60 + 3.4 * util))
        if t0 + 37 <= t <= t0 + 2 * HOUR + 13:
            processes.append(ProcessSample("n", 0, t, 11, "x-h", (8 + step % 7) * GIB))
        if t >= t0 + HOUR:
            processes += [ProcessSample("n", gpu, t, 22, "y-h", (20 + step % 5) * GIB) for gpu in (0, 1)]
    store.add_telemetry(Batch(tuple(gpus), tuple(processes), 0))
    launched(store, "x", "n", 1, t0 + 37, t0 + 2 * HOUR + 13, 4.0)
    launched(store, "y", "n", 2, t0 + HOUR, t0 + 3 * HOUR, 8.0)


def test_a_hand_made_history_gives_the_same_debt_folded_in_rounds(tmp_path: Path) -> None:
    """The engine folds what is older than its raw retention (1 h here) in a round, at most once an hour."""
    t0 = 1_700_000_007.0
    clock = [t0 + 3 * HOUR]
    engine = Engine(ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=(),
                                  telemetry_raw_retention_s=HOUR, telemetry_minute_retention_s=30 * DAY),
                    {}, clock=lambda: clock[0])
    history(engine.store, t0)
    records = engine.store.jobs()

    def report():
        return engine.accounting.report(records, t0, t0 + 3 * HOUR)[0]

    raw = report()
    assert raw.flags and raw.jobs[0].usage.observed_gpu_hours < raw.jobs[0].usage.allocated_gpu_hours  # outage
    engine.round()  # folds everything sampled before t0 + 2 h
    assert engine.store.gpu_samples(t0, t0 + 2 * HOUR - 60) == [] and engine.store.gpu_minutes(t0, t0 + 3 * HOUR)
    assert_same_debt(raw, report())
    clock[0] += COMPACTION_INTERVAL_S / 2
    assert engine.accounting.compact_telemetry(clock[0]) is None  # ran less than an hour ago
    clock[0] += COMPACTION_INTERVAL_S / 2
    engine.round()  # and now once more: everything before t0 + 3 h
    cutoff = math.floor((clock[0] - HOUR) / 60) * 60  # the retention's edge, taken down to a minute
    left = engine.store.gpu_samples(t0, cutoff - 1e-6)
    assert sorted(s.gpu_index for s in left) == [0, 1]  # each GPU's last sample before it: its hold reaches past
    assert_same_debt(raw, report())
    assert engine.store.meta("telemetry_compacted_at") == repr(clock[0])


def test_rows_older_than_the_long_retention_are_deleted(tmp_path: Path) -> None:
    t0 = 1_700_000_007.0
    store = Store(tmp_path / "s.db")
    history(store, t0)
    store.compact_telemetry(fold_before=t0 + 3 * HOUR + 60, delete_before=t0 + HOUR, max_gap_s=60)
    assert min(m.t for m in store.gpu_minutes(0, math.inf)) >= t0 + HOUR
    assert min(p.t for p in store.process_samples(0, math.inf)) >= t0 + HOUR


def test_retention_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="telemetry_raw_retention_s must be > 0 and at most "
                                         "telemetry_minute_retention_s"):
        ServiceConfig(telemetry_raw_retention_s=3 * DAY, telemetry_minute_retention_s=DAY)


# --- what it costs --------------------------------------------------------------------------------------


def busy_node(store: Store, t0: float, hours: float, step: float = 5.0) -> None:
    """One 8-GPU node sampled every `step` s for `hours` from t0, each GPU held by its own running job (teams
    nlp and vision in turn, one process each, stored an hour of samples at a time as agents drain them)."""
    for gpu in range(8):
        launched(store, f"job{gpu}", "node8", 1, t0, None, 4.0, team=("nlp", "vision")[gpu % 2])
    count = int(hours * HOUR / step) + 1
    per_batch = int(HOUR / step)
    for first in range(0, count, per_batch):
        steps = range(first, min(first + per_batch, count))
        store.add_telemetry(Batch(
            tuple(GpuSample("node8", gpu, t0 + i * step, (i * (gpu + 1)) % 101, 0.0, (10 + gpu) * GIB, 80 * GIB,
                            100.0 + 3 * ((i * (gpu + 1)) % 101)) for gpu in range(8) for i in steps),
            tuple(ProcessSample("node8", gpu, t0 + i * step, 100 + gpu, f"job{gpu}-h", (10 + gpu) * GIB)
                  for gpu in range(8) for i in steps), 0))


def measure(hours: float = 24.0) -> dict[str, float]:
    """Seconds the service spends on `hours` of 5 s samples of one 8-GPU node: the dashboard export
    (`team_debt`, last hour); `status` (every job's energy since it started) with no checkpoint, the first
    checkpoint pass, and `status` after it; `debt` over the whole span; compactions folding its first hour (what
    an hourly compaction folds), then the rest, and the export, `status` and `debt` after them. Also the largest
    relative difference of a job's utilized GPU-hours read from minute rows rather than raw samples.
    `python -c 'from tests.test_telemetry_retention import measure; print(measure())'`"""
    with tempfile.TemporaryDirectory() as tmp:
        now = 1_700_000_000.0 + hours * HOUR
        engine = Engine(ServiceConfig(store_path=f"{tmp}/p.db", round_interval_s=None, catalogs=()), {},
                        clock=lambda: now)
        busy_node(engine.store, now - hours * HOUR, hours)
        result: dict[str, float] = {}

        def timed(name: str, call, repeat: int = 3):
            """The best of `repeat` runs (the machine is shared); once for what changes the store."""
            seconds = []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = call()
                seconds.append(time.perf_counter() - started)
            result[name] = round(min(seconds), 3)
            return answer

        timed("export_s", lambda: engine.team_debt(HOUR))
        timed("status_without_checkpoint_s", engine.status)
        timed("first_checkpoint_s", lambda: engine.accounting.checkpoint_usage(now), repeat=1)
        timed("status_s", engine.status)
        raw = timed("debt_s", lambda: engine.debt(since_s=hours * HOUR))
        first_hour = engine.store.compact_telemetry(now - (hours - 1) * HOUR, now - 30 * DAY, 60)
        result["compaction_first_hour_s"] = round(first_hour.seconds, 3)  # what an hourly compaction folds
        result["compaction_s"] = round(first_hour.seconds + engine.store.compact_telemetry(
            now + 60, now - 30 * DAY, 60).seconds, 3)
        timed("export_after_s", lambda: engine.team_debt(HOUR))
        timed("status_after_s", engine.status)
        folded = timed("debt_after_s", lambda: engine.debt(since_s=hours * HOUR))
        before = {row["job"]: row["utilized_gpu_hours"] for row in raw["jobs"]}
        result["utilized_max_rel_diff"] = max(abs(row["utilized_gpu_hours"] - before[row["job"]]) / before[row["job"]]
                                              for row in folded["jobs"])
        return result


def test_the_cost_measurement_reads_the_same_debt_after_folding() -> None:
    figures = measure(hours=0.5)
    assert figures["utilized_max_rel_diff"] < 0.01
    assert set(figures) >= {"export_s", "status_s", "compaction_s", "export_after_s"}


def test_a_backlog_is_folded_an_hour_per_transaction_over_rounds(tmp_path: Path, monkeypatch) -> None:
    """With no time budget a round folds one hour of the backlog, and the next round goes on from there."""
    import placement.debt_accounting as debt_accounting

    monkeypatch.setattr(debt_accounting, "COMPACTION_BUDGET_S", 0.0)
    t0 = 1_700_000_007.0
    engine = Engine(ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=(),
                                  telemetry_raw_retention_s=HOUR / 2, telemetry_minute_retention_s=30 * DAY),
                    {}, clock=lambda: t0 + 3 * HOUR)
    history(engine.store, t0)
    records = engine.store.jobs()
    raw = engine.accounting.report(records, t0, t0 + 3 * HOUR)[0]
    engine.accounting.compact_telemetry(t0 + 3 * HOUR)
    assert t0 + HOUR - 60 <= engine.store.oldest_gpu_sample() <= t0 + HOUR  # one hour folded, the rest raw
    assert engine.store.meta("telemetry_compacted_at") is None  # not caught up: the next round goes on
    engine.accounting.compact_telemetry(t0 + 3 * HOUR)
    engine.accounting.compact_telemetry(t0 + 3 * HOUR)
    assert engine.store.meta("telemetry_compacted_at") is not None
    assert engine.store.oldest_gpu_sample() >= t0 + 2.5 * HOUR - 60
    assert_same_debt(raw, engine.accounting.report(records, t0, t0 + 3 * HOUR)[0])
