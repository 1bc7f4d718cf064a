"""Simulated providers for replaying traces on a simulated clock.

`SimulatedCloud` speaks the provider protocol of `clouds.base` with no cloud behind it:
it sells a fixed list of offers, and the work launched on it moves through the states
a real launch does, timed by the clock it is given (simulated seconds):

    launch -> STARTING -> RUNNING after `startup_s` -> SUCCEEDED after the job's true run time
    (`run_seconds(request)`; by default its `placement.expected_hours`; a service replica runs
    until it is terminated)

`terminate` stops the work at once. With `preemptions_per_hour`, spot work is lost after a seeded
exponential time (the same seed, job and attempt give the same moment), as a spot reclaim. Prices can be
raised mid-run (`set_price`) the way a catalog refresh would, so the engine's caps see a price increase.
`SimulatedNodes` is the on-prem tier: nodes of an inventory, offered through the same `node_offer` the
Ray provider uses. Nothing here imports Ray or SkyPilot; the engine, store, policy and solver around
them stay real. `work` keeps every launch with its times and rate, which is what a replay's figures
are computed from.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from clouds.base import LaunchRequest, Observation, WorkStatus
from clouds.onprem import node_offer
from placement.model import Offer, Tier


@dataclass(slots=True)
class SimulatedWork:
    handle: str
    launched_at: float
    run_seconds: float | None  # None: runs until terminated (a service replica)
    offer_id: str | None
    stopped_at: float | None = None
    job_id: str = ""
    tier: Tier = Tier.PUBLIC
    rate_per_hour: float = 0.0  # what the whole job pays while it runs
    gpus: float = 0.0  # GPUs the whole job holds
    gpu: str | None = None
    nodes: tuple[str, ...] = ()
    lost_at: float | None = None  # a spot reclaim, drawn at launch
    startup_s: float = 0.0

    @property
    def running_from(self) -> float:
        return self.launched_at + self.startup_s

    @property
    def ends_at(self) -> float | None:
        """When it ends by itself (success or reclaim), if nothing stops it first."""
        done = self.running_from + self.run_seconds if self.run_seconds is not None else None
        return min(t for t in (done, self.lost_at) if t is not None) if (done, self.lost_at) != (None, None) \
            else None

    def ended(self, now: float) -> float | None:
        """When it ended, if it has by `now`."""
        ends = [t for t in (self.stopped_at, self.ends_at) if t is not None and t <= now]
        return min(ends) if ends else None


def _spec_seconds(request: LaunchRequest) -> float | None:
    spec = request.spec
    if spec.get("service") is not None:
        return None
    hours = (spec.get("placement") or {}).get("expected_hours", 1.0)
    return float(hours) * 3600.0


class SimulatedCloud:
    """A public or private tier on a simulated clock (see the module docstring)."""

    def __init__(self, offers: Iterable[Offer], clock: Callable[[], float], *, tier: Tier = Tier.PUBLIC,
                 name: str = "simulated", startup_s: float = 120.0,
                 run_seconds: Callable[[LaunchRequest], float | None] = _spec_seconds,
                 preemptions_per_hour: float = 0.0, seed: int = 0):
        if startup_s < 0:
            raise ValueError(f"startup_s must be >= 0 simulated seconds, got {startup_s}")
        if preemptions_per_hour < 0:
            raise ValueError(f"preemptions_per_hour must be >= 0, got {preemptions_per_hour}")
        self.tier = tier
        self.name = name
        self.clock = clock
        self.startup_s = startup_s
        self.run_seconds = run_seconds
        self.preemptions_per_hour = preemptions_per_hour
        self.seed = seed
        self._offers = {o.id: o for o in offers if o.tier is tier}
        self.work: dict[str, SimulatedWork] = {}
        self._live: dict[str, SimulatedWork] = {}  # work that may still change by itself (next_change)
        self.launched: list[str] = []  # handles, in launch order (a repeated handle is not launched again)
        self.terminated: list[tuple[str, float]] = []  # (handle, grace_seconds) of each stop that stopped something

    def offers(self, reserved: dict[str, tuple[float, float, float]]) -> list[Offer]:
        return list(self._offers.values())

    def offer(self, offer_id: str) -> Offer | None:
        return self._offers.get(offer_id)

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
        now = self.clock()
        placement = request.placement
        offer_id = request.offer.id if request.offer else placement.offer_id
        lost_at = None
        if placement.spot and self.preemptions_per_hour > 0:
            # Seeded by the job and attempt, not the handle (which names the store): same seed, same reclaims.
            draw = random.Random(f"{self.seed}:{request.job_id}:{request.attempt}").expovariate(
                self.preemptions_per_hour)
            lost_at = now + self.startup_s + draw * 3600.0
        self.work[request.handle] = SimulatedWork(
            request.handle, now, self.run_seconds(request), offer_id, job_id=request.job_id, tier=self.tier,
            rate_per_hour=placement.rate_per_hour, gpus=placement.gpus_per_node * max(len(placement.nodes), 1)
            if self.tier is Tier.ONPREM else placement.gpus_per_node * placement.num_nodes, gpu=placement.gpu,
            nodes=placement.nodes, lost_at=lost_at, startup_s=self.startup_s)
        self._live[request.handle] = self.work[request.handle]
        self.launched.append(request.handle)

    def observe(self, handles: list[str]) -> dict[str, Observation]:
        return {h: self._status(h) for h in handles}

    def _status(self, handle: str) -> Observation:
        work = self.work.get(handle)
        if work is None:
            return Observation(WorkStatus.MISSING)
        if work.stopped_at is not None:
            return Observation(WorkStatus.STOPPED, "terminated")
        now = self.clock()
        if work.lost_at is not None and now >= work.lost_at and (
                work.run_seconds is None or work.lost_at < work.running_from + work.run_seconds):
            return Observation(WorkStatus.LOST, "spot capacity reclaimed")
        elapsed = now - work.running_from
        if elapsed < 0:
            return Observation(WorkStatus.STARTING)
        if work.run_seconds is not None and elapsed >= work.run_seconds:
            return Observation(WorkStatus.SUCCEEDED)
        return Observation(WorkStatus.RUNNING)

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        work = self.work.get(handle)
        if work is not None and work.stopped_at is None:
            ended = work.ended(self.clock())
            work.stopped_at = ended if ended is not None else self.clock()  # an end already reached stays the end
            self.terminated.append((handle, grace_seconds))

    def logs(self, handle: str) -> str:
        return f"{handle}: {self._status(handle).status.value}"

    def running(self) -> list[str]:
        """Handles of the work running now (what is being paid for past start-up)."""
        return [h for h in self.work if self._status(h).status is WorkStatus.RUNNING]

    def next_change(self, after: float) -> float:
        """The earliest moment after `after` when some work's state changes by itself (inf: none)."""
        soonest = math.inf
        for handle, work in list(self._live.items()):
            ends = work.ends_at
            if work.stopped_at is not None or (ends is not None and ends <= after):
                del self._live[handle]  # ended: nothing more will change by itself
                continue
            for t in (work.running_from, ends):
                if t is not None and after < t < soonest:
                    soonest = t
        return soonest


class SimulatedNodes(SimulatedCloud):
    """The on-prem tier: an inventory's nodes, offered as the Ray provider offers live nodes (`node_offer`)."""

    def __init__(self, nodes: Iterable[Offer], clock: Callable[[], float], *, name: str = "onprem",
                 startup_s: float = 60.0, run_seconds: Callable[[LaunchRequest], float | None] = _spec_seconds):
        """`nodes`: the inventory's on-prem offers (`Inventory.offers()`), one per machine."""
        super().__init__((), clock, tier=Tier.ONPREM, name=name, startup_s=startup_s, run_seconds=run_seconds)
        self.nodes = {o.name: o for o in nodes if o.tier is Tier.ONPREM}

    def offers(self, reserved: dict[str, tuple[float, float, float]]) -> list[Offer]:
        return [node_offer(name, facts.gpu, facts.gpu_count, facts.vcpus, facts.memory_gb,
                           reserved.get(name, (0.0, 0.0, 0.0)), facts, self.name)
                for name, facts in self.nodes.items()]
