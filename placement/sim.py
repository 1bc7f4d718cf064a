"""Simulated providers for replaying traces on a simulated clock.

`SimulatedCloud` speaks the provider protocol of `clouds.base` with no cloud behind it:
it sells a fixed list of offers, and the work launched on it moves through the states
a real launch does, timed by the clock it is given (simulated seconds):

    launch -> STARTING -> RUNNING after `startup_s` -> SUCCEEDED after the job's
    `placement.expected_hours` (a service replica runs until it is terminated)

`terminate` stops the work at once. Prices can be raised mid-run (`set_price`) the way a
catalog refresh would, so the engine's caps see a price increase. Nothing here imports
Ray or SkyPilot; the engine, store, policy and solver around it stay real.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from clouds.base import LaunchRequest, Observation, WorkStatus
from placement.model import Offer, Tier


@dataclass(slots=True)
class SimulatedWork:
    handle: str
    launched_at: float
    run_seconds: float | None  # None: runs until terminated (a service replica)
    offer_id: str | None
    stopped_at: float | None = None


class SimulatedCloud:
    """A public or private tier on a simulated clock (see the module docstring)."""

    def __init__(self, offers: Iterable[Offer], clock: Callable[[], float], *, tier: Tier = Tier.PUBLIC,
                 name: str = "simulated", startup_s: float = 120.0):
        if startup_s < 0:
            raise ValueError(f"startup_s must be >= 0 simulated seconds, got {startup_s}")
        self.tier = tier
        self.name = name
        self.clock = clock
        self.startup_s = startup_s
        self._offers = {o.id: o for o in offers if o.tier is tier}
        self.work: dict[str, SimulatedWork] = {}
        self.launched: list[str] = []  # handles, in launch order (a repeated handle is not launched again)
        self.terminated: list[tuple[str, float]] = []  # (handle, grace_seconds) of each stop that stopped something

    def offers(self, reserved: dict[str, tuple[float, float, float]]) -> list[Offer]:
        return list(self._offers.values())

    def set_price(self, offer_id: str, price_per_hour: float) -> Offer:
        """Change what an offer costs from now on (a catalog refresh); returns the new offer."""
        if offer_id not in self._offers:
            raise ValueError(f"no offer {offer_id!r} in {self.name}")
        if price_per_hour < 0:
            raise ValueError(f"price_per_hour must be >= 0, got {price_per_hour}")
        offer = self._offers[offer_id] = dataclasses.replace(self._offers[offer_id], price_per_hour=price_per_hour)
        return offer

    def launch(self, request: LaunchRequest) -> None:
        if request.handle in self.work:
            return
        self.work[request.handle] = SimulatedWork(request.handle, self.clock(), _run_seconds(request.spec),
                                                  request.offer.id if request.offer else request.placement.offer_id)
        self.launched.append(request.handle)

    def observe(self, handles: list[str]) -> dict[str, Observation]:
        return {h: self._status(h) for h in handles}

    def _status(self, handle: str) -> Observation:
        work = self.work.get(handle)
        if work is None:
            return Observation(WorkStatus.MISSING)
        if work.stopped_at is not None:
            return Observation(WorkStatus.STOPPED, "terminated")
        elapsed = self.clock() - work.launched_at - self.startup_s
        if elapsed < 0:
            return Observation(WorkStatus.STARTING)
        if work.run_seconds is not None and elapsed >= work.run_seconds:
            return Observation(WorkStatus.SUCCEEDED)
        return Observation(WorkStatus.RUNNING)

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        work = self.work.get(handle)
        if work is not None and work.stopped_at is None:
            work.stopped_at = self.clock()
            self.terminated.append((handle, grace_seconds))

    def logs(self, handle: str) -> str:
        return f"{handle}: {self._status(handle).status.value}"

    def running(self) -> list[str]:
        """Handles of the work running now (what is being paid for past start-up)."""
        return [h for h in self.work if self._status(h).status is WorkStatus.RUNNING]


def _run_seconds(spec: dict) -> float | None:
    if spec.get("service") is not None:
        return None
    hours = (spec.get("placement") or {}).get("expected_hours", 1.0)
    return float(hours) * 3600.0
