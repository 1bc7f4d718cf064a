"""Where the catalogs are (SkyPilot's own directory, the shipped one) and loading them into offers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from clouds.catalog.gcp import gcp_offers
from clouds.catalog.rows import Problems, gpu_subject, make_offer, read_rows, resolve_gpu, standalone_markets
from placement.model import Offer

SHIPPED_CATALOG_DIR = Path(__file__).resolve().parents[2] / "configs" / "catalogs"
SKYPILOT_CATALOG_VERSION = "v8"  # sky.skylet.constants.CATALOG_SCHEMA_VERSION in SkyPilot 0.14.1


@dataclass(frozen=True, slots=True)


class CatalogLoad:
    offers: list[Offer]
    warnings: list[str]


def skypilot_catalog_dir() -> Path:
    """Where SkyPilot keeps its catalogs: `$SKY_RUNTIME_DIR` (default `~`) + `.sky/catalogs/v8`.

    As `sky/catalog/common.py` computes it (`runtime_utils.get_runtime_dir_path`).
    """
    root = os.path.expanduser(os.environ.get("SKY_RUNTIME_DIR", "~"))
    return Path(root) / ".sky" / "catalogs" / SKYPILOT_CATALOG_VERSION


def default_catalog_dirs() -> list[Path]:
    """SkyPilot's own catalog directory when it exists, then the shipped one.

    With `load_catalogs`, the first directory that has a cloud wins for that cloud, so
    SkyPilot's fresher catalog replaces the shipped snapshot of a cloud as a whole.
    """
    own = skypilot_catalog_dir()
    return ([own] if own.is_dir() else []) + [SHIPPED_CATALOG_DIR]


@cache


def _instance_gpus() -> dict[str, tuple[str, float]]:
    gpus: dict[str, tuple[str, float]] = {}
    for offer in load_catalogs(default_catalog_dirs()).offers:
        if offer.gpu and "+" not in offer.id:  # an N1 host's attached GPUs are not the machine type's
            gpus.setdefault(offer.name, (offer.gpu, offer.gpu_count))
    return gpus


def instance_accelerators(instance_type: str) -> tuple[str, float] | None:
    """The GPUs (canonical name, count) a public instance type comes with: what SkyPilot fills in as the
    `accelerators` of a task that names only `instance_type` (`p4d.24xlarge` -> A100 x 8). None for a
    CPU-only type, or one no catalog lists."""
    return _instance_gpus().get(instance_type)


def load_catalog_dir(path: str | Path) -> CatalogLoad:
    """Offers from every `<cloud>/vms*.csv` under one catalog directory."""
    return load_catalogs([path])


def load_catalogs(dirs: Iterable[str | Path]) -> CatalogLoad:
    """Offers from several catalog directories; for each cloud the first directory that has it wins."""
    problems = Problems()
    offers: dict[str, Offer] = {}
    loaded_clouds: set[str] = set()
    for directory in map(Path, dirs):
        if not directory.is_dir():
            problems.add(str(directory), "catalog directory", "not found; skipped", 0, "")
            continue
        for cloud_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
            cloud = cloud_dir.name.lower()
            files = sorted(cloud_dir.glob("vms*.csv"), key=lambda p: (p.name != "vms.csv", p.name))
            if not files or cloud in loaded_clouds:
                continue
            loaded_clouds.add(cloud)
            for path in files:
                label = f"{directory.name}/{cloud_dir.name}/{path.name}"
                for offer, line in _load_file(path, label, cloud, problems):
                    if offer.id in offers:
                        problems.add(label, offer.name, f"duplicate offer {offer.id}; first kept", line, "")
                    else:
                        offers[offer.id] = offer
    return CatalogLoad(list(offers.values()), problems.lines())


def _load_file(path: Path, label: str, cloud: str, problems: Problems) -> list[tuple[Offer, int]]:
    rows = read_rows(path, label, problems)
    if cloud == "gcp":
        return gcp_offers(rows, label, problems)
    out = []
    for row in rows:
        report = problems.reporter(label, row.instance or gpu_subject(row), row)
        if not row.instance:
            report("InstanceType empty; row skipped")
            continue
        gpu = resolve_gpu(cloud, row, report)
        if gpu is not None:
            out += [(make_offer(cloud, row, row.instance, gpu, spot, price), row.line)
                    for spot, price in standalone_markets(row, report)]
    return out
