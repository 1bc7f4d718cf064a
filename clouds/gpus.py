"""GPU names: one canonical name per accelerator, whatever a cloud, a trace or a user calls it.

Canonical names are SkyPilot's: the names of its catalog's `common/accelerators.csv` (shipped in
`configs/catalogs/common/`), the accelerator names of the shipped `vms.csv` catalogs, and TPU
slices (`tpu-v5e-8`, always lowercase, as `sky.utils.accelerator_registry` makes them). A name
matches one of those case-insensitively, as SkyPilot canonicalises it (`a40` is `A40`; `L40` is not
`L40S`). Beyond SkyPilot, names that differ only by packaging or spelling map onto the chip
(`H100-MEGA` is an H100 on a3-megagpu hosts; `V100M32` in the Alibaba trace is a `V100-32GB`;
`NVIDIA A100-SXM4-80GB` from nvidia-smi is an `A100-80GB`).

Facts (memory per GPU, vendor) come from the catalogs' `GpuInfo`; the table below fills in what no
shipped catalog says (GPUs sold only on other clouds or on-prem) and gives board power (TDP).
"""

from __future__ import annotations

import ast
import csv
import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parents[1] / "configs" / "catalogs"
COMMON_ACCELERATORS = CATALOG_DIR / "common" / "accelerators.csv"
# Matched by SkyPilot against AWS's own catalog, not listed in common/accelerators.csv.
_AWS_ONLY = ("Inferentia", "Inferentia2", "Trainium", "Trainium2")
_TPU = re.compile(r"tpu-v\d+[a-z]*(-\d+)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    memory_gb: float
    tdp_watts: float  # board power under full load, from shared/data/energy/gpu_tdp.csv
    vendor: str = "NVIDIA"


# Where no shipped catalog's GpuInfo says: memory and TDP from shared/data/energy/gpu_tdp.csv and vendor
# datasheets. A catalog's GpuInfo memory and manufacturer replace these (`_catalog_facts`).
_TABLE: tuple[GpuModel, ...] = (
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
    GpuModel("A30", 24, 165),
    GpuModel("A40", 48, 300),
    GpuModel("L4", 24, 72),
    GpuModel("L40", 48, 300),
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
    GpuModel("B100", 192, 700),
    GpuModel("GB200", 186, 1200),
    GpuModel("G2", 32, 300),  # Alibaba openb trace: undisclosed models, memory assumed
    GpuModel("G3", 32, 300),
    GpuModel("MI300X", 192, 750, vendor="AMD"),
    GpuModel("Radeon Pro V520", 8, 225, vendor="AMD"),
    GpuModel("Radeon MI25", 16, 300, vendor="AMD"),
)

_ALIASES: dict[str, str] = {
    "H100-MEGA": "H100",  # GCP a3-megagpu: same chip, faster interconnect
    "H100-80GB": "H100",
    "A100-40GB": "A100",
    "V100M16": "V100",  # Alibaba trace names
    "V100M32": "V100-32GB",
    "V100-16GB": "V100",
    "RTXA6000": "A6000",  # SkyPilot lists both spellings of the RTX A6000
    "A6000-48GB": "A6000",
    "TESLAT4": "T4",
    "TESLAV100": "V100",
    "TESLAP100": "P100",
    "TESLAK80": "K80",
}


def _key(name: str) -> str:
    """Case- and punctuation-insensitive key: 'nvidia a100_80gb' -> 'A10080GB'."""
    key = re.sub(r"[^A-Z0-9]", "", name.upper())
    return key.removeprefix("NVIDIA")


@cache
def _sellers() -> dict[str, tuple[str, ...]]:
    """SkyPilot's canonical accelerator names -> the clouds its catalog says sell each."""
    with COMMON_ACCELERATORS.open(newline="", encoding="utf-8") as handle:
        rows = {row["AcceleratorName"]: tuple(ast.literal_eval(row["Clouds"])) for row in csv.DictReader(handle)}
    rows.update({name: ("AWS",) for name in _AWS_ONLY})
    return rows


def _catalog_facts() -> dict[str, tuple[float | None, str | None]]:
    """Accelerator name -> (GiB per GPU, manufacturer) from the shipped vms catalogs' GpuInfo."""
    facts: dict[str, tuple[float | None, str | None]] = {}
    for path in sorted(CATALOG_DIR.glob("*/vms*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                name = row.get("AcceleratorName") or ""
                if not name or facts.get(name, (None, None))[0] is not None:
                    continue
                facts[name] = _gpu_info(row.get("GpuInfo") or "")
    return facts


def _gpu_info(text: str) -> tuple[float | None, str | None]:
    try:
        gpu = ast.literal_eval(text)["Gpus"][0]
    except (ValueError, SyntaxError, KeyError, IndexError, TypeError):
        return None, None  # Azure's GpuInfo is the bare name
    mib = (gpu.get("MemoryInfo") or {}).get("SizeInMiB")
    return (round(mib / 1024, 1) if mib else None), gpu.get("Manufacturer")


def _models() -> dict[str, GpuModel]:
    models = {m.name: m for m in _TABLE}
    for name, (memory, vendor) in _catalog_facts().items():
        known = models.get(name)
        if known is None or name in _ALIASES:
            continue  # no power figure for it (none of the shipped catalogs sells such a GPU), or another's name
        models[name] = GpuModel(name, memory if memory is not None else known.memory_gb, known.tdp_watts,
                                vendor or known.vendor)
    return models


# Every GPU whose facts are known (memory, TDP, vendor).
GPU_MODELS: dict[str, GpuModel] = _models()

# Every accelerator name SkyPilot knows (TPU slices aside): the engine accepts each, sold here or not.
SKY_ACCELERATORS: tuple[str, ...] = tuple(sorted(set(_sellers()) | set(_catalog_facts())))

_ALIAS_KEYS: dict[str, str] = {_key(a): c for a, c in _ALIASES.items()}
_BY_KEY: dict[str, str] = {_key(n): n for n in (*GPU_MODELS, *SKY_ACCELERATORS)} | _ALIAS_KEYS
_EXACT: dict[str, str] = {n.lower(): n for n in (*GPU_MODELS, *SKY_ACCELERATORS)}


def canonical_gpu(name: str) -> str | None:
    """The canonical name of an accelerator, or None when neither SkyPilot nor this engine knows it."""
    if not name or not name.strip():
        return None
    name = name.strip()
    if _TPU.fullmatch(name):
        return name.lower()  # SkyPilot: TPU names are always lowercase
    key = _key(name)
    if key in _ALIAS_KEYS:
        return _ALIAS_KEYS[key]
    if name.lower() in _EXACT:  # SkyPilot's own match: whole name, any case
        return _EXACT[name.lower()]
    if key in _BY_KEY:
        return _BY_KEY[key]
    # "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3": strip form factors and retry.
    stripped = re.sub(r"(SXM\d?|PCIE|HBM\dE?|NVL)", "", key)
    if stripped in _BY_KEY:
        return _BY_KEY[stripped]
    return None


def suggest_gpu(name: str) -> list[str]:
    """Close canonical names for a misspelt accelerator name (did-you-mean), closest first.

    Names that extend what was typed come first (`MI300` -> `MI300X`), then names close in spelling;
    compared on the case- and punctuation-free key, so `a-40` is near `A40` and not `P40`."""
    key = _key(name)
    names = sorted(set(_EXACT.values()))
    if not key:
        return []
    extending = sorted((n for n in names if _key(n).startswith(key)), key=lambda n: (len(_key(n)), n))
    by_key: dict[str, str] = {}
    for n in names:
        by_key.setdefault(_key(n), n)
    close = [by_key[k] for k in difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.6)]
    return list(dict.fromkeys(extending + close))[:3]


def gpu_sellers(name: str) -> tuple[str, ...]:
    """The clouds SkyPilot's catalog says sell this accelerator (TPUs: GCP); () when it names none."""
    if name.lower().startswith("tpu-"):
        return ("GCP",)
    return _sellers().get(name, ())


def gpu_memory_gb(name: str) -> float | None:
    model = GPU_MODELS.get(name)
    return model.memory_gb if model else None


def gpu_tdp_watts(name: str) -> float | None:
    model = GPU_MODELS.get(name)
    return model.tdp_watts if model else None
