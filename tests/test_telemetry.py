"""GPU telemetry: NVML sampling (real H100 samples replayed at the pynvml boundary), no-NVML
behaviour with the real pynvml, attribution on real process trees and a real Ray job, and the
per-node agent on the shared test cluster."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import psutil
import pynvml
import pytest
import ray
from ray.util.state import list_actors

from clouds import energy
from clouds.telemetry import (HANDLE_ENV, RAY_JOB_CONFIG_ENV, SKYPILOT_CLUSTER_INFO_ENV, NvmlSampler,
                              ProcessAttributor, SamplingAgent, agent_name, start_agent)
from placement.actor import dashboard_http
from placement.debt import Allocation, FlagKind, account
from policies.debt import DebtSettings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"  # copies of the shared data, shipped with the project
SAMPLES_CSV = CONFIGS / "telemetry" / "h100_nvml_samples.csv"
DEVICE_JSON = CONFIGS / "telemetry" / "h100_device_info.json"
HANDLE = "gpt2-a1-s0"


def h100_rows() -> list[dict[str, float]]:
    with open(SAMPLES_CSV, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


class FakeNvml:
    """Test double at the pynvml boundary: one GPU replaying the H100 samples measured with nvidia-ml-py.

    `clock()` (given to the sampler as its clock, called once per reading) moves to the next CSV
    row and returns its time; past the last row the replay starts again, shifted in time. The
    CSV counts the processes on the GPU (`procs`); each gets a pid from `pids` and, as its GPU
    memory, what the GPU holds above its memory with no process (the driver's reservation).
    """

    NVMLError = pynvml.NVMLError

    def __init__(self, rows: list[dict[str, float]], device: dict, pids: tuple[int, ...] = (4242,),
                 power_supported: bool = True):
        self.rows, self.device, self.pids, self.power_supported = rows, device, pids, power_supported
        self.baseline = min(int(r["mem_used"]) for r in rows if r["procs"] == 0)
        self.period = rows[-1]["t"] - rows[0]["t"] + 0.25
        self.tick = -1
        self.initialised = False

    def clock(self) -> float:
        self.tick += 1
        return self.row["t"] + (self.tick // len(self.rows)) * self.period

    @property
    def row(self) -> dict[str, float]:
        return self.rows[self.tick % len(self.rows)]

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index != 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.device["name"]

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self.device["nvmlDeviceGetUUID"]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        used = int(self.row["mem_used"]) if self.tick >= 0 else self.baseline
        return SimpleNamespace(total=self.device["mem_total"], used=used, free=self.device["mem_total"] - used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=int(self.row["util_gpu"]), memory=int(self.row["util_mem"]))

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if not self.power_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(self.row["power_mw"])

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        count = int(self.row["procs"])
        held = int(self.row["mem_used"]) - self.baseline
        return [SimpleNamespace(pid=pid, usedGpuMemory=held // count) for pid in self.pids[:count]]


def replay_sampler(node: str, pids: tuple[int, ...] = (4242,), **fake_args) -> NvmlSampler:
    """An NvmlSampler over FakeNvml (picklable: the agent builds it on its node)."""
    fake = FakeNvml(h100_rows(), json.loads(DEVICE_JSON.read_text()), pids=pids, **fake_args)
    return NvmlSampler(node, nvml=fake, clock=fake.clock)


def attributor_for(environs: dict[int, dict[str, str]]) -> ProcessAttributor:
    return ProcessAttributor(environ_of=environs.get, parent_of=lambda pid: None)


# --- the sampler ---------------------------------------------------------------------------


def test_replayed_h100_samples_read_back_as_nvml_reported_them():
    rows = h100_rows()
    device = json.loads(DEVICE_JSON.read_text())
    fake = FakeNvml(rows, device)
    sampler = NvmlSampler("h100-0", nvml=fake, clock=fake.clock,
                          attribute=attributor_for({4242: {HANDLE_ENV: HANDLE}}).attribute)
    assert sampler.available and sampler.reason is None
    assert [(d.index, d.name, d.mem_total_bytes) for d in sampler.devices] == [
        (0, "NVIDIA H100 80GB HBM3", device["mem_total"])]

    readings = [sampler.sample() for _ in rows]
    gpus = [g for r in readings for g in r.gpus]
    processes = [p for r in readings for p in r.processes]
    assert [(g.t, g.util_gpu_pct, g.util_mem_pct, g.mem_used_bytes, g.power_w) for g in gpus] == [
        (r["t"], r["util_gpu"], r["util_mem"], r["mem_used"], r["power_mw"] / 1000) for r in rows]
    assert len(processes) == sum(int(r["procs"]) for r in rows)
    assert {(p.pid, p.handle) for p in processes} == {(4242, HANDLE)}
    sampler.close()
    assert not fake.initialised and not sampler.available


def test_replay_through_the_aggregation_matches_the_csv_by_hand():
    """Allocated vs utilized GPU-hours, energy and $ of the H100 run, computed here from the CSV."""
    rows = h100_rows()
    sampler = NvmlSampler("h100-0", nvml=(fake := FakeNvml(rows, json.loads(DEVICE_JSON.read_text()))),
                          clock=fake.clock, attribute=attributor_for({4242: {HANDLE_ENV: HANDLE}}).attribute)
    readings = [sampler.sample() for _ in rows]

    with open(CONFIGS / "catalogs" / "aws" / "vms.csv", newline="") as f:  # what one H100 of a p5.48xlarge costs
        p5 = next(r for r in csv.DictReader(f) if r["InstanceType"] == "p5.48xlarge" and r["Region"] == "us-east-1")
    price_per_gpu_hour = float(p5["Price"]) / float(p5["AcceleratorCount"])
    pue, grid = energy.pue("aws"), energy.grid_intensity("aws", "us-east-1").gco2_per_kwh
    t0, t1 = rows[0]["t"], rows[-1]["t"]
    allocation = Allocation(HANDLE, "gpt2", "nlp", "h100-0", "H100", 1, t0, t1, price_per_gpu_hour, pue, grid)
    report = account([allocation], [g for r in readings for g in r.gpus],
                     [p for r in readings for p in r.processes], t0, t1)

    # By hand: each sample holds until the next one (the last closes the window).
    held = [(row, following["t"] - row["t"]) for row, following in zip(rows, rows[1:])]
    allocated_h = (t1 - t0) / 3600
    utilized_h = sum(row["util_gpu"] / 100 * dt for row, dt in held) / 3600
    energy_kwh = sum(row["power_mw"] / 1000 * dt for row, dt in held) / 3.6e6 * pue
    peak = max(row["mem_used"] for row in rows if row["procs"] > 0) - fake.baseline

    [job] = report.jobs
    usage = job.usage
    assert usage.allocated_gpu_hours == pytest.approx(allocated_h, rel=1e-12)
    assert usage.observed_gpu_hours == pytest.approx(allocated_h, rel=1e-12)
    assert usage.utilized_gpu_hours == pytest.approx(utilized_h, rel=1e-12)
    assert 0.055 < usage.mean_utilization < 0.07  # "allocated the whole time, yet mean utilization was 6%"
    assert usage.mean_utilization == pytest.approx(utilized_h / allocated_h, rel=1e-12)
    assert usage.energy_kwh == pytest.approx(energy_kwh, rel=1e-12)
    assert usage.energy_measured_kwh == pytest.approx(energy_kwh, rel=1e-12)
    assert usage.carbon_kg == pytest.approx(energy_kwh * grid / 1000, rel=1e-12)
    assert usage.debt_gpu_hours == pytest.approx(allocated_h - utilized_h, rel=1e-12)
    assert usage.debt_usd == pytest.approx((allocated_h - utilized_h) * price_per_gpu_hour, rel=1e-12)
    assert usage.peak_mem_bytes == peak
    assert report.teams["nlp"] == usage and report.nodes["h100-0"] == usage
    assert report.unattributed_gpu_hours["h100-0"] == pytest.approx(0.0, abs=1e-12)

    assert report.flags == ()  # 270 s observed: shorter than the default 30-minute window
    short_window = DebtSettings(low_utilization_window_s=60)
    [flag] = account([allocation], [g for r in readings for g in r.gpus],
                     [p for r in readings for p in r.processes], t0, t1, short_window).flags
    # The H100 was nearly full at its peak, so only utilization flags it: a quarter GPU would do.
    expected_gpus = max(0.25, math.ceil(utilized_h / allocated_h / 0.8 / 0.25) * 0.25)
    assert (flag.kind, flag.recommendation.gpus, flag.recommendation.gpu_type) == (
        FlagKind.LOW_UTILIZATION, expected_gpus, "H100")


def test_power_not_supported_leaves_power_out_and_sampling_goes_on():
    sampler = replay_sampler("h100-0", power_supported=False)
    readings = [sampler.sample() for _ in range(3)]
    assert [g.power_w for r in readings for g in r.gpus] == [None, None, None]
    assert [g.util_gpu_pct for r in readings for g in r.gpus] == [r["util_gpu"] for r in h100_rows()[:3]]


def test_without_a_driver_the_real_pynvml_reports_no_telemetry():
    sampler = NvmlSampler("cpu-box")  # this machine has no GPU and no NVML library
    assert not sampler.available
    assert "NVML" in sampler.reason
    assert sampler.sample().gpus == () and sampler.sample().processes == ()
    assert sampler.devices == ()
    sampler.close()


def test_without_nvidia_ml_py_there_is_no_telemetry(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    sampler = NvmlSampler("cpu-box")
    assert not sampler.available and "nvidia-ml-py" in sampler.reason
    assert sampler.sample().gpus == ()


# --- attribution on real processes ---------------------------------------------------------

# A parent that starts a child with an empty environment (so only the parent carries the identity),
# prints the child's pid and waits.
PARENT = ("import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
          "env={}); print(child.pid, flush=True); child.wait()")


@pytest.fixture
def spawn():
    started: list[subprocess.Popen] = []

    def run(env_extra: dict[str, str]) -> tuple[int, int]:
        parent = subprocess.Popen([sys.executable, "-c", PARENT], env={**os.environ, **env_extra},
                                  stdout=subprocess.PIPE, text=True)
        started.append(parent)
        return parent.pid, int(parent.stdout.readline())

    yield run
    for parent in started:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_processes_are_attributed_through_their_process_tree(spawn):
    ray_job = json.dumps({"runtime_env": {"env_vars": {}}, "metadata": {"job_submission_id": "ray-a1-s0",
                                                                          "job_name": "ray-a1-s0"}})
    own_parent, own_child = spawn({HANDLE_ENV: "own-a1-s0"})
    ray_parent, ray_child = spawn({RAY_JOB_CONFIG_ENV: ray_job})
    sky_parent, sky_child = spawn({SKYPILOT_CLUSTER_INFO_ENV: json.dumps({"cluster_name": "sky-a1-s0",
                                                                          "cloud": "AWS"})})
    both_parent, both_child = spawn({HANDLE_ENV: "own-a2-s0", RAY_JOB_CONFIG_ENV: ray_job})
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        assert not psutil.Process(own_child).environ()  # the children carry nothing themselves
        found = ProcessAttributor().attribute(
            [own_child, ray_child, sky_child, both_child, own_parent, stranger.pid, gone.pid])
    finally:
        stranger.kill()
        stranger.wait()
    assert found == {own_child: "own-a1-s0", own_parent: "own-a1-s0", ray_child: "ray-a1-s0",
                     sky_child: "sky-a1-s0", both_child: "own-a2-s0"}
    assert ray_parent not in found and sky_parent not in found and both_parent not in found  # not asked


def test_an_answer_is_kept_while_the_pid_stays_listed():
    reads: list[int] = []
    environs = {10: {}, 11: {HANDLE_ENV: "k-a1-s0"}}
    parents = {10: 11}

    def environ_of(pid: int) -> dict[str, str] | None:
        reads.append(pid)
        return environs.get(pid)

    attributor = ProcessAttributor(environ_of=environ_of, parent_of=parents.get)
    assert attributor.attribute([10]) == {10: "k-a1-s0"} and reads == [10, 11]
    assert attributor.attribute([10]) == {10: "k-a1-s0"} and reads == [10, 11]  # still listed: not read again
    assert attributor.attribute([]) == {}
    environs[11] = {}  # pid 10 gone and reused by a process of no launch
    assert attributor.attribute([10]) == {} and reads == [10, 11, 10, 11]


def test_a_ray_job_driver_is_attributed_to_its_submission_id(ray_cluster):
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(dashboard_http(ray_cluster.webui_url))
    handle = f"attrib-a1-{os.getpid()}"
    marker = f"telemetry-attribution-{os.getpid()}"
    deadline = time.monotonic() + 30
    while True:  # right after the cluster starts, its job agent may take a while (on a busy machine) to register
        try:
            client.submit_job(entrypoint=f"python -c 'import time; time.sleep(60)' {marker}", submission_id=handle,
                              runtime_env={"env_vars": {"PLACEMENT_JOB_ID": "attrib"}})
            break
        except RuntimeError as exc:
            if "No available agent" not in str(exc):
                raise
            if time.monotonic() > deadline:  # conftest gives the head its own agent port: this is a failure
                raise
            time.sleep(0.5)
    try:
        deadline = time.monotonic() + 30
        drivers: list[int] = []
        while not drivers and time.monotonic() < deadline:
            drivers = [p.pid for p in psutil.process_iter(["cmdline"])
                       if marker in (p.info["cmdline"] or []) and "python" in p.info["cmdline"][0]]
            time.sleep(0.2)
        assert drivers, "the job's entrypoint did not start"
        assert ProcessAttributor().attribute(drivers) == {pid: handle for pid in drivers}
    finally:
        client.stop_job(handle)


# --- the agent -----------------------------------------------------------------------------


def test_agent_buffer_is_bounded_and_counts_what_it_drops():
    agent = SamplingAgent("h100-0", interval_s=0.005, capacity=5, make_sampler=replay_sampler)
    deadline = time.monotonic() + 10
    while agent.status().samples < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    agent.stop()
    status, batch = agent.status(), agent.drain()
    rows = h100_rows()
    taken = status.samples
    assert taken >= 12 and batch.dropped == status.dropped == taken - 5
    # the newest five readings are kept, in order
    assert [g.util_gpu_pct for g in batch.gpus] == [rows[i]["util_gpu"] for i in range(taken - 5, taken)]
    assert status.cpu_s_per_sample is not None and not agent.status().available
    assert agent.drain().gpus == ()


def test_agent_rejects_a_bad_interval():
    with pytest.raises(ValueError, match="interval_s"):
        SamplingAgent("n", interval_s=0, make_sampler=replay_sampler)


def _child_with_handle(handle: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            env={**os.environ, HANDLE_ENV: handle})


def test_agent_on_a_node_samples_and_drains(ray_cluster):
    node_id = ray_cluster.simulated["a100-0"].node_id
    worker = _child_with_handle("train-a1-s0")  # a real process on this machine for NVML to report
    agent = None
    # The sampler factory comes from this test module, which Ray's workers cannot import: send it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        agent = start_agent(node_id, "a100-0", interval_s=0.02,
                            make_sampler=partial(replay_sampler, pids=(worker.pid,)))
        deadline = time.monotonic() + 30
        while ray.get(agent.status.remote(), timeout=30).samples < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
        first = ray.get(agent.drain.remote(), timeout=30)
        time.sleep(0.3)
        second = ray.get(agent.drain.remote(), timeout=30)
        status = ray.get(agent.status.remote(), timeout=30)
        [actor] = list_actors(filters=[("name", "=", agent_name("a100-0"))])
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        if agent is not None:
            ray.kill(agent)
        worker.kill()
        worker.wait()
    assert actor.node_id == node_id
    assert status.available and status.node == "a100-0" and status.interval_s == 0.02
    assert len(first.gpus) >= 100 and first.dropped == 0 and second.gpus
    assert first.gpus[-1].t < second.gpus[0].t  # a drain hands over only what is new
    rows = h100_rows()
    assert [g.util_gpu_pct for g in first.gpus[:100]] == [r["util_gpu"] for r in rows[:100]]
    procs = first.processes + second.processes
    assert procs and {(p.pid, p.handle) for p in procs} == {(worker.pid, "train-a1-s0")}
    assert status.samples >= len(first.gpus) + len(second.gpus)
    assert 0 < status.cpu_s_per_sample < 0.01
    print(f"agent: {status.samples} readings, {status.cpu_s_per_sample * 1e3:.3f} ms CPU per reading")


def test_agent_on_a_node_without_nvml_reports_no_telemetry(ray_cluster):
    node_id = ray_cluster.simulated["t4-0"].node_id
    agent = start_agent(node_id, "t4-0", interval_s=0.05)
    try:
        status = ray.get(agent.status.remote(), timeout=30)
        batch = ray.get(agent.drain.remote(), timeout=30)
    finally:
        ray.kill(agent)
    assert not status.available and "NVML" in status.reason and status.samples == 0
    assert batch.gpus == () and batch.processes == ()
