"""The simulated world a replay runs in, the same for the engine and every baseline.

On-prem: nodes of an inventory (the trace's own cluster scaled to a share of the window's peak demand, or
an inventory file), offered by `placement.sim.SimulatedNodes` through the Ray provider's `node_offer`.
Private pools (from the inventory) and public offers (the shipped SkyPilot catalogs) are
`SimulatedCloud`s. Start-up times per tier are the policy's defaults (`STARTUP_S`); public spot work
can be reclaimed at a seeded rate. Every provider runs a job for its TRUE duration, whatever the
spec's `expected_hours` says.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from clouds.base import LaunchRequest
from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalogs
from clouds.inventory import Inventory, NodeSpec, Site, inventory_yaml, load_inventory
from placement.model import Offer, Tier
from placement.replay.traces.common import TraceJob
from placement.sim import SimulatedCloud, SimulatedNodes
from placement.spec import gpu_choices

STARTUP_S = {Tier.ONPREM: 60.0, Tier.PRIVATE: 180.0, Tier.PUBLIC: 480.0}  # the built-in policies' start-up minutes
EPOCH = 1_767_571_200.0  # the simulated clock starts at 2026-01-05 00:00 UTC (a Monday)


def job_gpus(spec: dict) -> float:
    """GPUs a job holds in all (its first accelerator choice x nodes; 0 for CPU-only work)."""
    accelerators = (spec.get("resources") or {}).get("accelerators")
    if not accelerators:
        return 0.0
    choices, _ = gpu_choices(accelerators)
    return choices[0].count * int(spec.get("num_nodes") or 1)


def peak_gpu_demand(jobs: Iterable[TraceJob]) -> float:
    """The most GPUs the jobs would hold at once if each ran from its arrival for its true duration."""
    changes: list[tuple[float, float]] = []
    for job in jobs:
        gpus = job_gpus(job.spec)
        if gpus:
            changes += [(job.submit_s, gpus), (job.submit_s + job.true_hours * 3600.0, -gpus)]
    peak = level = 0.0
    for _, delta in sorted(changes, key=lambda c: (c[0], c[1])):  # ends before starts at the same moment
        level += delta
        peak = max(peak, level)
    return peak


def scaled_nodes(nodes: list[NodeSpec], gpus: float, seed: int) -> list[NodeSpec]:
    """GPU nodes of a cluster in a seeded order, each taken while the total stays within `gpus`, then the
    one node that brings the total closest to it: the cluster's mix of machines, at about the size asked."""
    pool = sorted((n for n in nodes if n.gpus), key=lambda n: n.name)
    random.Random(seed).shuffle(pool)
    chosen, rest, total = [], [], 0.0
    for node in pool:
        if total + node.gpus * node.count <= gpus + 1e-9:
            chosen.append(node)
            total += node.gpus * node.count
        else:
            rest.append(node)
    best = min(rest, key=lambda n: abs(total + n.gpus * n.count - gpus), default=None)
    if best is not None and (not chosen or abs(total + best.gpus * best.count - gpus) < abs(total - gpus)):
        chosen.append(best)
    return sorted(chosen, key=lambda n: n.name)


def write_inventory(nodes: list[NodeSpec], pools_from: Inventory, path: Path) -> Inventory:
    """The replay's inventory as YAML (the engine reads it like any inventory file), and loaded back."""
    path.write_text(inventory_yaml(nodes, prefix="onprem", site=pools_from.site or Site(), pools=pools_from.pools,
                                   comment="written by placement replay: the trace's nodes, scaled"))
    return load_inventory(path)


@dataclass(frozen=True)
class World:
    inventory: Inventory
    inventory_path: Path
    catalog_dir: Path = SHIPPED_CATALOG_DIR
    preemptions_per_hour: float = 0.0  # public spot reclaims per hour of spot work
    interval_s: float = 60.0  # the control interval: rounds happen on this grid
    horizon_s: float = 8 * 86400.0  # figures cover [0, horizon_s) of simulated time
    epoch: float = EPOCH
    public: tuple[Offer, ...] | None = None  # the public offers to sell; None: the catalogs in catalog_dir

    @property
    def onprem_nodes(self) -> list[Offer]:
        return [o for o in self.inventory.offers() if o.tier is Tier.ONPREM]

    @property
    def onprem_gpus(self) -> float:
        return sum(o.gpu_count for o in self.onprem_nodes)

    def cloud_offers(self) -> list[Offer]:
        """Private pools' and public offers, as the engine lists them (static between rounds)."""
        public = list(self.public) if self.public is not None else load_catalogs([self.catalog_dir]).offers
        return [o for o in self.inventory.offers() if o.tier is Tier.PRIVATE] + public

    def providers(self, clock: Callable[[], float], run_seconds: Callable[[LaunchRequest], float | None],
                  seed: int) -> dict[Tier, SimulatedCloud]:
        offers = self.cloud_offers()
        return {
            Tier.ONPREM: SimulatedNodes(self.onprem_nodes, clock, startup_s=STARTUP_S[Tier.ONPREM],
                                        run_seconds=run_seconds),
            Tier.PRIVATE: SimulatedCloud(offers, clock, tier=Tier.PRIVATE, name="sim-private",
                                         startup_s=STARTUP_S[Tier.PRIVATE], run_seconds=run_seconds),
            Tier.PUBLIC: SimulatedCloud(offers, clock, tier=Tier.PUBLIC, name="sim-public",
                                        startup_s=STARTUP_S[Tier.PUBLIC], run_seconds=run_seconds,
                                        preemptions_per_hour=self.preemptions_per_hour, seed=seed)}
