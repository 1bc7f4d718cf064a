"""Alibaba 2025 DLRM inference instances: each GPU instance is one service replica, run as a job.

A replica arrives at `creation_time` and runs until `deletion_time` (seconds from the trace's start),
so the replicas alive at a moment are the service's replica count then. Each becomes a job named after
its app: `gpu_request` GPUs of any type in `gpus` (default DLRM_GPUS, inference GPUs a cloud sells),
`cpu_request`+ vCPUs, `memory_request`+ GB; team = `app_<n> mod 4` as `serving-<k>`; priority high
(serving), no spot, max_wait by priority. Rows without a creation or deletion time, or with no GPU,
are skipped.
"""

from __future__ import annotations

import csv
from pathlib import Path

from placement.replay.traces.common import Skipped, Trace, TraceJob, add_checked, job_spec, number

DLRM_GPUS = ("T4", "A10G", "L4")
PRIORITY = "high"


def load_dlrm(path: str | Path, gpus: tuple[str, ...] = DLRM_GPUS) -> Trace:
    path = Path(path)
    jobs: list[TraceJob] = []
    skipped = Skipped()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"app_name", "cpu_request", "gpu_request", "memory_request", "creation_time",
                   "deletion_time"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a DLRM instances file: columns {', '.join(sorted(missing))} missing")
        for row in reader:
            source = f"{path.name}:{reader.line_num}"
            try:
                job = _job(row, source, gpus)
            except ValueError as exc:
                skipped.add(source, str(exc))
                continue
            add_checked(jobs, skipped, job)
    jobs.sort(key=lambda j: (j.submit_s, j.source))
    return Trace("dlrm", jobs, skipped)


def _job(row: dict[str, str], source: str, gpus: tuple[str, ...]) -> TraceJob:
    start = number(row, "creation_time", minimum=0)
    end = number(row, "deletion_time", minimum=0)
    if end <= start:
        raise ValueError(f"deletion_time {end:g} is not after creation_time {start:g}")
    count = number(row, "gpu_request", minimum=0)
    if count <= 0:
        raise ValueError("gpu_request is 0: a CPU instance, not a GPU replica")
    app = (row.get("app_name") or "").strip() or "app"
    number_part = app.rsplit("_", 1)[-1]
    team = f"serving-{int(number_part) % 4}" if number_part.isdigit() else "serving"
    hours = (end - start) / 3600.0
    spec = job_spec(f"dlrm-{app.replace('_', '-')}", accelerators={g: count if count < 1 else int(count)
                                                                   for g in gpus},
                    cpus=number(row, "cpu_request", minimum=0), memory_gb=number(row, "memory_request", minimum=0),
                    hours=hours, team=team, priority=PRIORITY)
    return TraceJob(start, spec, hours, source)
