"""Value objects shared by the placement core and its adapters.

Everything here is immutable and free of I/O: the solver takes a `Snapshot`
(pending jobs, offers, running work) and returns a `Plan`. Adapters (specs,
catalogs, inventory, Ray, SkyPilot) translate the outside world into these
shapes and back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Tier(StrEnum):
    """Where capacity lives, in the order users usually prefer it."""

    ONPREM = "onprem"
    PRIVATE = "private"
    PUBLIC = "public"


class Sharing(StrEnum):
    """How a job pays for and occupies an offer.

    SHARED: many jobs pack onto one machine (on-prem node, private pool) and each
    pays its share of the machine's hourly price. DEDICATED: a job takes whole
    instances (public cloud) and pays for each of them.
    """

    SHARED = "shared"
    DEDICATED = "dedicated"


@dataclass(frozen=True, slots=True)
class Demand:
    """One acceptable resource shape for one node of a job (SkyPilot's `Resources`).

    A job lists one or more of these as alternatives (`accelerators: {A100: 8, H100: 8}`,
    `any_of`, `ordered`); `rank` orders them when the spec said `ordered`.
    """

    accelerator: str | None = None  # canonical GPU name, None for CPU-only
    accelerator_count: float = 0  # per node; fractions allowed for on-prem sharing
    cpus: float = 0.0  # minimum vCPUs per node
    memory_gb: float = 0.0  # minimum host memory per node
    cloud: str | None = None  # pin, as SkyPilot's infra/cloud
    region: str | None = None
    zone: str | None = None
    use_spot: bool | None = None  # True: spot only, False: on-demand only, None: the job's spot_ok decides
    instance_type: str | None = None
    rank: int = 0
    # The clouds whose catalogs sell `accelerator` (TPUs: GCP), found where the name is made canonical, so the
    # core tells a GPU no offer in this snapshot has (NoOfferSellsGpu) from one nobody sells without a catalog.
    # A fact about the name, not part of the shape: demands for the same shape are equal whoever sells it.
    sellers: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Job:
    """A pending job as the core sees it: what it needs, who owns it, what it may cost."""

    id: str
    name: str
    team: str
    priority: str
    demands: tuple[Demand, ...]
    num_nodes: int = 1
    expected_hours: float = 1.0
    max_wait_hours: float | None = None
    tiers: frozenset[Tier] = frozenset(Tier)
    spot_ok: bool = False
    budget_usd: float | None = None
    onprem_only: bool = False  # data residency: never leaves on-prem
    gpu_memory_gb: float | None = None  # minimum GPU memory per GPU (an estimate's central figure if estimated)
    waited_hours: float = 0.0  # time already spent queued, from the store
    gpu_memory_estimated: bool = False  # gpu_memory_gb is an estimate: the policy's memory margin is added to it
    after: str | None = None  # a pipeline's previous task: this job waits until that one succeeded
    group: str | None = None  # a job group (its first job's id): its jobs are placed together or not at all
    # Fair sharing (placement/solve/fairshare.py): the factor on the value of its delay while its team's share of
    # owned GPUs is over its weight (1: not over, or fair sharing off).
    fair_share_factor: float = 1.0

    def gpu_memory_needed(self, margin: float) -> float | None:
        """The GPU memory an offer must have: an estimate x (1 + margin), a figure given outright as it is."""
        if self.gpu_memory_gb is None or not self.gpu_memory_estimated:
            return self.gpu_memory_gb
        return math.ceil(round(self.gpu_memory_gb * (1 + margin) * 10, 6)) / 10


@dataclass(frozen=True, slots=True)
class Offer:
    """A place a job can run: an on-prem node, a private pool's node shape, or a public instance type."""

    id: str
    tier: Tier
    provider: str  # "onprem", "private", "aws", "gcp", "azure", "lambda", ...
    name: str  # node name, pool name or instance type
    sharing: Sharing
    gpu: str | None
    gpu_count: float
    gpu_memory_gb: float
    vcpus: float
    memory_gb: float
    price_per_hour: float  # for the whole machine (on-demand or spot)
    spot: bool = False
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    capacity: int | None = 1  # machines available now; None: unbounded (public)
    pool: str | None = None  # private pool whose GPU quota this offer draws on
    gco2_per_kwh: float | None = None
    gpu_watts: float | None = None  # per GPU under load
    host_watts: float = 0.0  # CPU, memory and the rest, per machine under load
    labels: tuple[tuple[str, str], ...] = ()
    # The whole machine that `price_per_hour` pays for, where `gpu_count`, `vcpus` and `memory_gb` say only
    # what is free now (an on-prem node with work on it); None: the free amounts are the whole machine.
    whole: tuple[float, float, float] | None = None  # (GPUs, vCPUs, memory GB)
    # EASY backfill: the node is reserved for `reserved_for` from `free_for_hours` from now on, so other work may
    # use it only if it is expected to end by then (None: no reservation).
    reserved_for: str | None = None
    free_for_hours: float | None = None

    @property
    def whole_gpus(self) -> float:
        """GPUs of the whole machine, free or not."""
        return self.whole[0] if self.whole else self.gpu_count

    def job_price_per_hour(self, demand: Demand) -> float:
        """What one node of a job with this demand pays per hour on this offer."""
        if self.sharing is Sharing.DEDICATED:
            return self.price_per_hour
        return self.price_per_hour * self.share(demand)

    def share(self, demand: Demand) -> float:
        """The job's dominant share of the whole machine (GPUs if it has any, else CPUs or memory).

        Measured against the machine's total, not what is free: the last free GPU of a busy node costs
        one GPU's share of its price, not the whole node's.
        """
        gpus, vcpus, memory_gb = self.whole or (self.gpu_count, self.vcpus, self.memory_gb)
        if gpus > 0 and demand.accelerator_count > 0:
            return min(1.0, demand.accelerator_count / gpus)
        shares = [demand.cpus / vcpus if vcpus else 0.0, demand.memory_gb / memory_gb if memory_gb else 0.0]
        return min(1.0, max(shares))


@dataclass(frozen=True, slots=True)
class Running:
    """Work already running: it holds capacity and spends money against caps and quotas."""

    job_id: str
    team: str
    tier: Tier
    offer_id: str
    gpus: float
    rate_per_hour: float  # $ per hour it costs now
    pool: str | None = None
    # What the capacity forecast needs (placement/solve/forecast.py): the on-prem nodes it holds and what it
    # holds on each, how long it has run and how long it was expected to run (None: no expected end, a service).
    name: str = ""
    nodes: tuple[str, ...] = ()
    per_node: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (GPUs, vCPUs, memory GB) held on each node
    elapsed_hours: float = 0.0
    expected_hours: float | None = None
    # Moving it back on-prem (placement/solve/migrate.py): whether it may be restarted, and what a restart costs.
    priority: str = ""
    gpu: str | None = None
    migratable: bool = False
    restart_hours: float | None = None  # None: the policy's downscale.restart_hours
    preemptible: bool = False  # may be displaced by higher-priority work (placement/solve/preempt.py)
    max_wait_hours: float | None = None  # how long it may wait once displaced before it bursts


@dataclass(frozen=True, slots=True)
class DurationRatio:
    """How long finished runs of a team (and job name) really ran, as a multiple of their expected hours."""

    team: str
    name: str | None  # None: the team's ratio over all its job names
    ratio: float
    runs: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one placement round knows: pending jobs, offers with free capacity, running work."""

    jobs: tuple[Job, ...]
    offers: tuple[Offer, ...]
    running: tuple[Running, ...] = ()
    pool_quotas: tuple[tuple[str, float], ...] = ()  # private pool -> GPU quota
    blocked_offers: frozenset[str] = frozenset()  # offers on cool-down after a failed launch
    duration_ratios: tuple[DurationRatio, ...] = ()  # learned from finished runs (forecast.learn_ratios)
    reserved: frozenset[str] = frozenset()  # jobs holding a reservation recorded by the last round


class ReasonCode(StrEnum):
    """Why a job is not placed this round (Kueue's pending reasons, Slurm's reason codes)."""

    NO_FEASIBLE_TARGET = "NoFeasibleTarget"  # no GPU type / shape fits anywhere
    NO_OFFER_SELLS_GPU = "NoOfferSellsGpu"  # a GPU SkyPilot knows, but no node, pool or catalog offer has it
    INSUFFICIENT_GPU_MEMORY = "InsufficientGpuMemory"  # every GPU of the asked type is too small
    RESIDENCY = "ResidencyForbids"  # only on-prem allowed, and on-prem has no capacity
    OVER_QUOTA = "OverQuota"
    OVER_BORROWING_LIMIT = "OverBorrowingLimit"  # over its quota, and borrowing more would pass its borrowing_limit
    OVER_SURGE_CAP = "OverSurgeCap"
    OVER_BUDGET = "OverBudget"
    WAITING_FOR_CAPACITY = "WaitingForCapacity"
    WAITING_FOR_FAIR_SHARE = "WaitingForFairShare"  # capacity goes to teams under their weight first
    WAITING_FOR_RESERVED_CAPACITY = "WaitingForReservedCapacity"  # holds a reservation on the nodes that free first
    WAITING_FOR_PREDECESSOR = "WaitingForPredecessor"  # a pipeline's previous task has not succeeded yet
    WAITING_FOR_GROUP = "WaitingForGroup"  # another job of its job group cannot be placed this round
    PREDECESSOR_FAILED = "PredecessorFailed"  # a pipeline's previous task failed: this one never runs
    LAUNCH_ATTEMPTS_EXHAUSTED = "LaunchAttemptsExhausted"  # its launches failed Failover.max_attempts times: given up


class OutcomeCode(StrEnum):
    """Why acting on a job, or watching it, sent it back to pending or ended it (set by the reconciler, not by a
    round: a round's reasons are `ReasonCode`s)."""

    LAUNCH_FAILED = "LaunchFailed"
    DOWNSCALED = "Downscaled"
    MIGRATING = "Migrating"
    PREEMPTED = "Preempted"
    REQUEUED = "Requeued"  # its node was lost
    OUT_OF_MEMORY = "OutOfMemory"  # placed again on a GPU with more memory
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    message: str
    scope: str | None = None  # team, pool, cap scope or GPU name the reason is about

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class Placement:
    """One job put on one offer (on several machines for multi-node jobs on shared tiers)."""

    job_id: str
    offer_id: str
    tier: Tier
    provider: str
    target: str  # node name(s), pool or instance type
    gpu: str | None
    gpus_per_node: float
    num_nodes: int
    spot: bool
    rate_per_hour: float  # $ per hour for the whole job
    expected_cost: float  # $ over expected_hours
    objective: float  # the policy-weighted cost of this choice
    nodes: tuple[str, ...] = ()  # the concrete on-prem nodes chosen by the packer
    region: str | None = None
    cpus_per_node: float = 0.0  # what the job reserves on each node (its demand)
    memory_gb_per_node: float = 0.0


@dataclass(frozen=True, slots=True)
class SolveStats:
    method: str  # "milp", "greedy", "milp+repair", ...
    status: str  # solver status words
    build_seconds: float
    solve_seconds: float
    total_seconds: float
    objective: float
    num_classes: int = 0
    num_variables: int = 0
    lower_bound: float | None = None
    repack_seconds: float = 0.0  # of total_seconds: the exact repacks of on-prem nodes after the solve


@dataclass(frozen=True, slots=True)
class Reservation:
    """Nodes held for a waiting large job from when they are forecast to free (EASY backfill's shadow time)."""

    job_id: str
    nodes: tuple[str, ...]
    gpu: str | None
    start_hours: float  # from the round's snapshot
    hours: float  # how long the job is expected to hold them
    premium_usd: float  # what starting now on the cheapest other capacity would cost more than waiting


@dataclass(frozen=True, slots=True)
class Migration:
    """Running cloud work moved to on-prem capacity that freed: stopped gracefully, then started on `nodes`."""

    job_id: str
    from_offer: str
    nodes: tuple[str, ...]
    remaining_hours: float
    saves_usd: float  # remaining hours x (its rate - the on-prem rate), less the restart cost
    restart_usd: float
    reason: str
    placement: Placement  # where it starts again (a new attempt)


@dataclass(frozen=True, slots=True)
class Preemption:
    """A queued job started now on on-prem nodes by stopping lower-priority work there (each victim whole)."""

    job_id: str
    victims: tuple[str, ...]  # running jobs stopped, gracefully, and requeued
    victim_teams: tuple[str, ...]  # each victim's team, in the same order
    nodes: tuple[str, ...]
    gain_usd: float  # the job's value less the victims' value and their restart
    reason: str  # what each victim is told: Preempted(by=JOB, gain=$X): ...
    placement: Placement  # where the job starts
    reclaim: bool = False  # the victims ran on quota the job's team lent them (borrowing), not lower priority


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer of one round: where each job goes, or why it waits."""

    placements: tuple[Placement, ...]
    queued: tuple[tuple[str, Reason], ...]
    stats: SolveStats
    queue_costs: tuple[tuple[str, float], ...] = field(default=())
    reservations: tuple[Reservation, ...] = ()
    migrations: tuple[Migration, ...] = ()
    preemptions: tuple[Preemption, ...] = ()

    def placement_of(self, job_id: str) -> Placement | None:
        return next((p for p in self.placements if p.job_id == job_id), None)

    def reason_of(self, job_id: str) -> Reason | None:
        return next((r for j, r in self.queued if j == job_id), None)
