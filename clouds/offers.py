"""Every tier's offers in one list, and the look-up behind `placement offers`.

`collect_offers` joins on-prem nodes and private pools (from the inventory) with public
instance types (from the SkyPilot catalogs); `find_offers` filters them for one request and
prices each for that request, cheapest first. The CLI is a thin table over these two and the
argument parsers below (`--gpu A100:8 --cpus 8+ --memory 64+ --spot --tier public`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from clouds.catalog import default_catalog_dirs, load_catalogs
from clouds.gpus import canonical_gpu, suggest_gpu
from clouds.inventory import DEFAULT_INVENTORY, load_inventory
from placement.model import Demand, Offer, Tier


class OfferSet(NamedTuple):
    offers: list[Offer]
    warnings: list[str]  # catalog source problems (an invalid inventory raises instead)
    pool_quotas: dict[str, float]  # private pool -> GPU quota


class GpuArg(NamedTuple):
    name: str  # canonical
    count: float


def collect_offers(inventory_path: str | Path | None = None,
                   catalog_dirs: Iterable[str | Path] | None = None) -> OfferSet:
    """On-prem, private and public offers.

    Defaults: the shipped `configs/inventory.yaml`, and `default_catalog_dirs()` (SkyPilot's own
    catalog first where it exists, then the shipped snapshot). An invalid inventory raises
    `ConfigError`: unlike a cloud's catalog, it is the user's own file to fix.
    """
    inventory = load_inventory(inventory_path or DEFAULT_INVENTORY)
    catalog = load_catalogs(default_catalog_dirs() if catalog_dirs is None else catalog_dirs)
    return OfferSet(inventory.offers() + catalog.offers, catalog.warnings, inventory.pool_quotas())


def find_offers(offers: Iterable[Offer], *, gpu: str | None = None, gpu_count: float | None = None,
                cpus: float | None = None, memory_gb: float | None = None, spot: bool | None = None,
                tiers: Iterable[Tier | str] | None = None) -> list[tuple[Offer, float]]:
    """Offers with at least the GPUs, vCPUs and memory asked for, with what the request pays per hour.

    Every amount is a minimum, as SkyPilot's `8+`: a shared machine (on-prem, private) gives the
    request a slice and charges its share of the machine's price; a dedicated instance (public)
    charges its whole price. `gpu` alone means one GPU; `spot` None takes both markets. Sorted
    cheapest first, then by offer id.
    """
    name = _canonical(gpu) if gpu else None
    count = gpu_count if gpu_count is not None else (1.0 if gpu else 0.0)
    wanted_tiers = {Tier(t) for t in tiers} if tiers is not None else set(Tier)
    asked = any(x for x in (count, cpus, memory_gb))
    demand = Demand(accelerator=name, accelerator_count=count, cpus=cpus or 0.0, memory_gb=memory_gb or 0.0)
    found = []
    for offer in offers:
        if (offer.tier not in wanted_tiers
                or (spot is not None and offer.spot != spot)
                or (name is not None and offer.gpu != name)
                or (count > 0 and (offer.gpu is None or offer.gpu_count < count))
                or offer.vcpus < demand.cpus
                or offer.memory_gb < demand.memory_gb):
            continue
        found.append((offer, offer.job_price_per_hour(demand) if asked else offer.price_per_hour))
    return sorted(found, key=lambda pair: (pair[1], pair[0].id))


def parse_gpu_arg(text: str) -> GpuArg:
    """`A100:8` -> ('A100', 8.0); `a100-80gb` -> ('A100-80GB', 1.0); SkyPilot's accelerator syntax."""
    name, _, count_text = text.strip().partition(":")
    count = parse_amount(count_text) if count_text else 1.0
    if count <= 0:
        raise ValueError(f"GPU count in {text!r} must be above zero")
    return GpuArg(_canonical(name), count)


def parse_amount(text: str | float) -> float:
    """`8`, `8+` or `64.5+` -> the minimum amount (every amount is a minimum here)."""
    value = str(text).strip().removesuffix("+")
    try:
        amount = float(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an amount (e.g. 8 or 8+)") from None
    if amount < 0:
        raise ValueError(f"{text!r} is below zero")
    return amount


def _canonical(gpu: str) -> str:
    name = canonical_gpu(gpu)
    if name is None:
        hint = suggest_gpu(gpu)
        raise ValueError(f"unknown GPU {gpu!r}" + (f"; did you mean {' or '.join(hint)}?" if hint else ""))
    return name
