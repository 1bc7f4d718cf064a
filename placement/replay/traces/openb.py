"""Alibaba cluster-trace-gpu-v2023 ("openb"): its jobs file and its nodes file.

Each job row becomes one job spec (a user's view of the pod):
- accelerators: `num_gpu` GPUs of any type in `gpus` (default: every GPU type of the trace's cluster plus
  their public-cloud equivalents, OPENB_GPUS); `gpu_milli_per_gpu` < 1000 on a 1-GPU pod asks for that
  fraction of one GPU (T4: 0.47); `gpu_type_constraint`, where set, narrows the types.
- cpus / memory: `cpu_cores`+ and `mem_gib`+; priority from `qos` (QOS_PRIORITY); team `openb`;
  spot_ok for best-effort (BE) pods; max_wait by priority (common.MAX_WAIT_BY_PRIORITY).
- expected_hours and the true run time: `duration_s` (pods still running at the trace's end end there).
Rows with no duration (never scheduled in the trace) or a bad number are skipped with the reason.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from clouds.gpus import canonical_gpu
from clouds.inventory import import_alibaba_nodes
from placement.replay.traces.common import Skipped, Trace, TraceJob, add_checked, job_spec, number

QOS_PRIORITY = {"Guaranteed": "critical", "LS": "high", "Burstable": "normal", "BE": "low"}
# The cluster's GPU models (G2 and G3 undisclosed) and what a public cloud sells in their place.
OPENB_GPUS = ("G2", "G3", "T4", "P100", "V100", "V100-32GB", "A10", "A10G")
TEAM = "openb"


def load_openb(path: str | Path, nodes_path: str | Path | None = None, gpus: tuple[str, ...] = OPENB_GPUS,
               team: str = TEAM, include_cpu_jobs: bool = False) -> Trace:
    """The jobs of an openb jobs CSV (GPU jobs only unless `include_cpu_jobs`), and the nodes if given."""
    path = Path(path)
    jobs: list[TraceJob] = []
    skipped = Skipped()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"job_id", "submit_time_s", "duration_s", "num_gpu", "cpu_cores", "mem_gib", "qos"} - set(
            reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not an openb jobs file: columns {', '.join(sorted(missing))} missing "
                             f"(valid: job_id, submit_time_s, duration_s, num_gpu, gpu_milli_per_gpu, cpu_cores, "
                             f"mem_gib, gpu_type_constraint, qos)")
        for row in reader:
            source = f"{path.name}:{reader.line_num}"
            try:
                job = _job(row, source, gpus, team, include_cpu_jobs)
            except ValueError as exc:
                skipped.add(source, str(exc))
                continue
            if job is not None:
                add_checked(jobs, skipped, job)
    jobs.sort(key=lambda j: (j.submit_s, j.source))
    return Trace("openb", jobs, skipped, import_alibaba_nodes(nodes_path) if nodes_path else None)


def _job(row: dict[str, str], source: str, gpus: tuple[str, ...], team: str, include_cpu: bool) -> TraceJob | None:
    submit = number(row, "submit_time_s", minimum=0)
    if not (row.get("duration_s") or "").strip():
        raise ValueError(f"duration_s is empty: the pod never ran in the trace (final_phase "
                         f"{row.get('final_phase') or '-'})")
    duration = number(row, "duration_s", minimum=0)
    count = number(row, "num_gpu", minimum=0)
    if count == 0 and not include_cpu:
        return None  # a CPU-only pod: not part of a GPU replay
    if count != int(count):
        raise ValueError(f"num_gpu is {row['num_gpu']}; valid: a whole number")
    milli = number(row, "gpu_milli_per_gpu", minimum=0, required=False) or 1000.0
    per_gpu: float = 1 if count != 1 or milli >= 1000 else max(math.ceil(milli) / 1000.0, 0.001)
    allowed = gpus
    constraint = (row.get("gpu_type_constraint") or "").strip()
    if constraint:
        allowed = tuple(g for g in (canonical_gpu(c.strip()) for c in constraint.split("|")) if g)
        if not allowed:
            raise ValueError(f"gpu_type_constraint {constraint!r} names no known GPU")
    qos = (row.get("qos") or "").strip()
    if qos not in QOS_PRIORITY:
        raise ValueError(f"qos is {qos!r}; valid: {', '.join(QOS_PRIORITY)}")
    hours = duration / 3600.0
    accelerators = {g: (per_gpu if count == 1 else int(count)) for g in allowed} if count else None
    spec = job_spec(row["job_id"], accelerators=accelerators, cpus=number(row, "cpu_cores", minimum=0),
                    memory_gb=number(row, "mem_gib", minimum=0), hours=hours, team=team,
                    priority=QOS_PRIORITY[qos], spot_ok=qos == "BE")
    return TraceJob(submit, spec, max(hours, 1e-4), source)
