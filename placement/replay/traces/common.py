"""What every trace adapter produces: timed job specs, the rows it skipped and why, and optionally nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clouds.inventory import NodeSpec
from placement.spec import spec_from_data

SHOWN_REASONS = 5  # skipped rows whose reason is kept (the count covers all)

# Defaults every adapter fills in where a trace says nothing (the CLI's --help and the README repeat these).
MAX_WAIT_BY_PRIORITY = {"critical": "10m", "high": "30m", "normal": "2h"}  # low: none
TIERS = ["onprem", "private", "public"]


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace: when it arrives, the spec a user would have written, and how long it really runs."""

    submit_s: float  # seconds from the trace's start
    spec: dict[str, Any]  # SkyPilot task fields plus `placement:` (its expected_hours: the true run time)
    true_hours: float
    source: str  # "file:line", for messages

    @property
    def priority(self) -> str:
        return self.spec["placement"]["priority"]


@dataclass
class Skipped:
    """Rows left out: how many, and the first few reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, source: str, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < SHOWN_REASONS:
            self.reasons.append(f"{source}: {reason}")

    def __str__(self) -> str:
        if not self.count:
            return "no rows skipped"
        more = f" (first {len(self.reasons)})" if self.count > len(self.reasons) else ""
        return f"{self.count} rows skipped{more}:\n  " + "\n  ".join(self.reasons)


@dataclass
class Trace:
    """A loaded trace: its jobs in arrival order, what was skipped, and the cluster's nodes if it ships them."""

    name: str
    jobs: list[TraceJob]
    skipped: Skipped
    nodes: list[NodeSpec] | None = None  # openb: the trace's own cluster

    def window(self, start_s: float, end_s: float) -> Trace:
        """Only the jobs submitted in [start_s, end_s), their times shifted to start at 0."""
        kept = [TraceJob(j.submit_s - start_s, j.spec, j.true_hours, j.source) for j in self.jobs
                if start_s <= j.submit_s < end_s]
        return Trace(self.name, kept, self.skipped, self.nodes)


def job_spec(name: str, *, accelerators: dict[str, float] | None, cpus: float, memory_gb: float, hours: float,
             team: str, priority: str, spot_ok: bool = False, max_wait: str | None = None, num_nodes: int = 1,
             tiers: list[str] | None = None) -> dict[str, Any]:
    """The spec a user would write for this job (the run command is a placeholder: nothing runs)."""
    resources: dict[str, Any] = {}
    if accelerators:
        resources["accelerators"] = dict(accelerators)
    if cpus > 0:
        resources["cpus"] = f"{cpus:g}+"
    if memory_gb > 0:
        resources["memory"] = f"{memory_gb:g}+"
    placement: dict[str, Any] = {"team": team, "priority": priority, "expected_hours": round(max(hours, 1e-4), 6),
                                 "tiers": list(tiers or TIERS), "spot_ok": spot_ok}
    wait = max_wait if max_wait is not None else MAX_WAIT_BY_PRIORITY.get(priority)
    if wait is not None:
        placement["max_wait"] = wait
    spec: dict[str, Any] = {"name": name, "resources": resources, "run": "true", "placement": placement}
    if num_nodes > 1:
        spec["num_nodes"] = num_nodes
    return spec


def add_checked(jobs: list[TraceJob], skipped: Skipped, job: TraceJob) -> None:
    """Keep the job if its spec is one the engine accepts, else skip it with the validator's words."""
    try:
        spec_from_data(job.spec, job.source)
    except ValueError as exc:
        skipped.add(job.source, str(exc).split(": ", 1)[-1].replace("\n", " ")[:300])
        return
    jobs.append(job)


def number(row: dict[str, str], column: str, *, minimum: float | None = None, required: bool = True) -> float | None:
    """A numeric cell, or ValueError naming the column, what it holds and what is valid."""
    text = (row.get(column) or "").strip()
    if not text:
        if required:
            raise ValueError(f"{column} is empty (a number is needed)")
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} is {text!r}, not a number") from None
    if value != value or (minimum is not None and value < minimum):
        raise ValueError(f"{column} is {text}; valid: a number >= {minimum:g}")
    return value
