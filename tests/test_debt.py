"""Computational debt on a small hand-made history, every figure worked out by hand in the test."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import matplotlib.image
import pytest
from pydantic import ValidationError

from clouds.telemetry_samples import GpuSample, ProcessSample
from placement.debt import (Allocation, FlagKind, PowerCurve, Usage, UsageSeries, account, smaller_gpu,
                            usage_series)
from placement.debt_plot import plot_allocation_vs_utilization
from policies.debt import DebtSettings

GIB = 1024 ** 3
HOUR = 3600.0
STEP = 10  # seconds between samples
PUE, GRID = 1.5, 400.0  # gCO2e/kWh
CCF_CURVES = Path(__file__).resolve().parents[1] / "configs" / "energy" / "gpu_power_curve_aws_instances_ccf.csv"


def gpu(node: str, index: int, profile: Callable[[float], tuple[float, float | None]], until: float = 2 * HOUR
        ) -> list[GpuSample]:
    """Samples every STEP seconds from 0 to `until` (inclusive: the last one closes the interval).

    `profile(t)` gives (utilization %, watts); memory figures are not used by the accounting."""
    samples = []
    for t in range(0, int(until) + 1, STEP):
        util, power_w = profile(t)
        samples.append(GpuSample(node, index, t, util, 0.0, 0, 80 * GIB, power_w))
    return samples


def procs(node: str, index: int, pid: int, handle: str, start: float, end: float, mem_gib: float
          ) -> list[ProcessSample]:
    return [ProcessSample(node, index, t, pid, handle, int(mem_gib * GIB)) for t in range(int(start), int(end), STEP)]


def alloc(handle: str, team: str, node: str, gpu_type: str | None, gpus: float, start: float, end: float | None,
          rate: float) -> Allocation:
    return Allocation(handle, handle.split("-")[0], team, node, gpu_type, gpus, start, end, rate, PUE, GRID)


# Node a100-0 (A100-80GB): job a (vision, 1 GPU, 0-1 h, $4/h) runs at 20% on GPU 0 holding 10 GiB;
# job b (nlp, 2 GPUs, 0.5-2 h, $8/h) runs at 90% on GPU 1 holding 60 GiB and never touches a second GPU;
# GPU 2 runs someone else's work at 10% all along. Node t4-0: job c (vision, 1 T4, 0-2 h, $0.5/h)
# never starts a GPU process.
A = alloc("a-a1-s", "vision", "a100-0", "A100-80GB", 1, 0, HOUR, 4.0)
B = alloc("b-a1-s", "nlp", "a100-0", "A100-80GB", 2, 0.5 * HOUR, 2 * HOUR, 8.0)
C = alloc("c-a1-s", "vision", "t4-0", "T4", 1, 0, 2 * HOUR, 0.5)
SAMPLES = (gpu("a100-0", 0, lambda t: (20.0, 100.0) if t < HOUR else (0.0, 60.0))
           + gpu("a100-0", 1, lambda t: (90.0, 300.0) if t >= 0.5 * HOUR else (0.0, 60.0))
           + gpu("a100-0", 2, lambda t: (10.0, 50.0))
           + gpu("t4-0", 0, lambda t: (0.0, 9.0)))
PROCESSES = (procs("a100-0", 0, 101, "a-a1-s", 0, HOUR, 10)
             + procs("a100-0", 1, 202, "b-a1-s", 0.5 * HOUR, 2 * HOUR, 60)
             + procs("a100-0", 2, 303, None, 0, 2 * HOUR, 5))


@pytest.fixture(scope="module")
def report():
    return account([A, B, C], SAMPLES, PROCESSES, 0, 2 * HOUR)


def test_job_figures(report):
    jobs = {j.allocation.handle: j.usage for j in report.jobs}
    a, b, c = jobs["a-a1-s"], jobs["b-a1-s"], jobs["c-a1-s"]
    # a: 1 GPU x 1 h at 20%, 100 W
    assert (a.allocated_gpu_hours, a.observed_gpu_hours) == pytest.approx((1.0, 1.0))
    assert a.utilized_gpu_hours == pytest.approx(0.2)
    assert (a.debt_gpu_hours, a.debt_usd, a.cost_usd) == pytest.approx((0.8, 0.8 * 4.0, 4.0))
    assert a.energy_kwh == pytest.approx(100 * HOUR / 3.6e6 * PUE) == a.energy_measured_kwh
    assert a.carbon_kg == pytest.approx(0.1 * PUE * GRID / 1000)
    assert a.peak_mem_bytes == 10 * GIB
    # b: 2 GPUs x 1.5 h; one at 90% and 300 W, the other untouched (idle power from the A100's curve)
    assert b.allocated_gpu_hours == pytest.approx(3.0)
    assert b.utilized_gpu_hours == pytest.approx(0.9 * 1.5)
    assert b.debt_usd == pytest.approx((3.0 - 1.35) * 4.0)
    idle_w = PowerCurve.from_tdp(400).idle_w
    assert idle_w == pytest.approx(45.6)  # 11.4% of the A100's 400 W
    assert b.energy_measured_kwh == pytest.approx(300 * 1.5 * HOUR / 3.6e6 * PUE)
    assert b.energy_kwh == pytest.approx((300 + idle_w) * 1.5 * HOUR / 3.6e6 * PUE)
    # c: a T4 for 2 h, no GPU use at all
    assert (c.allocated_gpu_hours, c.utilized_gpu_hours, c.debt_usd) == pytest.approx((2.0, 0.0, 1.0))
    assert c.peak_mem_bytes is None
    assert c.energy_kwh == pytest.approx(0.114 * 70 * 2 * HOUR / 3.6e6 * PUE)


def test_worst_offenders_first_and_team_and_node_sums(report):
    assert [j.allocation.handle for j in report.jobs] == ["b-a1-s", "a-a1-s", "c-a1-s"]  # $6.60, $3.20, $1.00
    jobs = {j.allocation.handle: j.usage for j in report.jobs}
    assert report.teams["vision"] == jobs["a-a1-s"] + jobs["c-a1-s"]
    assert report.teams["vision"].debt_usd == pytest.approx(4.2)
    assert report.teams["nlp"] == jobs["b-a1-s"]
    assert report.nodes["a100-0"].allocated_gpu_hours == pytest.approx(4.0)
    assert report.nodes["a100-0"].peak_mem_bytes == 60 * GIB
    assert report.total.debt_gpu_hours == pytest.approx(0.8 + 1.65 + 2.0)
    # GPU 2's 10% for 2 h is nobody's in this report
    assert report.unattributed_gpu_hours == pytest.approx({"a100-0": 0.2, "t4-0": 0.0})


def test_flags_and_recommendations(report):
    flags = {(f.handle, f.kind): f for f in report.flags}
    assert set(flags) == {("a-a1-s", FlagKind.LOW_UTILIZATION), ("a-a1-s", FlagKind.OVERSIZED_MEMORY),
                          ("c-a1-s", FlagKind.NO_GPU_USE)}  # b: 45% mean, 60 of 80 GB: fine
    low = flags[("a-a1-s", FlagKind.LOW_UTILIZATION)]
    assert (low.recommendation.gpu_type, low.recommendation.gpus) == ("A100-80GB", 0.25)  # 0.2 busy / 0.8 target
    assert "20.0%" in low.reason and low.team == "vision" and low.job_id == "a"
    memory = flags[("a-a1-s", FlagKind.OVERSIZED_MEMORY)]
    assert (memory.recommendation.gpu_type, memory.recommendation.gpus) == ("T4", 1)  # 10 GiB x 1.2 fits 16 GB
    cpu = flags[("c-a1-s", FlagKind.NO_GPU_USE)].recommendation
    assert (cpu.gpu_type, cpu.gpus, cpu.text) == (None, 0.0, "run on CPU only")


def test_thresholds_come_from_settings():
    strict = DebtSettings(low_utilization=0.5, low_utilization_window_s=2 * HOUR, memory_fraction=0.8)
    report = account([A, B, C], SAMPLES, PROCESSES, 0, 2 * HOUR, strict)
    # Only c was observed for 2 h; a and b (1 h, 1.5 h) are too short to judge under this window.
    assert {(f.handle, f.kind) for f in report.flags} == {("c-a1-s", FlagKind.NO_GPU_USE)}
    lenient = DebtSettings(low_utilization=0.5, memory_fraction=0.8)
    flags = {(f.handle, f.kind) for f in account([A, B, C], SAMPLES, PROCESSES, 0, 2 * HOUR, lenient).flags}
    # b at 45% is now low, but 1.35 busy GPUs / 0.8 still need its 2 GPUs: nothing smaller to recommend.
    # Its 60 GiB x 1.2 = 72 GiB is under 80% of 80 GB, yet no recommendable GPU between 72 and 80 GB exists.
    assert ("b-a1-s", FlagKind.LOW_UTILIZATION) not in flags and ("b-a1-s", FlagKind.OVERSIZED_MEMORY) not in flags


def test_window_clips_allocations_and_running_jobs_end_at_the_window():
    running = alloc("d-a1-s", "nlp", "a100-0", "A100-80GB", 1, 0.5 * HOUR, None, 4.0)
    ended = alloc("e-a1-s", "nlp", "a100-0", "A100-80GB", 1, 0, 0.5 * HOUR, 4.0)
    report = account([A, B, running, ended], SAMPLES, PROCESSES, 0.75 * HOUR, 1.25 * HOUR)
    jobs = {j.allocation.handle: j.usage for j in report.jobs}
    assert jobs["a-a1-s"].allocated_gpu_hours == pytest.approx(0.25)
    assert jobs["a-a1-s"].utilized_gpu_hours == pytest.approx(0.05)
    assert jobs["b-a1-s"].allocated_gpu_hours == pytest.approx(1.0)
    assert jobs["d-a1-s"].allocated_gpu_hours == pytest.approx(0.5)
    assert jobs["d-a1-s"].utilized_gpu_hours == 0.0  # no process of d ever ran
    assert "e-a1-s" not in jobs  # over before the window
    with pytest.raises(ValueError, match="window"):
        account([A], SAMPLES, PROCESSES, HOUR, HOUR)


def test_a_gpu_shared_by_two_jobs_is_split_between_them():
    e = alloc("e-a1-s", "vision", "s-0", "A100-80GB", 0.5, 0, HOUR, 2.0)
    f = alloc("f-a1-s", "nlp", "s-0", "A100-80GB", 0.5, 0.5 * HOUR, HOUR, 2.0)
    samples = gpu("s-0", 0, lambda t: (60.0, 200.0), until=HOUR)
    processes = procs("s-0", 0, 1, "e-a1-s", 0, HOUR, 4) + procs("s-0", 0, 2, "f-a1-s", 0.5 * HOUR, HOUR, 4)
    jobs = {j.allocation.handle: j.usage for j in account([e, f], samples, processes, 0, HOUR).jobs}
    # e alone for 0.5 h, then both for 0.5 h at 60%
    assert jobs["e-a1-s"].utilized_gpu_hours == pytest.approx(0.6 * 0.5 + 0.3 * 0.5)
    assert jobs["f-a1-s"].utilized_gpu_hours == pytest.approx(0.3 * 0.5)
    assert jobs["e-a1-s"].peak_mem_bytes == 4 * GIB


def test_energy_without_power_readings_follows_the_power_curve():
    with open(CCF_CURVES, newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["instance_type"] == "p4d.24xlarge")
    curve = PowerCurve(*(float(row[f"gpu_watts_{p}_per_gpu"]) for p in ("idle", "10pct", "50pct", "100pct")))
    g = alloc("g-a1-s", "vision", "np-0", "A100", 1, 0, HOUR, 3.0)
    samples = gpu("np-0", 0, lambda t: (50.0, None), until=HOUR)
    report = account([g], samples, procs("np-0", 0, 7, "g-a1-s", 0, HOUR, 2), 0, HOUR, power_curves={"A100": curve})
    usage = report.jobs[0].usage
    assert usage.energy_measured_kwh == 0.0
    assert usage.energy_kwh == pytest.approx(300.9 * HOUR / 3.6e6 * PUE)  # CCF: an A100 draws 300.9 W at 50%
    assert curve.watts(0.3) == pytest.approx(127.3 + (300.9 - 127.3) * 0.5)


def test_without_telemetry_nothing_is_observed_and_energy_is_assumed():
    public = alloc("h-a1-s", "nlp", "aws-cluster", "H100", 8, 0, HOUR, 55.04)
    report = account([public], [], [], 0, HOUR)
    usage = report.jobs[0].usage
    assert (usage.allocated_gpu_hours, usage.observed_gpu_hours, usage.debt_usd) == (8.0, 0.0, 0.0)
    assert usage.mean_utilization is None and report.flags == ()
    assert usage.energy_kwh == pytest.approx(8 * 700 * HOUR / 3.6e6 * PUE)  # full load assumed, H100 TDP


def test_a_sampler_outage_is_not_observed():
    samples = [s for s in gpu("o-0", 0, lambda t: (50.0, 100.0), until=HOUR) if not 600 <= s.t < 1800]
    o = alloc("o-a1-s", "vision", "o-0", "A100", 1, 0, HOUR, 3.0)
    usage = account([o], samples, procs("o-0", 0, 9, "o-a1-s", 0, HOUR, 1), 0, HOUR).jobs[0].usage
    # 590 s then 1800-3600 s observed; the last sample before the gap holds for max_sample_gap_s (60 s)
    observed_s = 590 + 60 + 1800
    assert usage.observed_gpu_hours == pytest.approx(observed_s / HOUR)
    assert usage.utilized_gpu_hours == pytest.approx(0.5 * observed_s / HOUR)


def test_smaller_gpu_picks_the_smallest_that_fits():
    settings = DebtSettings()
    assert smaller_gpu(10 * GIB, "A100-80GB", settings) == "T4"  # 12 GiB needed
    assert smaller_gpu(18 * GIB, "A100-80GB", settings) == "L4"  # 21.6 GiB: L4 (24 GB, 72 W) before A10G (150 W)
    assert smaller_gpu(30 * GIB, "H100", settings) == "A100"  # 36 GiB: the 40 GB A100 before the 48 GB L40S
    assert smaller_gpu(15 * GIB, "T4", settings) is None


def test_settings_reject_unknown_gpus_and_bad_thresholds():
    with pytest.raises(ValidationError, match=r"recommendable_gpus\n.*unknown GPU 'A1000'") as raised:
        DebtSettings(recommendable_gpus=("T4", "A1000"))
    assert raised.value.errors()[0]["ctx"]["error"].suggestion == "A100"  # what the policy loader shows
    with pytest.raises(ValidationError, match="low_utilization"):
        DebtSettings(low_utilization=1.5)
    assert DebtSettings(recommendable_gpus=("nvidia a100_80gb",)).recommendable_gpus == ("A100-80GB",)
    with pytest.raises(ValueError, match="end"):
        alloc("x-a1-s", "t", "n", "T4", 1, 10, 5, 1.0)


def test_usage_series_and_plot(tmp_path):
    series = usage_series([A, B, C], SAMPLES, PROCESSES, 0, 2 * HOUR, 1800)
    assert series.t == (0, 1800, 3600, 5400)
    assert series.allocated_gpus == pytest.approx((2, 4, 3, 3))
    assert series.utilized_gpus == pytest.approx((0.2, 1.1, 0.9, 0.9))
    path = plot_allocation_vs_utilization(series, tmp_path / "debt.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[:2] == (400, 1000)
    with pytest.raises(ValueError, match="empty"):
        plot_allocation_vs_utilization(UsageSeries((), (), ()), tmp_path / "x.png")


def test_usage_adds_up():
    one = Usage(allocated_gpu_hours=1, observed_gpu_hours=1, utilized_gpu_hours=0.5, peak_mem_bytes=None)
    two = Usage(allocated_gpu_hours=2, observed_gpu_hours=1, utilized_gpu_hours=0.25, peak_mem_bytes=7)
    total = one + two
    assert (total.allocated_gpu_hours, total.debt_gpu_hours, total.peak_mem_bytes) == (3, 1.25, 7)
    assert total.mean_utilization == pytest.approx(0.375)
