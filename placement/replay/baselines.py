"""What a user would run instead of the engine, on the same jobs, nodes, catalog and start-up times.

Each baseline sees the jobs' specs as the engine does (parsed by the same `placement.spec`), the on-prem
nodes' free capacity through the same offers, and launches on the same simulated providers, so the
figures are counted the same way. They rent public capacity on demand (SkyPilot's default without
`use_spot`) and do not use private pools.

- `sky-k8s`: SkyPilot with on-prem as a Kubernetes cloud. A job goes on-prem if a node has room now
  (first fit, nodes by name), else at once to the cheapest public offer that fits.
- `onprem-fifo`: Slurm without a cloud: FIFO with EASY backfill. The first waiting job gets a
  reservation on the node(s) that free first by the running jobs' expected ends; a later job starts
  only if it fits now and does not touch the reserved nodes, or ends (by its own estimate) before
  the reservation. Never public.
- `burst-after-wait`: `onprem-fifo`, and a job that has waited its `max_wait` goes to the cheapest
  public offer (Slurm's cloud bursting, Kueue with a cloud flavor). Jobs with no max_wait never burst.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from clouds.base import LaunchRequest
from placement.model import Demand, Job, Offer, Placement, Tier
from placement.replay.runner import RoundRow, Run, max_wait_s, simulate
from placement.replay.traces.common import TraceJob
from placement.replay.world import World
from placement.sim import SimulatedCloud
from placement.solve.candidates import fits
from placement.solve.ledger import NodeState
from placement.spec import spec_from_data, to_job
from policies.model import Policy

BASELINES = ("sky-k8s", "onprem-fifo", "burst-after-wait")
_EPS = 1e-9


@dataclass(slots=True)
class Waiting:
    job: Job
    trace: TraceJob
    arrived: float
    max_wait_s: float | None


@dataclass(slots=True)
class Held:
    handle: str
    provider: SimulatedCloud
    nodes: tuple[str, ...]
    demand: Demand
    expected_end: float  # start + the job's own estimate (what a scheduler knows)


class Baseline:
    """The shared machinery: a queue in arrival order, on-prem fits, the cheapest public offer, launches."""

    name = "baseline"
    bursts_at_once = False  # sky-k8s: public when on-prem has no room now
    bursts_after_max_wait = False  # burst-after-wait
    backfills = False  # onprem-fifo and burst-after-wait

    def __init__(self, world: World, policy: Policy, providers: dict[Tier, SimulatedCloud],
                 clock: Callable[[], float]):
        self.world, self.policy, self.clock = world, policy, clock
        self.nodes = providers[Tier.ONPREM]
        self.public = providers[Tier.PUBLIC]
        self.public_offers = sorted((o for o in self.public.offers({}) if not o.spot), key=lambda o: o.id)
        self.queue: list[Waiting] = []
        self.running: dict[str, Held] = {}
        self.held: dict[str, list[float]] = {}
        self._cheapest: dict[tuple, tuple[Offer, Demand] | None] = {}
        self._count = 0

    # --- the loop's side --------------------------------------------------------------------------------

    def submit(self, jobs: list[TraceJob], now: float) -> list[str]:
        ids = []
        for trace in jobs:
            self._count += 1
            job_id = f"{trace.spec.get('name') or 'job'}-{self._count}"
            job = to_job(spec_from_data(trace.spec, trace.source), job_id)
            self.queue.append(Waiting(job, trace, now, max_wait_s(trace)))
            ids.append(job_id)
        return ids

    def round(self, now: float) -> RoundRow:
        self._release(now)
        if self.bursts_after_max_wait:
            for waiting in [w for w in self.queue if w.max_wait_s is not None and now - w.arrived >= w.max_wait_s]:
                if self._burst(waiting):
                    self.queue.remove(waiting)
        self.schedule(now)
        spend = sum(self.public.work[h.handle].rate_per_hour for h in self.running.values()
                    if h.provider is self.public)
        onprem = sum(self.nodes.work[h.handle].gpus for h in self.running.values() if h.provider is self.nodes)
        return RoundRow(now - self.world.epoch, 0.0, 0.0, len(self.queue), {"global": spend}, {}, onprem)

    def deadlines(self, now: float) -> Iterable[float]:
        if not self.bursts_after_max_wait:
            return []
        return [w.arrived + w.max_wait_s for w in self.queue
                if w.max_wait_s is not None and w.arrived + w.max_wait_s > now]

    def close(self) -> None:
        pass

    # --- scheduling ---------------------------------------------------------------------------------------

    def schedule(self, now: float) -> None:
        """FIFO; EASY backfill where `backfills`; `sky-k8s` places every job at once, on-prem or public."""
        reserved: set[str] = set()
        shadow = math.inf
        free = self._free()
        for waiting in list(self.queue):
            fit = self._onprem_fit(waiting.job, free, avoid=reserved,
                                   ends=now + waiting.job.expected_hours * 3600.0, shadow=shadow)
            if fit is not None:
                self._launch_onprem(waiting, *fit, now)
                self.queue.remove(waiting)
                free = self._free()
            elif self.bursts_at_once:
                if self._burst(waiting):
                    self.queue.remove(waiting)
            elif not self.backfills:
                break
            elif shadow == math.inf:  # the first job that does not fit gets the reservation
                found = self._reservation(waiting.job, now)
                if found is not None:
                    shadow, reserved = found

    def _free(self) -> dict[str, Offer]:
        return {o.name: o for o in self.nodes.offers({k: tuple(v) for k, v in self.held.items()})}

    def _onprem_fit(self, job: Job, free: dict[str, Offer], avoid: set[str], ends: float, shadow: float
                    ) -> tuple[tuple[Offer, ...], Demand] | None:
        """The first nodes (by name) with room for the job now (`free`: each node's free capacity); reserved
        nodes only if it ends before the reservation."""
        if not any(o.gpu_count > 0 or o.vcpus > 0 for o in free.values()):
            return None
        for demand in job.demands:
            chosen = []
            for name in sorted(free):
                offer = free[name]
                if name in avoid and ends > shadow:
                    continue
                if fits(job, demand, offer, self.policy) and NodeState.of(offer).fits(demand):
                    if chosen and chosen[0].gpu != offer.gpu:
                        continue
                    chosen.append(offer)
                    if len(chosen) == job.num_nodes:
                        return tuple(chosen), demand
        return None

    def _reservation(self, job: Job, now: float) -> tuple[float, set[str]] | None:
        """When and where the job could start if running work ends as expected: the nodes that free first."""
        whole = {o.name: o for o in self.nodes.offers({})}
        ready: list[tuple[float, str]] = []
        for name, node in sorted(whole.items()):
            demand = next((d for d in job.demands if fits(job, d, node, self.policy)), None)
            if demand is None:
                continue
            ending = sorted(((h.expected_end, h.demand) for h in self.running.values()
                             if h.provider is self.nodes and name in h.nodes), key=lambda e: e[0])
            gpus, cpus, memory = self.held.get(name, [0.0, 0.0, 0.0])
            t = now
            for end, held in [(now, None), *ending]:
                if held is not None:
                    gpus, cpus, memory = gpus - held.accelerator_count, cpus - held.cpus, memory - held.memory_gb
                    t = max(end, now)
                if node.gpu_count - gpus >= demand.accelerator_count - _EPS and node.vcpus - cpus >= demand.cpus \
                        - _EPS and node.memory_gb - memory >= demand.memory_gb - _EPS:
                    ready.append((t, name))
                    break
        if len(ready) < job.num_nodes:
            return None  # it fits nowhere even on empty nodes: it does not hold the queue
        ready.sort()
        chosen = ready[:job.num_nodes]
        return chosen[-1][0], {name for _, name in chosen}

    def _launch_onprem(self, waiting: Waiting, nodes: tuple[Offer, ...], demand: Demand, now: float) -> None:
        rate = sum(n.job_price_per_hour(demand) for n in nodes)
        names = tuple(n.name for n in nodes)
        placement = Placement(waiting.job.id, nodes[0].id, Tier.ONPREM, nodes[0].provider, ",".join(names),
                              demand.accelerator, demand.accelerator_count, len(nodes), False, rate,
                              rate * waiting.job.expected_hours, 0.0, names, None, demand.cpus, demand.memory_gb)
        self._launch(waiting, self.nodes, placement, None, demand, now)
        for name in names:
            held = self.held.setdefault(name, [0.0, 0.0, 0.0])
            held[0] += demand.accelerator_count
            held[1] += demand.cpus
            held[2] += demand.memory_gb

    def _burst(self, waiting: Waiting) -> bool:
        """Launch on the cheapest public on-demand offer that fits; False if none does."""
        job = waiting.job
        key = (job.demands, job.num_nodes, job.tiers, job.gpu_memory_gb, job.onprem_only)
        if key not in self._cheapest:
            options = [(o.price_per_hour, o.id, o, d) for d in job.demands for o in self.public_offers
                       if fits(job, d, o, self.policy)]
            self._cheapest[key] = min(options, key=lambda x: (x[0], x[1]))[2:] if options else None
        found = self._cheapest[key]
        if found is None:
            return False
        offer, demand = found
        rate = offer.price_per_hour * job.num_nodes
        placement = Placement(job.id, offer.id, Tier.PUBLIC, offer.provider, offer.name, demand.accelerator,
                              demand.accelerator_count, job.num_nodes, False, rate, rate * job.expected_hours, 0.0,
                              (), offer.region, demand.cpus, demand.memory_gb)
        self._launch(waiting, self.public, placement, offer, demand, self.clock())
        return True

    def _launch(self, waiting: Waiting, provider: SimulatedCloud, placement: Placement, offer: Offer | None,
                demand: Demand, now: float) -> None:
        handle = f"{waiting.job.id}-a1"
        provider.launch(LaunchRequest(handle, waiting.job.id, 1, placement, waiting.trace.spec, offer=offer))
        start = now + provider.startup_s
        self.running[waiting.job.id] = Held(handle, provider, placement.nodes, demand,
                                            start + waiting.job.expected_hours * 3600.0)

    def _release(self, now: float) -> None:
        for job_id, held in list(self.running.items()):
            if held.provider.work[held.handle].ended(now) is None:
                continue
            del self.running[job_id]
            for name in held.nodes:
                use = self.held[name]
                use[0] -= held.demand.accelerator_count
                use[1] -= held.demand.cpus
                use[2] -= held.demand.memory_gb


class SkyK8s(Baseline):
    name = "sky-k8s"
    bursts_at_once = True


class OnpremFifo(Baseline):
    name = "onprem-fifo"
    backfills = True


class BurstAfterWait(Baseline):
    name = "burst-after-wait"
    backfills = True
    bursts_after_max_wait = True


KINDS: dict[str, type[Baseline]] = {cls.name: cls for cls in (SkyK8s, OnpremFifo, BurstAfterWait)}


def replay_baseline(world: World, jobs: list[TraceJob], name: str, policy: Policy, seed: int,
                    progress: Callable[[float], None] | None = None) -> Run:
    """`policy` only says which spot and shape rules `fits` applies (the baselines rent no spot)."""
    if name not in KINDS:
        raise ValueError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)} or all")
    cls = KINDS[name]
    return simulate(world, jobs, name, "baseline", seed, lambda providers, clock: cls(world, policy, providers, clock),
                    progress)
