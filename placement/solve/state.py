"""What one round knows, as typed facts: the input of `placement.solve.decide.decide`.

Everything here is observed or recorded, never decided: the service builds a
`State` from its store and providers (`placement.state_builder`), `placement
plan` from the inventory and catalogs, a replay from its simulated clock. The
time is a fact too (`State.now`), so the same State gives the same Decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from placement.model import Demand, DurationRatio, Job, Offer, Running
from placement.solve.downscale import RunningWork
from placement.solve.fairshare import UsageSpan
from placement.solve.limits import Accrued


@dataclass(frozen=True)
class Failover:
    """What a failed launch costs: how long its offer (or cloud) is avoided, and how often a job may fail."""

    cooldown_s: float = 600.0
    max_attempts: int = 4  # failed launches after which the core gives up on a job (LaunchAttemptsExhausted)
    launch_timeout_s: float = 1800.0  # a launch that leaves no trace this long after it was made has failed


@dataclass(frozen=True, slots=True)
class RunningJob:
    """Work that holds capacity: what placement weighs (`placed`) and, once launched, what caps weigh (`work`)."""

    placed: Running
    work: RunningWork | None = None  # None: planned, not launched; it holds capacity and spends nothing yet
    offer: Offer | None = None  # the offer it runs on, priced as the catalog prices it now (repricing)
    demand: Demand = Demand()  # what it holds per node, as the offer prices it
    num_nodes: int = 1

    @property
    def job_id(self) -> str:
        return self.placed.job_id


@dataclass(frozen=True, slots=True)
class LaunchFailures:
    """A pending job's failed launches over its whole life, and what the last one said."""

    job_id: str
    attempts: int
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Cooldown:
    """Offers avoided after a failed launch, until `until` (the reconciler records it with the failure)."""

    offer_ids: frozenset[str]
    until: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Replica:
    """A service replica that has not ended."""

    job_id: str
    number: int  # `<service>-replica-<number>`
    pending: bool
    submitted_at: float


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    """A service's replica limits, its load signal and the replicas it has."""

    id: str
    name: str
    min_replicas: int
    max_replicas: int
    target_qps: float | None  # per replica; None: a fixed replica count
    load_qps: float | None  # None: no load reported yet
    replicas: tuple[Replica, ...] = ()
    next_number: int = 1  # the number a new replica gets (numbers are never reused)


@dataclass(frozen=True, slots=True)
class State:
    """Everything `decide` knows about one round."""

    now: float  # seconds since the epoch, from the caller's (injected) clock
    pending: tuple[Job, ...] = ()
    running: tuple[RunningJob, ...] = ()
    offers: tuple[Offer, ...] = ()  # with the free capacity on-prem nodes have now
    pool_quotas: tuple[tuple[str, float], ...] = ()
    cooldowns: tuple[Cooldown, ...] = ()
    accrued: Mapping[str, Accrued] = field(default_factory=dict)  # $ spent this UTC day and month, per cap scope
    over_since: Mapping[str, float] = field(default_factory=dict)  # scope -> when it went over its limit
    failures: tuple[LaunchFailures, ...] = ()
    services: tuple[ServiceFacts, ...] = ()
    duration_ratios: tuple[DurationRatio, ...] = ()
    reserved: frozenset[str] = frozenset()  # jobs holding a reservation the last round recorded
    succeeded: frozenset[str] = frozenset()  # pipeline predecessors that succeeded
    failed: frozenset[str] = frozenset()  # ... and those that failed or were cancelled
    failover: Failover = Failover()
    usage: tuple[UsageSpan, ...] = ()  # runs that held owned GPUs in the fair-share window (fair sharing on)
