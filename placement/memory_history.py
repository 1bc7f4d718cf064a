"""What earlier runs measured of GPU memory, applied to the next job with the same facts (or team and name).

A finished run's NVML peak (the most its processes held on one GPU, CUDA context included) is kept beside
the model facts its spec gave (`MemoryPeak`); a run that ran out of GPU memory is kept with the GPU it ran
out on. `remember` turns them into the job's need, purely:

- a measured peak replaces the estimate: of the latest run with the same facts, else (where the job or
  the run gives no facts) of the latest run with the same team and name; a run with other facts (another
  batch, another model) says nothing about this one. It is a central figure like the estimate, so
  placement adds the policy's margin to it. A need given outright (`per_gpu_gb`) is kept as given;
- a run that ran out of memory (this job's own earlier attempt, or a similar run as above) makes every GPU
  with no more memory than that one ineligible: the job is placed again on a larger GPU, never the same
  one, and waits with `InsufficientGpuMemory` where there is none.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from placement.model import Job, OutcomeCode

OUT_OF_MEMORY_MARKERS = ("CUDA out of memory", "OutOfMemoryError", "CUDA error: out of memory")
OUT_OF_MEMORY = OutcomeCode.OUT_OF_MEMORY  # the reason code of a job put back to pending after running out of GPU memory
LARGER_BY_GB = 0.1  # the floor after an out-of-memory run: that GPU's memory plus the estimate's resolution


def ran_out_of_memory(message: str) -> bool:
    """Whether a failed run's message (Ray appends the job's last logs) shows PyTorch's CUDA out-of-memory error."""
    return any(marker in message for marker in OUT_OF_MEMORY_MARKERS)


@dataclass(frozen=True, slots=True)
class MemoryPeak:
    """One run's GPU memory, as the store keeps it."""

    job_id: str
    team: str
    name: str
    facts: str | None  # `facts_key` of its spec's model facts (None: the spec gave none)
    gpu_type: str | None  # the GPU it ran on
    gpu_memory_gb: float | None  # that GPU's memory
    peak_bytes: int | None  # NVML: the most its processes held on one GPU (None: no telemetry)
    out_of_memory: bool
    at: float


def facts_key(spec: dict[str, Any]) -> str | None:
    """The model facts of a stored spec's `placement.gpu_memory`, as canonical JSON (None: it gives none)."""
    hint = ((spec.get("placement") or {}).get("gpu_memory"))
    if not isinstance(hint, dict):
        return None
    return _facts_key(json.dumps(hint, sort_keys=True, default=str))


@functools.lru_cache(maxsize=4096)  # every round asks again for every pending job
def _facts_key(hint: str) -> str | None:
    from placement.spec import GpuMemoryHint  # the spec module builds jobs; this reads one field of it

    facts = GpuMemoryHint.model_validate(json.loads(hint)).model_facts()
    return None if facts is None else json.dumps(dataclasses.asdict(facts), sort_keys=True)


class MemoryHistory:
    """What the store keeps (`Store.memory_peaks`: the latest measured run per team, name and facts, and every run
    that ran out of memory), looked up by facts, by team and name, and by job."""

    def __init__(self, peaks: Sequence[MemoryPeak]):
        self._by: dict[tuple, list[MemoryPeak]] = {}
        for peak in peaks:
            keys = {("job", peak.job_id), ("team", peak.team, peak.name)} | (
                {("facts", peak.facts)} if peak.facts is not None else set())
            for key in keys:
                self._by.setdefault(key, []).append(peak)

    def near(self, job: Job, facts: str | None) -> list[MemoryPeak]:
        """The rows that may concern this job: its own, its facts', its team and name's."""
        found = {}
        for key in (("job", job.id), ("team", job.team, job.name), ("facts", facts)):
            for peak in self._by.get(key, ()):
                found[id(peak)] = peak
        return list(found.values())


def remember(job: Job, facts: str | None, history: MemoryHistory | Sequence[MemoryPeak],
             margin: float) -> tuple[Job, tuple[str, ...]]:
    """The job with the GPU memory its own and similar runs measured, and what was done (see the module)."""
    peaks = (history if isinstance(history, MemoryHistory) else MemoryHistory(history)).near(job, facts)
    if not peaks:
        return job, ()
    notes: list[str] = []

    def similar(p: MemoryPeak) -> bool:  # the same facts; else the same team and name where one side gives none
        if facts is not None and p.facts is not None:
            return p.facts == facts
        return (p.team, p.name) == (job.team, job.name)

    measured = [p for p in peaks if not p.out_of_memory and p.peak_bytes is not None and p.job_id != job.id
                and similar(p)]
    if measured and (job.gpu_memory_gb is None or job.gpu_memory_estimated):
        same = [p for p in measured if facts is not None and p.facts == facts]
        latest = max(same or measured, key=lambda p: (p.at, p.job_id))
        peak_gb = math.ceil(round(latest.peak_bytes / 1e9 * 10, 6)) / 10
        was = f"the estimate {job.gpu_memory_gb:g} GB" if job.gpu_memory_gb is not None else "no figure"
        whose = "a run with the same model facts" if same else "a run of the same team and name"
        notes.append(f"measured peak {peak_gb:g} GB of {whose} ({latest.job_id} on {latest.gpu_type or 'a GPU'}) "
                     f"replaces {was}; placed with the policy's {margin:.0%} margin")
        job = dataclasses.replace(job, gpu_memory_gb=peak_gb, gpu_memory_estimated=True)
    ran_out = [p for p in peaks if p.out_of_memory and p.gpu_memory_gb is not None
               and (p.job_id == job.id or similar(p))]
    if ran_out:
        worst = max(ran_out, key=lambda p: (p.gpu_memory_gb, p.at))
        floor = round(worst.gpu_memory_gb + LARGER_BY_GB, 6)
        whose = "its last run" if worst.job_id == job.id else f"similar run {worst.job_id}"
        needed = job.gpu_memory_needed(margin)
        if needed is None or needed < floor:
            job = dataclasses.replace(job, gpu_memory_gb=floor, gpu_memory_estimated=False)
            notes.append(f"{whose} ran out of GPU memory on {worst.gpu_type} ({worst.gpu_memory_gb:g} GB): needs "
                         f"a GPU with more than {worst.gpu_memory_gb:g} GB")
        else:
            notes.append(f"{whose} ran out of GPU memory on {worst.gpu_type} ({worst.gpu_memory_gb:g} GB); its "
                         f"need of {needed:g} GB already rules that GPU out")
    return job, tuple(notes)
