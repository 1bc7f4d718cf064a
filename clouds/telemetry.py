"""GPU telemetry: NVML samples per GPU and per process, attributed to the engine's launches.

`NvmlSampler` reads NVML through nvidia-ml-py (`pynvml`, injectable so tests can pass a
double). Without NVML (the module missing, no driver, no GPU) it says so through
`available`/`reason` and returns empty readings; nothing raises.

`ProcessAttributor` finds which launch a GPU process belongs to by walking up its process
tree until a process environment names one. What the environments carry (checked against
the installed Ray 2.60 and SkyPilot 0.14.1, and by submitting a real Ray job):
- a Ray job's driver (and every process it starts) has `RAY_JOB_CONFIG_JSON_ENV_VAR`, a
  JSON object whose `metadata.job_submission_id` is the submission id, which the on-prem
  provider sets to the launch handle (ray/dashboard/modules/job/job_supervisor.py,
  `_get_driver_env_vars`; key `JOB_ID_METADATA_KEY` in common.py);
- Ray tasks and actors the driver starts are children of the raylet, not of the driver:
  they carry only the runtime_env's env vars and Ray's internal `RAY_JOB_ID` (a hex job id,
  not the submission id). They are attributed only if the launch puts `PLACEMENT_HANDLE`
  in the runtime_env's env vars;
- a SkyPilot task's processes carry the task's envs (so `PLACEMENT_HANDLE` too, when the
  public provider sets it) and `SKYPILOT_CLUSTER_INFO`, a JSON object with `cluster_name`
  (sky/backends/cloud_vm_ray_backend.py, `_skypilot_predefined_env_vars`).

`TelemetryAgent` is a Ray actor pinned to one node that samples in a background thread
into a bounded buffer; `drain()` hands over what was sampled since the last drain.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import psutil
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from clouds.telemetry_samples import AgentStatus, Batch, GpuDevice, GpuSample, ProcessSample, Reading

HANDLE_ENV = "PLACEMENT_HANDLE"
RAY_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
RAY_SUBMISSION_ID_KEY = "job_submission_id"
SKYPILOT_CLUSTER_INFO_ENV = "SKYPILOT_CLUSTER_INFO"
_MAX_TREE_DEPTH = 64  # guards against a cycle in a (test double's) parent relation


# --- attribution ---------------------------------------------------------------------

EnvironReader = Callable[[int], Mapping[str, str] | None]
ParentReader = Callable[[int], int | None]


def read_environ(pid: int) -> Mapping[str, str] | None:
    """A process's environment as it started (/proc/<pid>/environ); None if gone or not ours to read."""
    try:
        return psutil.Process(pid).environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def read_parent(pid: int) -> int | None:
    try:
        parent = psutil.Process(pid).ppid()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return parent or None


def _json_field(environ: Mapping[str, str], var: str, *path: str) -> str | None:
    try:
        value: Any = json.loads(environ[var])
        for key in path:
            value = value[key]
    except (KeyError, TypeError, ValueError):
        return None
    return value if isinstance(value, str) and value else None


def launch_handle(environ: Mapping[str, str]) -> str | None:
    """The launch handle a process environment names, if any (rules in the module doc, in order)."""
    return (environ.get(HANDLE_ENV)
            or _json_field(environ, RAY_JOB_CONFIG_ENV, "metadata", RAY_SUBMISSION_ID_KEY)
            or _json_field(environ, SKYPILOT_CLUSTER_INFO_ENV, "cluster_name"))


class ProcessAttributor:
    """Maps GPU processes to launch handles: a process belongs to the first handle found on it or an ancestor.

    An environment is fixed when a process starts, so the answer for a pid is kept for as long as
    consecutive calls keep asking about it (a GPU process stays listed by NVML while it runs); only
    new pids cost a walk up the tree (~0.3 ms per process read here).
    """

    def __init__(self, environ_of: EnvironReader = read_environ, parent_of: ParentReader = read_parent):
        self._environ_of = environ_of
        self._parent_of = parent_of
        self._previous: dict[int, str | None] = {}

    def attribute(self, pids: Iterable[int]) -> dict[int, str]:
        """{pid: handle} for the pids that belong to a launch; the others are left out."""
        found: dict[int, str | None] = {}  # shared ancestors are read once per call
        answers = {}
        for pid in pids:
            answers[pid] = self._previous[pid] if pid in self._previous else self._walk(pid, found)
        self._previous = answers
        return {pid: handle for pid, handle in answers.items() if handle is not None}

    def _walk(self, pid: int, found: dict[int, str | None]) -> str | None:
        chain: list[int] = []
        current: int | None = pid
        handle = None
        while current is not None and len(chain) < _MAX_TREE_DEPTH:
            if current in found:
                handle = found[current]
                break
            chain.append(current)
            environ = self._environ_of(current)
            handle = launch_handle(environ) if environ is not None else None
            if handle is not None:
                break
            current = self._parent_of(current)
        for visited in chain:
            found[visited] = handle
        return handle


