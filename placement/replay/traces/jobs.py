"""The generic `jobs` format: one job per CSV row or JSONL line (chosen by the file's extension).

Columns (JSONL: keys); only submit_s and duration_s are required:

| column | meaning | default |
|---|---|---|
| submit_s | arrival, seconds from the trace's start | required |
| duration_s | how long the job really runs | required |
| gpus | GPUs per node: a whole number, or a fraction below 1 of one GPU | 0 (CPU only) |
| gpu_types | the GPU types it accepts, separated by `|` (T4|V100) | JOBS_GPUS |
| cpus, memory_gb | vCPUs and GB of host memory per node (at least) | 0 |
| num_nodes | nodes | 1 |
| priority | a priority class of the policy | normal |
| team | | default |
| spot_ok | true/false, 1/0, yes/no | false |
| max_wait | a duration (30m, 2h; a number is minutes) | by priority: critical 10m, high 30m, normal 2h, low none |
| expected_hours | what the user says it will take | duration_s / 3600 (the truth) |
| name | | job-<row> |

A service is given as its replicas: one row per replica, from when it is added to when it is removed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from placement.replay.traces.common import Skipped, Trace, TraceJob, add_checked, job_spec, number

JOBS_GPUS = ("T4", "V100", "A10G", "L4")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def load_jobs(path: str | Path) -> Trace:
    path = Path(path)
    jobs: list[TraceJob] = []
    skipped = Skipped()
    for source, row in _rows(path, skipped):
        try:
            job = _job(row, source)
        except ValueError as exc:
            skipped.add(source, str(exc))
            continue
        add_checked(jobs, skipped, job)
    jobs.sort(key=lambda j: (j.submit_s, j.source))
    return Trace("jobs", jobs, skipped)


def _rows(path: Path, skipped: Skipped) -> Iterator[tuple[str, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            for number_, line in enumerate(f, 1):
                if not line.strip():
                    continue
                source = f"{path.name}:{number_}"
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    skipped.add(source, f"not JSON: {exc.msg} at column {exc.colno}")
                    continue
                if not isinstance(data, dict):
                    skipped.add(source, f"a JSON {type(data).__name__}, not an object of columns")
                    continue
                yield source, {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                               for k, v in data.items()}
        else:
            reader = csv.DictReader(f)
            for row in reader:
                yield f"{path.name}:{reader.line_num}", {k: v or "" for k, v in row.items() if k}


def _flag(row: dict[str, str], column: str) -> bool:
    text = (row.get(column) or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{column} is {text!r}; valid: true/false, 1/0, yes/no")


def _job(row: dict[str, Any], source: str) -> TraceJob:
    submit = number(row, "submit_s", minimum=0)
    duration = number(row, "duration_s", minimum=0)
    gpus = number(row, "gpus", minimum=0, required=False) or 0.0
    if gpus > 1 and gpus != int(gpus):
        raise ValueError(f"gpus is {row['gpus']}; valid: a whole number, or a fraction below 1 of one GPU")
    types = tuple(t.strip() for t in (row.get("gpu_types") or "").split("|") if t.strip()) or JOBS_GPUS
    nodes = number(row, "num_nodes", minimum=1, required=False) or 1
    if nodes != int(nodes):
        raise ValueError(f"num_nodes is {row['num_nodes']}; valid: a whole number >= 1")
    hours = duration / 3600.0
    expected = number(row, "expected_hours", minimum=0, required=False)
    line = source.rsplit(":", 1)[-1]
    spec = job_spec((row.get("name") or "").strip() or f"job-{line}",
                    accelerators={t: (gpus if gpus < 1 else int(gpus)) for t in types} if gpus else None,
                    cpus=number(row, "cpus", minimum=0, required=False) or 0.0,
                    memory_gb=number(row, "memory_gb", minimum=0, required=False) or 0.0,
                    hours=expected if expected else hours, team=(row.get("team") or "").strip() or "default",
                    priority=(row.get("priority") or "").strip() or "normal", spot_ok=_flag(row, "spot_ok"),
                    max_wait=(row.get("max_wait") or "").strip() or None, num_nodes=int(nodes))
    return TraceJob(submit, spec, max(hours, 1e-4), source)
