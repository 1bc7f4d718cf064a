"""Put the shipped price catalogs where SkyPilot reads them, so both sides price from the same files.

SkyPilot reads `<SKY_RUNTIME_DIR or ~>/.sky/catalogs/v8/<cloud>/vms.csv` and downloads a
file only when it is missing; a file without a `.meta/<file>.md5` beside it counts as placed
by hand and is never replaced (`sky/catalog/common.py`, `read_catalog`). So installing is
copying: a cloud whose `vms.csv` is already there (SkyPilot's own fresher download, or an
operator's) is left alone, and nothing here writes `.meta`.

Besides the clouds' `vms.csv`, SkyPilot needs `common/accelerators.csv` (accelerator name ->
clouds) and `common/metadata.csv` (GPU memory, for `32GB+` requests) before it can optimise
anything; offline it cannot download them, so they are derived from the same `vms.csv` files
and `clouds.gpus`. Launching on AWS also needs `aws/images.csv` and
`aws/instance_quota_mapping.csv`, which are not price data: SkyPilot downloads them when online.
"""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from clouds.catalog import SHIPPED_CATALOG_DIR, skypilot_catalog_dir
from clouds.gpus import GPU_MODELS

# SkyPilot's spelling of each cloud in common/accelerators.csv (`str(sky.clouds.<Cloud>())`).
SKY_CLOUD_NAMES = {"aws": "AWS", "gcp": "GCP", "azure": "Azure", "lambda": "Lambda"}


@dataclass(frozen=True)
class InstalledCatalog:
    directory: Path
    installed: tuple[str, ...]  # files written now
    kept: tuple[str, ...]  # files already there, left as they were


def install_catalogs(source: str | Path = SHIPPED_CATALOG_DIR, target: str | Path | None = None) -> InstalledCatalog:
    """Copy `<cloud>/vms.csv` from `source` into SkyPilot's catalog directory where missing.

    `target` defaults to SkyPilot's own directory (`clouds.catalog.skypilot_catalog_dir`).
    """
    source, target = Path(source), Path(target) if target is not None else skypilot_catalog_dir()
    installed: list[str] = []
    kept: list[str] = []
    for cloud in sorted(SKY_CLOUD_NAMES):
        origin = source / cloud / "vms.csv"
        if not origin.is_file():
            continue
        relative = f"{cloud}/vms.csv"
        destination = target / relative
        if destination.exists():
            kept.append(relative)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, destination)
        installed.append(relative)
    accelerators = target / "common" / "accelerators.csv"
    if accelerators.exists():
        kept.append("common/accelerators.csv")
    else:
        _write_accelerators(target, accelerators)
        installed.append("common/accelerators.csv")
    metadata = target / "common" / "metadata.csv"
    if metadata.exists():
        kept.append("common/metadata.csv")
    else:
        _write_metadata(metadata)
        installed.append("common/metadata.csv")
    return InstalledCatalog(target, tuple(installed), tuple(kept))


def _write_accelerators(catalog_dir: Path, path: Path) -> None:
    """`AcceleratorName,Clouds` for every accelerator the installed `vms.csv` files list."""
    clouds_of: dict[str, set[str]] = defaultdict(set)
    for cloud, sky_name in SKY_CLOUD_NAMES.items():
        vms = catalog_dir / cloud / "vms.csv"
        if not vms.is_file():
            continue
        with vms.open(newline="") as f:
            for row in csv.DictReader(f):
                if name := (row.get("AcceleratorName") or "").strip():
                    clouds_of[name].add(sky_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["AcceleratorName", "Clouds"])
        for name in sorted(clouds_of):
            writer.writerow([name, str(sorted(clouds_of[name]))])


def _write_metadata(path: Path) -> None:
    """`GPU,MemoryGB,Manufacturer` for every GPU model this engine knows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["GPU", "MemoryGB", "Manufacturer"])
        for model in sorted(GPU_MODELS.values(), key=lambda m: m.name):
            writer.writerow([model.name, model.memory_gb, model.vendor])
