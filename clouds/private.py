"""The private cloud: pools SkyPilot reaches as a Kubernetes context or an SSH node pool.

A pool has a GPU quota (a constraint of the placement model) and an internal price per
GPU-hour. SkyPilot prices Kubernetes work from `kubernetes.context_configs.<context>.pricing`
in its config (`sky/catalog/kubernetes_catalog.py`: GPU work costs count x the accelerator's
rate); `sky_pricing` writes the inventory's prices there, so what SkyPilot shows and what the
engine charges agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from clouds.inventory import Inventory
from clouds.skypilot import SkyPilotProvider
from placement.model import Tier


def private_provider(inventory: Inventory, *, sdk: Any = None) -> SkyPilotProvider:
    return SkyPilotProvider(Tier.PRIVATE, "private", inventory.offers(), sdk=sdk)


def sky_pricing(inventory: Inventory) -> dict[str, Any]:
    """SkyPilot config (`kubernetes.context_configs.<ctx>.pricing.accelerators`) for every pool."""
    contexts: dict[str, Any] = {}
    for pool in inventory.pools:
        _, context = pool.sky_cloud_region()
        contexts[context] = {"pricing": {"accelerators": {e.gpu: e.price_per_gpu_hour for e in pool.gpu_types}}}
    return {"kubernetes": {"context_configs": contexts}} if contexts else {}


def write_sky_pricing(inventory: Inventory, config_path: str | Path) -> dict[str, Any]:
    """Merge the pools' prices into a SkyPilot config file (other settings kept); returns the new config.

    The result is checked against SkyPilot's own config schema before it is written.
    """
    from sky.utils import common_utils, schemas

    path = Path(config_path).expanduser()
    config = yaml.safe_load(path.read_text()) if path.exists() else None
    config = _merge(config or {}, sky_pricing(inventory))
    common_utils.validate_schema(config, schemas.get_config_schema(), "Invalid SkyPilot config: ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(merged.get(key) or {}, value) if isinstance(value, dict) else value
    return merged
