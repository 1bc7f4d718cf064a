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


@dataclass(frozen=True, slots=True)
class Observation:
    status: WorkStatus
    message: str = ""


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    handle: str
    job_id: str
    attempt: int
    placement: Placement
    spec: dict[str, Any]  # the job spec as submitted (SkyPilot task fields plus `placement:`)
    metadata: dict[str, str] = field(default_factory=dict)


class LaunchError(Exception):
    """A launch the provider refused; `retryable` when another offer or a later round may succeed."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


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

    def terminate(self, handle: str) -> None:
        ...

    def logs(self, handle: str) -> str:
        ...
