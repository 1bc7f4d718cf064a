"""Microsoft Philly (2017), the DRE subset's jobs CSV.

Each row becomes one job: `num_machines` nodes of `num_gpus / num_machines` GPUs each, of any type in
`gpus` (default PHILLY_GPUS: Philly ran 12 GB and 24 GB GPUs, P100 and P40; a cloud sells P100 and V100);
team = the virtual cluster `vc`; priority normal; no spot; max_wait by priority; cpus 4+ and memory
16 GB+ per GPU (Philly records neither); expected_hours and the true run time: `runtime_min` (a job
that failed in the trace still ran that long). Arrival: `submit_time`, seconds from the first row's.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from placement.replay.traces.common import Skipped, Trace, TraceJob, add_checked, job_spec, number

PHILLY_GPUS = ("P100", "V100")
CPUS_PER_GPU = 4.0
MEMORY_GB_PER_GPU = 16.0
PRIORITY = "normal"


def load_philly(path: str | Path, gpus: tuple[str, ...] = PHILLY_GPUS) -> Trace:
    path = Path(path)
    rows: list[tuple[float, TraceJob]] = []
    skipped = Skipped()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"job_id", "vc", "submit_time", "runtime_min", "num_machines", "num_gpus"} - set(
            reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a Philly jobs file: columns {', '.join(sorted(missing))} missing")
        for row in reader:
            source = f"{path.name}:{reader.line_num}"
            try:
                rows.append((_submit(row), _job(row, source, gpus)))
            except ValueError as exc:
                skipped.add(source, str(exc))
    first = min((t for t, _ in rows), default=0.0)
    jobs: list[TraceJob] = []
    for t, job in rows:
        add_checked(jobs, skipped, TraceJob(t - first, job.spec, job.true_hours, job.source))
    jobs.sort(key=lambda j: (j.submit_s, j.source))
    return Trace("philly", jobs, skipped)


def _submit(row: dict[str, str]) -> float:
    text = (row.get("submit_time") or "").strip()
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timestamp()
    except ValueError:
        raise ValueError(f"submit_time is {text!r}; valid: YYYY-MM-DD HH:MM:SS") from None


def _job(row: dict[str, str], source: str, gpus: tuple[str, ...]) -> TraceJob:
    machines = number(row, "num_machines", minimum=1)
    total = number(row, "num_gpus", minimum=1)
    per_node = total / machines
    if machines != int(machines) or per_node != int(per_node):
        raise ValueError(f"num_gpus {row['num_gpus']} over num_machines {row['num_machines']} is not a whole "
                         f"number of GPUs per machine")
    hours = number(row, "runtime_min", minimum=0) / 60.0
    vc = (row.get("vc") or "").strip() or "philly"
    spec = job_spec(row["job_id"], accelerators={g: int(per_node) for g in gpus}, cpus=CPUS_PER_GPU * per_node,
                    memory_gb=MEMORY_GB_PER_GPU * per_node, hours=hours, team=f"vc-{vc}", priority=PRIORITY,
                    num_nodes=int(machines))
    return TraceJob(0.0, spec, max(hours, 1e-4), source)
