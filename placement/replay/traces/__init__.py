"""Trace adapters: one module per format, each turning rows into the job specs a user would write.

`load_trace(path, format)` picks the adapter; every adapter returns a `Trace` (jobs in arrival order,
skipped rows with the first few reasons, and the trace's own nodes where it has them).
"""

from __future__ import annotations

from pathlib import Path

from placement.replay.traces.common import MAX_WAIT_BY_PRIORITY, Skipped, Trace, TraceJob
from placement.replay.traces.dlrm import load_dlrm
from placement.replay.traces.jobs import load_jobs
from placement.replay.traces.openb import load_openb
from placement.replay.traces.philly import load_philly

FORMATS = ("openb", "philly", "dlrm", "jobs")

DEFAULTS_HELP = (
    "Defaults filled in where a trace says nothing: tiers onprem, private, public; max_wait by priority "
    "(critical 10m, high 30m, normal 2h, low none); expected_hours = the true run time (see --estimate-noise). "
    "openb: priority from qos (Guaranteed critical, LS high, Burstable normal, BE low), team openb, spot_ok for "
    "BE, GPU jobs only, any of G2, G3, T4, P100, V100, V100-32GB, A10, A10G; a 1-GPU pod's gpu_milli as a "
    "fraction of a GPU. philly: nodes = num_machines, num_gpus split evenly, any of P100, V100, 4 vCPUs and "
    "16 GB per GPU, team vc-<vc>, priority normal. dlrm: each GPU instance a replica from creation to deletion, "
    "any of T4, A10G, L4, priority high, team serving-<app mod 4>. jobs: see README (CSV or JSONL columns).")


def load_trace(path: str | Path, format: str, nodes: str | Path | None = None) -> Trace:
    """The trace at `path` in `format` (openb also reads its nodes file if given)."""
    if format == "openb":
        return load_openb(path, nodes)
    if format == "philly":
        return load_philly(path)
    if format == "dlrm":
        return load_dlrm(path)
    if format == "jobs":
        return load_jobs(path)
    raise ValueError(f"unknown trace format {format!r}; valid: {', '.join(FORMATS)}")


__all__ = ["DEFAULTS_HELP", "FORMATS", "MAX_WAIT_BY_PRIORITY", "Skipped", "Trace", "TraceJob", "load_trace"]
