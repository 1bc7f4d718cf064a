"""What the service answers, as typed values: the schema of `status`, `spend` and `explain`.

In the manner of Ray's state API schema (`ray/util/state/common.py`): frozen dataclasses, one per kind of
row, built by `placement.queries` and turned into JSON-ready dicts by `to_json` only where an answer leaves
the process (the engine's public methods, which the service actor serves as they are, and the CLI prints).
A field marked `OMITTED_IF_NONE` is left out of the dict when it holds nothing, so that "there is none" reads
as a missing key, as the CLI and the status page expect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

OMITTED_IF_NONE = {"omit_if_none": True}


def to_json(answer: Any) -> Any:
    """An answer (or a list of them) as dicts, lists and plain values: enums by value, tuples as lists."""
    if dataclasses.is_dataclass(answer) and not isinstance(answer, type):
        return {f.name: to_json(value) for f in dataclasses.fields(answer)
                if not ((value := getattr(answer, f.name)) is None and f.metadata.get("omit_if_none"))}
    if isinstance(answer, (list, tuple)):
        return [to_json(item) for item in answer]
    if isinstance(answer, dict):
        return {key: to_json(value) for key, value in answer.items()}
    if isinstance(answer, Enum):
        return answer.value
    return answer


@dataclass(frozen=True, slots=True)
class FairShareAnswer:
    """A team's fair share in the last round (`placement.solve.fairshare.TeamShare`)."""

    share: float  # of every team's decayed GPU-hours, 0..1
    weight: float  # its fair share, 0..1
    gpu_hours: float  # decayed
    factor: float  # on the value of its jobs' delay
    over: bool
    summary: str


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job in `status`: its state and placement, spend, energy and carbon so far, and why it waits."""

    id: str
    name: str
    team: str
    priority: str
    state: str
    tier: str | None
    target: str | None
    gpus: float | None  # over all its nodes; None: not placed
    usd_per_hour: float | None
    spent_usd: float
    age_s: float
    run_s: float | None
    attempt: int
    handle: str | None
    nodes: tuple[str, ...]
    reason_code: str | None
    reason: str | None
    service: str | None
    energy_kwh: float | None  # None: it never ran, or its figures were not asked for
    carbon_kg: float | None
    rightsizing: tuple[str, ...]  # what similar jobs' flags do to it (not finished jobs only)
    fair_share: FairShareAnswer | None = field(default=None, metadata=OMITTED_IF_NONE)  # `--team`, fair sharing on


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One scope in `spend`: its rate now, accrued and projected spend, and what its caps allow now."""

    scope: str
    usd_per_hour: float
    today_usd: float
    month_usd: float
    projected_day_usd: float
    projected_month_usd: float
    cap: dict[str, Any] | None  # the policy's cap of the scope, as written
    limit_usd_per_hour: float | None
    binding: str | None  # which cap or budget sets the limit
    over: bool
    fair_share: FairShareAnswer | None = field(default=None, metadata=OMITTED_IF_NONE)  # a team's, fair sharing on


@dataclass(frozen=True, slots=True)
class JobEvent:
    at: float
    kind: str
    detail: str | None


@dataclass(frozen=True, slots=True)
class RightsizingOption:
    """A similar job's flag and what it did to this job's options."""

    similar_job: str
    kind: str
    reason: str
    recommendation: str
    alternative: str | None  # the demand it added, as a shape (`placement.rightsizing.shape`)
    note: str


@dataclass(frozen=True, slots=True)
class ReservationAnswer:
    nodes: tuple[str, ...]
    gpu: str | None
    start_at: float
    until: float
    premium_usd: float


@dataclass(frozen=True, slots=True)
class Forecast:
    """When on-prem capacity was expected free for the job, and what waiting for it would cost."""

    onprem_nodes: tuple[str, ...]
    gpu: str | None
    start_in_min: float
    delay_usd: float
    onprem_usd: float
    within_max_wait: bool
    burst_premium_usd: float | None
    decision: str


@dataclass(frozen=True, slots=True)
class AlternativeOption:
    """One of the next best options of the last round, against the chosen one (or waiting)."""

    tier: str
    offer: str
    usd: float
    objective: float
    vs_chosen: float
    blocked_by: str | None
    from_recommendation: str | None  # the similar job whose flag brought this option's demand


@dataclass(frozen=True, slots=True)
class Explanation:
    """`explain`: a job's status and history, and (if the last round saw it) its options then."""

    job: JobStatus
    events: tuple[JobEvent, ...]
    alternatives: tuple[AlternativeOption, ...] = ()
    rightsizing: tuple[RightsizingOption, ...] = ()
    efficiency: dict[str, Any] | None = field(default=None, metadata=OMITTED_IF_NONE)  # `DebtAccounting.efficiency`
    gpu_memory: tuple[str, ...] | None = field(default=None, metadata=OMITTED_IF_NONE)  # not finished jobs only
    reservation: ReservationAnswer | None = field(default=None, metadata=OMITTED_IF_NONE)
    queue_cost: float | None = field(default=None, metadata=OMITTED_IF_NONE)
    forecast: Forecast | None = field(default=None, metadata=OMITTED_IF_NONE)
