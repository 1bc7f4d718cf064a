"""The one small protocol every provider speaks: list offers, launch, watch, stop.

On-prem nodes, the private pool and public clouds differ only in how they
list capacity and how they start, watch and stop work. A launch is named by
its `handle` (`<job>-a<attempt>-<store>`): launching a handle that already exists is
not an error but a no-op, which is what lets a restarted service replay a
recorded launch without starting the work twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from placement.model import Offer, Placement, Tier


class WorkStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    LOST = "lost"  # the machine it ran on is gone: the job should be placed again
    MISSING = "missing"  # the provider knows no work by this handle
    LAUNCH_FAILED = "launch-failed"  # the launch itself failed (after it was accepted): see Observation.error


class Scope(StrEnum):
    """How much a failed launch rules out, from the narrowest to everything the provider offers."""

    INSTANCE = "instance"  # this instance type (pool GPU type) in this region: capacity or quota there
    CLOUD = "cloud"  # the whole cloud: its account cannot be used (credentials, access)
    PROVIDER = "provider"  # every offer of the provider: the launcher itself is down (SkyPilot's API server)


@dataclass(frozen=True, slots=True)
class Block:
    """Offers to keep away from for a cool-down after a failed launch. `None` fields are wildcards."""

    tier: Tier
    cloud: str | None = None
    region: str | None = None
    instance_type: str | None = None

    @classmethod
    def around(cls, offer: Offer, scope: Scope) -> Block:
        cloud = offer.cloud or offer.provider
        if scope is Scope.PROVIDER:
            return cls(offer.tier)
        if scope is Scope.CLOUD:
            return cls(offer.tier, cloud)
        return cls(offer.tier, cloud, offer.region, offer.name)

    def covers(self, offer: Offer) -> bool:
        return offer.tier is self.tier and all(want is None or want == have for want, have in (
            (self.cloud, offer.cloud or offer.provider), (self.region, offer.region), (self.instance_type, offer.name)))

    def __str__(self) -> str:
        return "/".join(p for p in (self.tier.value, self.cloud, self.region, self.instance_type) if p)


class LaunchError(Exception):
    """A launch the provider refused or that failed.

    `retryable`: another offer or a later round may succeed; the job goes back to pending.
    `scope`: what to keep away from for a cool-down (None: nothing). `loud`: a configuration
    problem an operator must fix (credentials, an unreachable API server), said once, loudly.
    """

    def __init__(self, message: str, *, retryable: bool = True, scope: Scope | None = None, loud: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.scope = scope
        self.loud = loud


@dataclass(frozen=True, slots=True)
class Observation:
    status: WorkStatus
    message: str = ""
    error: LaunchError | None = None  # with LAUNCH_FAILED


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    handle: str
    job_id: str
    attempt: int
    placement: Placement
    spec: dict[str, Any]  # the job spec as submitted (SkyPilot task fields plus `placement:`)
    metadata: dict[str, str] = field(default_factory=dict)
    offer: Offer | None = None  # the offer placed on (public and private tiers: what to launch)


class Provider(Protocol):
    tier: Tier
    name: str

    def offers(self, reserved: dict[str, tuple[float, float, float]]) -> list[Offer]:
        """Offers with free capacity; `reserved` maps on-prem node names to (GPUs, CPUs, GB) the engine holds."""
        ...

    def launch(self, request: LaunchRequest) -> None:
        """Start the work named `request.handle`; a no-op if it already exists. Raises LaunchError."""
        ...

    def observe(self, handles: list[str]) -> dict[str, Observation]:
        ...

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        """Stop the work (idempotent); `grace_seconds` lets it checkpoint first where the provider can."""
        ...

    def logs(self, handle: str) -> str:
        ...
