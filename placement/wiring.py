"""What the service is built from: its configuration, and the policy, store, offers and providers made from it.

`wire` does every read the engine needs before its first round (the policy file, the SQLite store, the
inventory, SkyPilot's catalogs) and builds the providers `--clouds` asks for, so the engine itself only
runs rounds and answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clouds.base import Provider
from clouds.catalog import default_catalog_dirs, load_catalogs
from clouds.inventory import load_inventory
from clouds.offers import DEFAULT_INVENTORY
from placement.model import Offer, Tier
from placement.solve.state import Failover
from placement.store import Store
from policies import load_policy
from policies.model import Policy


def default_store_path() -> Path:
    """Under the user's state directory (XDG_STATE_HOME), like other per-user service state."""
    import os

    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "placement" / "placement.db"


@dataclass(frozen=True)
class ServiceConfig:
    store_path: str = field(default_factory=lambda: str(default_store_path()))
    store_durable: bool = True  # False: no WAL, no fsync (a replay's what-if store)
    policy: str = "balanced"
    inventory: str | None = None  # default: configs/inventory.yaml (private pools; facts about on-prem nodes)
    catalogs: tuple[str, ...] | None = None  # default: SkyPilot's own catalogs where present, then the shipped ones
    round_interval_s: float | None = 10.0  # None: rounds only when asked (tests, replays)
    telemetry_interval_s: float | None = 5.0  # NVML samples on each GPU node; None: no telemetry agents
    dashboard_url: str | None = None  # Ray's dashboard, for the job submission API
    clouds: bool = False  # launch public and private placements through SkyPilot (else they are only planned)
    sky_api_server: str | None = None  # SkyPilot API server endpoint; None: SkyPilot's default (a local server)
    autostop_minutes: int = 10  # idle minutes after which an on-demand cluster tears itself down
    failover: Failover = field(default_factory=Failover)
    telemetry_raw_retention_s: float = 2 * 86400.0  # raw GPU samples older than this are folded into minute rows
    telemetry_minute_retention_s: float = 30 * 86400.0  # minute rows (and anything older) are deleted after this
    status_port: int | None = 8267  # the status page on 127.0.0.1 (taken: a free port; 0: any; None: no page)

    def __post_init__(self) -> None:
        if not 0 < self.telemetry_raw_retention_s <= self.telemetry_minute_retention_s:
            raise ValueError(
                f"telemetry_raw_retention_s must be > 0 and at most telemetry_minute_retention_s; got "
                f"{self.telemetry_raw_retention_s:g} s and {self.telemetry_minute_retention_s:g} s")


@dataclass(frozen=True)
class Wiring:
    """The parts an engine runs with."""

    policy: Policy
    store: Store
    static_offers: tuple[Offer, ...]  # private pools' and public catalogs' offers (on-prem ones come live)
    pool_quotas: tuple[tuple[str, float], ...]  # private pool -> its quota, by name
    providers: dict[Tier, Provider]  # a tier without one is still placed: its placements are only recorded


def wire(config: ServiceConfig, providers: dict[Tier, Provider]) -> Wiring:
    """The policy, store, static offers and providers of `config`; `providers` are the caller's (on-prem, test
    doubles), which win over the SkyPilot ones `config.clouds` adds."""
    policy = load_policy(config.policy)
    store = Store(config.store_path, durable=config.store_durable)
    inventory = load_inventory(config.inventory or DEFAULT_INVENTORY)
    if config.clouds:
        from clouds.public import prepare_skypilot

        prepare_skypilot(config.sky_api_server)  # before the catalogs load: SkyPilot's directory may be new
    catalog = load_catalogs(default_catalog_dirs() if config.catalogs is None else config.catalogs)
    # On-prem offers come live from the on-prem provider; the others are static between rounds.
    static_offers = tuple(o for o in inventory.offers() + catalog.offers if o.tier is not Tier.ONPREM)
    if config.clouds:
        from clouds.private import private_provider
        from clouds.public import public_provider

        providers = {Tier.PUBLIC: public_provider(list(static_offers), autostop_minutes=config.autostop_minutes),
                     Tier.PRIVATE: private_provider(inventory)} | providers
    return Wiring(policy, store, static_offers, tuple(sorted(inventory.pool_quotas().items())), providers)
