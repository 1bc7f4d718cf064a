"""Grid carbon intensity per cloud region and PUE per provider, from `configs/energy/`.

One dataset is used for every region: cloud-carbon-footprint (CCF), the only one in
`grid_carbon_intensity_by_cloud_region.csv` that covers every AWS, GCP and Azure region of
the shipped catalogs. The datasets disagree by up to 2x for the same region, so mixing them
would rank regions by dataset rather than by grid.

A region the dataset does not list gets the median of the provider's listed regions, or,
for a provider it does not cover at all (Lambda, private clouds), the median of the whole
dataset. A typical grid rather than zero or None, so an unknown region neither looks green
nor gets dropped from the carbon term; `Intensity.basis` says which rule gave the value.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from clouds.gpus import canonical_gpu

if TYPE_CHECKING:
    from placement.debt import PowerCurve

ENERGY_DIR = Path(__file__).resolve().parents[1] / "configs" / "energy"
GRID_DATASET = "cloud-carbon-footprint/cloud-carbon-coefficients"
_UNKNOWN_PROVIDER = "unknown"


@dataclass(frozen=True, slots=True)
class Intensity:
    gco2_per_kwh: float
    basis: str  # "region", "provider median" or "dataset median"


def _region_key(region: str) -> str:
    """CCF names Azure regions by display name ('East US 2'); SkyPilot by id ('eastus2')."""
    return region.replace(" ", "").lower()


@cache
def _grid_table() -> dict[str, dict[str, float]]:
    """provider -> region key -> gCO2e/kWh, for GRID_DATASET only."""
    table: dict[str, dict[str, float]] = {}
    with open(ENERGY_DIR / "grid_carbon_intensity_by_cloud_region.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["dataset"].split("@")[0] == GRID_DATASET:
                table.setdefault(row["provider"].lower(), {})[_region_key(row["region"])] = float(
                    row["gco2e_per_kwh"])
    return table


@cache
def grid_intensity(provider: str, region: str | None) -> Intensity:
    """Grid carbon intensity of a cloud region, with the fallback described in the module doc."""
    table = _grid_table()
    by_region = table.get(provider.lower(), {})
    if region is not None and _region_key(region) in by_region:
        return Intensity(by_region[_region_key(region)], "region")
    if by_region:
        return Intensity(statistics.median(by_region.values()), "provider median")
    return Intensity(statistics.median(v for regions in table.values() for v in regions.values()),
                     "dataset median")


@cache
def _pue_table() -> dict[str, float]:
    with open(ENERGY_DIR / "pue_defaults_green_algorithms.csv", newline="") as f:
        return {row["provider"].lower(): float(row["PUE"]) for row in csv.DictReader(f)}


def pue(provider: str) -> float:
    """Power usage effectiveness of a provider's data centres; the survey average when unknown."""
    table = _pue_table()
    return table.get(provider.lower(), table[_UNKNOWN_PROVIDER])


@cache
def power_curves() -> dict[str, PowerCurve]:
    """Watts per GPU at 0/10/50/100% utilization by canonical GPU name, from CCF's AWS instance table.

    The table names GPUs as AWS does ("Tesla V100", "Tesla A100" for p4d's 40 GB A100); rows whose
    GPU this engine does not know (K520) are left out. The per-GPU watts of one GPU agree across
    instance sizes to 0.1 W, so the median of its rows is taken. GPUs the table lacks fall back to
    `PowerCurve.from_tdp` in `placement.debt`.
    """
    from placement.debt import PowerCurve

    rows: dict[str, list[tuple[float, ...]]] = {}
    with open(ENERGY_DIR / "gpu_power_curve_aws_instances_ccf.csv", newline="") as f:
        for row in csv.DictReader(f):
            name = row["gpu_name"]
            gpu = canonical_gpu(name) or canonical_gpu(name.removeprefix("Tesla "))
            if gpu is not None:
                rows.setdefault(gpu, []).append(tuple(float(row[f"gpu_watts_{point}_per_gpu"])
                                                      for point in ("idle", "10pct", "50pct", "100pct")))
    return {gpu: PowerCurve(*(statistics.median(column) for column in zip(*points))) for gpu, points in rows.items()}