# --- NVML ------------------------------------------------------------------------------


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class NvmlSampler:
    """Reads every GPU of one node through NVML; `available` is False (with `reason`) when it cannot."""

    def __init__(self, node: str, nvml: Any = None, clock: Callable[[], float] = time.time,
                 attribute: Callable[[Collection[int]], Mapping[int, str]] | None = None):
        self.node = node
        self.available = False
        self.reason: str | None = None
        self.devices: tuple[GpuDevice, ...] = ()
        self._clock = clock
        self._attribute = attribute or ProcessAttributor().attribute
        self._handles: list[Any] = []
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError as exc:
                self.reason = f"nvidia-ml-py is not installed ({exc})"
                return
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            self.reason = f"NVML unavailable: {exc}"
            return
        try:
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            self.devices = tuple(
                GpuDevice(node, i, _text(nvml.nvmlDeviceGetName(h)), _text(nvml.nvmlDeviceGetUUID(h)),
                          int(nvml.nvmlDeviceGetMemoryInfo(h).total))
                for i, h in enumerate(self._handles))
        except nvml.NVMLError as exc:
            self.reason = f"NVML could not list GPUs: {exc}"
            nvml.nvmlShutdown()
            return
        if not self._handles:
            self.reason = "NVML sees no GPU on this node"
            nvml.nvmlShutdown()
            return
        self.available = True

    def sample(self) -> Reading:
        """One reading of every GPU; a GPU whose NVML calls fail is left out (and `reason` says why)."""
        if not self.available:
            return Reading((), ())
        nvml, t = self._nvml, self._clock()
        gpus: list[GpuSample] = []
        running: list[tuple[int, Any]] = []
        for index, handle in enumerate(self._handles):
            try:
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except nvml.NVMLError as exc:
                self.reason = f"GPU {index}: {exc}"
                continue
            try:
                power_w: float | None = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            except nvml.NVMLError:
                power_w = None
            gpus.append(GpuSample(self.node, index, t, float(util.gpu), float(util.memory),
                                  int(memory.used), int(memory.total), power_w))
            running.extend((index, process) for process in processes)
        handles = self._attribute({process.pid for _, process in running}) if running else {}
        return Reading(tuple(gpus), tuple(
            ProcessSample(self.node, index, t, process.pid, handles.get(process.pid),
                          None if process.usedGpuMemory is None else int(process.usedGpuMemory))
            for index, process in running))

    def close(self) -> None:
        if self.available:
            self.available = False
            self.reason = "closed"
            self._nvml.nvmlShutdown()


# --- the per-node agent ----------------------------------------------------------------


class SamplingAgent:
    """Samples in a background thread into a bounded buffer (the Ray actor below wraps it).

    With `idle_exit_s`, the process exits once nobody has drained it (or asked its status) for that
    long: a detached agent whose service is gone for good does not stay behind forever.
    """

    def __init__(self, node: str, interval_s: float = 1.0, capacity: int = 3600,
                 make_sampler: Callable[[str], NvmlSampler] = NvmlSampler, idle_exit_s: float | None = None):
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {interval_s}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 reading, got {capacity}")
        self._node = node
        self._interval_s = interval_s
        self._sampler = make_sampler(node)
        self._buffer: deque[Reading] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._samples = self._dropped = self._dropped_since_drain = 0
        self._cpu_s = 0.0
        self._thread = threading.Thread(target=self._run, name=f"telemetry-{node}", daemon=True)
        if self._sampler.available:
            self._thread.start()
        self._asked_at = time.monotonic()
        if idle_exit_s:
            threading.Thread(target=self._exit_when_idle, args=(idle_exit_s,), name=f"telemetry-{node}-idle",
                             daemon=True).start()

    def _exit_when_idle(self, idle_s: float) -> None:
        while not self._stop.wait(min(idle_s / 4, 5.0)):
            if time.monotonic() - self._asked_at > idle_s:
                os._exit(0)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            started = time.thread_time()
            reading = self._sampler.sample()
            cpu_s = time.thread_time() - started
            with self._lock:
                if len(self._buffer) == self._buffer.maxlen:
                    self._dropped += 1
                    self._dropped_since_drain += 1
                self._buffer.append(reading)
                self._samples += 1
                self._cpu_s += cpu_s
            next_at = max(next_at + self._interval_s, time.monotonic())  # late: skip, don't burst

    def drain(self) -> Batch:
        self._asked_at = time.monotonic()
        with self._lock:
            readings, dropped = list(self._buffer), self._dropped_since_drain
            self._buffer.clear()
            self._dropped_since_drain = 0
        return Batch(tuple(g for r in readings for g in r.gpus),
                     tuple(p for r in readings for p in r.processes), dropped)

    def status(self) -> AgentStatus:
        self._asked_at = time.monotonic()
        with self._lock:
            return AgentStatus(self._node, self._sampler.available, self._sampler.reason, self._interval_s,
                               self._samples, self._dropped,
                               self._cpu_s / self._samples if self._samples else None)

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._sampler.devices

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sampler.close()


TelemetryAgent = ray.remote(num_cpus=0, max_restarts=-1)(SamplingAgent)


def agent_name(node: str) -> str:
    return f"telemetry-{node}"


def start_agent(node_id: str, node: str, interval_s: float = 1.0, capacity: int = 3600,
                make_sampler: Callable[[str], NvmlSampler] = NvmlSampler) -> Any:
    """The telemetry agent of one Ray node (by node id), started if it is not running yet.

    Named `telemetry-<node>` and detached, so a restarted service finds it again; it is
    hard-pinned to the node, so it dies with it. `make_sampler` runs on that node.
    """
    return TelemetryAgent.options(
        name=agent_name(node), get_if_exists=True, lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(node, interval_s, capacity, make_sampler)
