"""The placement policy: what a round optimises and which limits it must respect.

Every term of the objective is in dollars, so weights read as exchange rates:
`latency` turns waiting and start-up time into $ through each priority class's
$ per GPU-hour of delay, `carbon_usd_per_kg` prices emissions.  Two policies
that differ only in `latency` trade dollars against delay monotonically, which
is what lets a policy author compare them on a replayed trace.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, model_validator

from placement.memory_estimate.facts import DEFAULT_MARGIN
from placement.model import Tier
from policies.debt import DebtSettings
from placement.yamlio.errors import Invalid

DEFAULT_PRIORITIES: dict[str, float] = {"low": 0.5, "normal": 2.0, "high": 10.0, "critical": 100.0}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    cost: float = Field(1.0, ge=0, description="Weight of dollars spent (price x hours x instances).")
    latency: float = Field(1.0, ge=0, description="Multiplier on every priority's $ per GPU-hour of delay "
                                                   "(waiting in the queue and tier start-up time).")
    carbon_usd_per_kg: float = Field(0.0, ge=0, description="Dollars charged per kg CO2e emitted.")


class SpotPolicy(_Strict):
    allowed: bool = Field(True, description="Whether spot offers may be used for jobs that accept spot.")
    risk: float = Field(0.15, ge=0, le=1, description="Expected extra cost of spot (restarts, lost work) "
                                                      "as a fraction of its price.")


class CapSpec(_Strict):
    """Limits on the private + public spend of one scope (a team, or everyone); on-prem work never counts.

    Two semantics, as Slurm's GrpTRESRunMins and GrpTRESMins: `usd_per_hour` caps
    the spend rate of running work; `usd_per_day` and `usd_per_month` are budgets
    for the spend accrued in the current UTC day and month. Placement and
    downscaling both obey the tightest of them as a rate (`placement.spend`).
    Zero is allowed: a scope that may not spend on private or public capacity.
    """

    usd_per_hour: float | None = Field(None, ge=0, description="Ceiling on the spend rate of running work, $/h.")
    usd_per_day: float | None = Field(None, ge=0, description="Budget for spend accrued in the current UTC day, $.")
    usd_per_month: float | None = Field(None, ge=0,
                                        description="Budget for spend accrued in the current UTC month, $.")

    @model_validator(mode="after")
    def _sets_a_limit(self) -> CapSpec:
        if self.usd_per_hour is None and self.usd_per_day is None and self.usd_per_month is None:
            raise Invalid("a cap must set at least one limit", given="no limit",
                          valid="usd_per_hour, usd_per_day and/or usd_per_month, each a number of dollars >= 0")
        return self


class Caps(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    global_: CapSpec | None = Field(None, alias="global", description="Cap over every team together.")
    teams: dict[str, CapSpec] = Field(default_factory=dict)


class Downscale(_Strict):
    """How running work is reduced when its spend exceeds a cap (see placement/solve/downscale.py)."""

    hysteresis: float = Field(0.05, ge=0, lt=1, description="Once over a cap, reduce the spend rate to "
                                                            "cap x (1 - hysteresis), not just under it.")
    grace_seconds: float = Field(0.0, ge=0, description="How long a scope may stay over its cap before work is "
                                                        "reduced; 0 acts in the same control interval.")
    checkpoint_grace_seconds: float = Field(120.0, ge=0, description="Time a batch job told to stop (or move to "
                                                                     "spot) gets to checkpoint before it is killed.")
    restart_hours: float = Field(0.25, ge=0, description="Work lost and start-up time when a batch job is stopped "
                                                         "or moved: charged at its priority value per hour.")
    open_ended_hours: float = Field(24.0, gt=0, description="Hours of value a service replica scaled down is "
                                                            "assumed to lose (work with no expected end): a day, so "
                                                            "a high-priority replica outweighs a long low-priority "
                                                            "batch job.")
    time_limit_s: float = Field(1.0, gt=0, description="Wall-clock limit of the downscaling integer program.")


class PreemptionPolicy(_Strict):
    """When a pending job may displace running on-prem work of lower priority (placement/solve/preempt.py)."""

    enabled: bool = Field(False, description="Let a queued job stop lower-priority on-prem work to start now.")
    min_priority_gap: float = Field(2.0, ge=1, description=(
        "A job may displace only work whose priority's $ per GPU-hour of delay is at most this fraction of its "
        "own: 2 lets high ($10) displace normal ($2) but not another high job."))
    max_victims_per_round: int = Field(8, ge=0, description="Running jobs stopped by preemption per round, at most.")
    protect_running_minutes: float = Field(10.0, ge=0, description=(
        "Work that started less than this long ago is never displaced, so fresh work is not churned."))


class TierQuota(_Strict):
    """A team's GPUs per tier; on the owned tiers (on-prem, private) the teams with a quota there form a cohort
    whose idle quota a team may borrow (Kueue's cohorts: placement/solve/borrowing.py)."""

    onprem: float | None = Field(None, ge=0, description="GPUs the team may hold on-prem.")
    private: float | None = Field(None, ge=0)
    public: float | None = Field(None, ge=0)
    borrowing_limit: float = Field(0.0, ge=0, description=(
        "GPUs beyond its on-prem or private quota the team may hold of other teams' idle quota there, per tier; "
        "0 (the default): none. Borrowed work is reclaimed by preemption when its owner needs it."))
    lending_limit: float | None = Field(None, ge=0, description=(
        "GPUs of its idle on-prem or private quota other teams may borrow, per tier; None: all of it."))

    def limit(self, tier: Tier) -> float | None:
        return getattr(self, tier.value)


class FairSharePolicy(_Strict):
    """Fair sharing of owned GPUs between teams (Kueue's fair sharing, Slurm's fair-share factor:
    placement/solve/fairshare.py)."""

    enabled: bool = Field(False, description=(
        "Lower the value of a team's next placements while its share of on-prem and private GPU-hours (decayed) "
        "is above its weight's share, so at equal priority it waits behind a team that used less."))
    half_life_hours: float = Field(24.0, gt=0, description="Half-life of past GPU-hours in a team's share.")
    weights: dict[str, NonNegativeFloat] = Field(default_factory=dict, description=(
        "Each team's weight; a team not named weighs `default_weight`. A team's fair share is its weight over "
        "the weights of the teams that have used GPUs in the window or have work now."))
    default_weight: NonNegativeFloat = Field(1.0, description="The weight of a team `weights` does not name.")

    def weight(self, team: str) -> float:
        return self.weights.get(team, self.default_weight)


SAFETY_FACTOR = 20.0  # a work-limited round's wall-clock safety net, in time limits


class SolverSettings(_Strict):
    backend: Literal["highs", "cbc"] = Field("highs", description="HiGHS (through highspy) or PuLP's bundled CBC.")
    time_limit_s: float = Field(2.0, gt=0, description=(
        "What a placement round may take. Bounded by work (the default), the round's work limits are sized so "
        "that a round takes about this long on the reference machine, and the clock is only a safety net at "
        "20 x this; bounded by the clock, it is the round's deadline: the integer program gets what building, "
        "realising and explaining leave (the LP relaxation at least a quarter of it), and repacking nodes "
        "whatever is left after that."))
    mip_rel_gap: float = Field(0.001, ge=0, lt=1)
    aggregate: bool = Field(True, description="Solve over job classes and node groups (fast); "
                                              "false builds one variable per job and offer (exact, small instances).")
    work_limit: bool = Field(True, description=(
        "Bound the round by work, not by the clock, so the same state gives the same plan on any machine load: "
        "simplex iterations, branch-and-bound nodes and repack steps sized from the model "
        "(placement/solve/work.py), with 20 x `time_limit_s` only a safety net, logged as an error when a round "
        "reaches it. false: wall-clock deadlines (faster on a quiet machine, different plans under load)."))
    repack_steps: int | None = Field(None, ge=0, description=(
        "Repack steps per work-limited round; default: sized from the model to fit `time_limit_s`."))
    max_nodes: int | None = Field(None, ge=1, description=(
        "Branch-and-bound nodes per integer program of a work-limited round (HiGHS; CBC has no such limit "
        "here); default: sized from the model. Given, the class-level integer program runs at any size."))

    @property
    def budget_s(self) -> float:
        """The round's wall-clock budget: the time limit, or only a far safety net when bounded by work."""
        return self.time_limit_s * (SAFETY_FACTOR if self.work_limit else 1.0)


class MemoryPolicy(_Strict):
    """How much room an estimated GPU memory need gets (`placement.memory_estimate`)."""

    margin: float = Field(DEFAULT_MARGIN, ge=0, lt=1, description=(
        "Headroom over a GPU memory estimate: a GPU fits a job when estimate x (1 + margin) <= its memory. "
        "A need given outright (per_gpu_gb) is used as it is."))


class DebtPolicy(DebtSettings):
    """When a job counts as inefficient (`policies.debt.DebtSettings`), and what placement does about it."""

    apply_recommendations: bool = Field(False, description=(
        "Offer a new submission of a flagged job (same team and name) the shape recommended for its latest "
        "flagged run, as an alternative to its own demands; false: `explain` and `status` only show it."))


class FilesPolicy(_Strict):
    allowed_roots: list[str] = Field(default_factory=list, description=(
        "Directories of the service host that a job's local workdir and file_mounts sources may name (SkyPilot "
        "uploads them from the host that launches). Default: none; jobs name buckets or a git workdir."))


class Policy(_Strict):
    name: str
    description: str = ""
    weights: Weights = Weights()
    priorities: dict[str, NonNegativeFloat] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITIES),
        description="Priority classes and the $ one GPU-hour of delay costs for each.")
    expected_wait_hours: float = Field(
        1.0, gt=0, description="How long a job left queued is expected to wait for the capacity it prefers.")
    lookahead: bool = Field(
        True, description="Forecast when on-prem capacity frees from running work's expected ends (corrected by "
                          "finished runs): a queued job waits for it when that costs less than bursting, large "
                          "jobs get reservations, cloud work moves back when it pays. false: only capacity free "
                          "now counts, and a queued job is priced as waiting expected_wait_hours.")
    overdue_multiplier: float = Field(
        10.0, ge=1, description="Delay costs this many times more once a job has waited past its max_wait.")
    strict_max_wait: list[str] = Field(
        default_factory=lambda: ["high", "critical"], description=(
            "Priorities whose max_wait is a deadline: once waiting for on-prem capacity would start the job past "
            "it, the job takes any capacity it may use (caps and budgets still hold) rather than wait longer."))
    fragmentation_usd_per_gpu_hour: float = Field(
        0.0, ge=0, description=(
            "Best fit on owned nodes: $ per GPU-hour a job pays in the objective (not in spend) times the "
            "share of the on-prem node's GPUs it leaves free beside it, so work fills nodes already in use "
            "before it breaks up an empty one that a large job could take whole. Small next to real price "
            "differences; 0 turns it off."))
    cpus_per_gpu_equivalent: float = Field(
        8.0, gt=0, description="How many vCPUs weigh as much as one GPU when pricing a CPU-only job's delay.")
    startup_minutes: dict[Tier, float] = Field(
        default_factory=lambda: {Tier.ONPREM: 1.0, Tier.PRIVATE: 3.0, Tier.PUBLIC: 8.0},
        description="Typical time from decision to running, per tier.")
    tier_bias_usd_per_gpu_hour: dict[Tier, float] = Field(
        default_factory=dict, description="Extra $ per GPU-hour to steer work away from (or towards, if negative) a tier.")
    default_grid_gco2_per_kwh: float = Field(
        450.0, ge=0, description="Grid intensity assumed where an offer does not say (world average).")
    pue: float = Field(1.2, ge=1, description="Power usage effectiveness applied to GPU and host power.")
    spot: SpotPolicy = SpotPolicy()
    caps: Caps = Caps()
    downscale: Downscale = Downscale()
    preemption: PreemptionPolicy = PreemptionPolicy()
    fair_share: FairSharePolicy = FairSharePolicy()
    quotas: dict[str, TierQuota] = Field(default_factory=dict, description=(
        "GPUs per tier, per team, with what a team may borrow of the others' idle on-prem and private quota."))
    solver: SolverSettings = SolverSettings()
    memory: MemoryPolicy = MemoryPolicy()
    debt: DebtPolicy = Field(default_factory=DebtPolicy, description=(
        "Computational debt: when a job is flagged as inefficient, and whether its recommendation is applied."))
    files: FilesPolicy = Field(default_factory=FilesPolicy, description=(
        "Which files of the service host jobs may upload (workdir, file_mounts)."))

    @model_validator(mode="after")
    def _priorities_non_empty(self) -> Policy:
        if not self.priorities:
            raise ValueError("priorities must name at least one class, e.g. {normal: 2.0}")
        return self

    def delay_rate(self, priority: str) -> float:
        """$ per GPU-hour of delay for a priority class, already weighted by `latency`."""
        return self.weights.latency * self.priorities[priority]
