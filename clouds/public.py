"""Public clouds through SkyPilot: the catalog's instance types, launched in the chosen cloud and region.

`public_provider` launches what the engine places on public offers (see `clouds.skypilot`).
`prepare_skypilot` readies the SDK before the first call: where the API server lives (a team's
endpoint, or the local one SkyPilot starts by itself), and the shipped price catalogs installed
where SkyPilot reads them, so the engine and SkyPilot price from the same files.
"""

from __future__ import annotations

import os
from typing import Any

from clouds.sky_catalog import InstalledCatalog, install_catalogs
from clouds.skypilot import SkyPilotProvider
from placement.model import Offer, Tier

API_SERVER_ENV = "SKYPILOT_API_SERVER_ENDPOINT"  # read by SkyPilot's SDK (sky/server/common.py)


def prepare_skypilot(api_server: str | None = None, install: bool = True) -> InstalledCatalog | None:
    """Point the SDK at `api_server` (None: SkyPilot's own choice, a local server by default) and
    install the shipped catalogs for the clouds SkyPilot has none of. Call before importing `sky`."""
    if api_server:
        os.environ[API_SERVER_ENV] = api_server
    return install_catalogs() if install else None


def public_provider(offers: list[Offer], *, sdk: Any = None, autostop_minutes: int = 10) -> SkyPilotProvider:
    return SkyPilotProvider(Tier.PUBLIC, "public", offers, sdk=sdk, autostop_minutes=autostop_minutes)
