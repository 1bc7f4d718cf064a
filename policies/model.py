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

from placement.model import Tier

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
    usd_per_hour: float = Field(gt=0, description="Ceiling on the spend rate of private + public work.")


class Caps(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    global_: CapSpec | None = Field(None, alias="global", description="Cap over every team together.")
    teams: dict[str, CapSpec] = Field(default_factory=dict)


class TierQuota(_Strict):
    onprem: float | None = Field(None, ge=0, description="GPUs the team may hold on-prem.")
    private: float | None = Field(None, ge=0)
    public: float | None = Field(None, ge=0)

    def limit(self, tier: Tier) -> float | None:
        return getattr(self, tier.value)


class SolverSettings(_Strict):
    backend: Literal["highs", "cbc"] = Field("highs", description="HiGHS (through highspy) or PuLP's bundled CBC.")
    time_limit_s: float = Field(2.0, gt=0, description="Wall-clock limit of the integer solve.")
    mip_rel_gap: float = Field(0.001, ge=0, lt=1)
    aggregate: bool = Field(True, description="Solve over job classes and node groups (fast); "
                                              "false builds one variable per job and offer (exact, small instances).")


class Policy(_Strict):
    name: str
    description: str = ""
    weights: Weights = Weights()
    priorities: dict[str, NonNegativeFloat] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITIES),
        description="Priority classes and the $ one GPU-hour of delay costs for each.")
    expected_wait_hours: float = Field(
        1.0, gt=0, description="How long a job left queued is expected to wait for the capacity it prefers.")
    overdue_multiplier: float = Field(
        10.0, ge=1, description="Delay costs this many times more once a job has waited past its max_wait.")
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
    quotas: dict[str, TierQuota] = Field(default_factory=dict, description="GPUs per tier, per team.")
    solver: SolverSettings = SolverSettings()

    @model_validator(mode="after")
    def _priorities_non_empty(self) -> Policy:
        if not self.priorities:
            raise ValueError("priorities must name at least one class, e.g. {normal: 2.0}")
        return self

    def delay_rate(self, priority: str) -> float:
        """$ per GPU-hour of delay for a priority class, already weighted by `latency`."""
        return self.weights.latency * self.priorities[priority]
