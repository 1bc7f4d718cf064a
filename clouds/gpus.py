"""GPU names: one canonical name per GPU model, whatever a cloud, a trace or a user calls it.

Canonical names are SkyPilot's accelerator names (`A100` is the 40 GB part,
`A100-80GB` the 80 GB one), so a SkyPilot task YAML means the same thing here.
Names that differ only by packaging or networking map onto the chip
(`H100-MEGA` is an H100 on a3-megagpu hosts; `V100M32` in the Alibaba trace is a
`V100-32GB`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    memory_gb: float
    tdp_watts: float  # board power under full load, from shared/data/energy/gpu_tdp.csv
    vendor: str = "NVIDIA"


# Memory and TDP from shared/data/energy/gpu_tdp.csv and the catalogs' GpuInfo.
GPU_MODELS: dict[str, GpuModel] = {m.name: m for m in (
    GpuModel("K80", 12, 150),  # AWS/Azure expose one die (12 GB, half the 300 W board)
    GpuModel("M60", 8, 150),
    GpuModel("P4", 8, 75),
    GpuModel("P40", 24, 250),
    GpuModel("P100", 16, 250),
    GpuModel("V100", 16, 300),
    GpuModel("V100-32GB", 32, 300),
    GpuModel("T4", 16, 70),
    GpuModel("T4g", 16, 70),
    GpuModel("A10", 24, 150),
    GpuModel("A10G", 24, 150),
    GpuModel("L4", 24, 72),
    GpuModel("L40S", 48, 350),
    GpuModel("A6000", 48, 300),
    GpuModel("RTX6000", 24, 260),
    GpuModel("A100", 40, 400),
    GpuModel("A100-80GB", 80, 400),
    GpuModel("A800", 80, 400),
    GpuModel("H100", 80, 700),
    GpuModel("H800", 80, 700),
    GpuModel("GH200", 96, 700),
    GpuModel("H200", 141, 700),
    GpuModel("B200", 180, 1000),
    GpuModel("B300", 288, 1100),
    GpuModel("G2", 32, 300),  # Alibaba openb trace: undisclosed models, memory assumed
    GpuModel("G3", 32, 300),
    GpuModel("Radeon Pro V520", 8, 225, vendor="AMD"),
    GpuModel("Radeon MI25", 16, 300, vendor="AMD"),
)}

_ALIASES: dict[str, str] = {
    "H100-MEGA": "H100",  # GCP a3-megagpu: same chip, faster interconnect
    "H100-80GB": "H100",
    "A100-40GB": "A100",
    "A10080GB": "A100-80GB",
    "V100M16": "V100",  # Alibaba trace names
    "V100M32": "V100-32GB",
    "V100-16GB": "V100",
    "RTXA6000": "A6000",
    "A6000-48GB": "A6000",
    "L40": "L40S",
    "TESLAT4": "T4",
    "TESLAV100": "V100",
    "TESLAP100": "P100",
    "TESLAK80": "K80",
}


def _key(name: str) -> str:
    """Case- and punctuation-insensitive key: 'nvidia a100_80gb' -> 'A10080GB'."""
    key = re.sub(r"[^A-Z0-9]", "", name.upper())
    return key.removeprefix("NVIDIA")


_BY_KEY: dict[str, str] = {_key(n): n for n in GPU_MODELS}
_BY_KEY.update({_key(a): c for a, c in _ALIASES.items()})


def canonical_gpu(name: str) -> str | None:
    """The canonical name of a GPU, or None when it is not a GPU this engine knows."""
    if not name:
        return None
    key = _key(name)
    if key in _BY_KEY:
        return _BY_KEY[key]
    # "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3": strip form factors and retry.
    stripped = re.sub(r"(SXM\d?|PCIE|HBM\dE?|NVL)", "", key)
    if stripped in _BY_KEY:
        return _BY_KEY[stripped]
    return None


def suggest_gpu(name: str) -> list[str]:
    """Close canonical names for a misspelt GPU name (did-you-mean)."""
    return difflib.get_close_matches(name.upper(), list(GPU_MODELS), n=3, cutoff=0.5)


def gpu_memory_gb(name: str) -> float | None:
    model = GPU_MODELS.get(name)
    return model.memory_gb if model else None


def gpu_tdp_watts(name: str) -> float | None:
    model = GPU_MODELS.get(name)
    return model.tdp_watts if model else None
