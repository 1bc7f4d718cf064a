"""SkyPilot `vms.csv` catalogs -> public `Offer`s.

One offer per (cloud, region, zone, instance type, market): an on-demand offer where the
row has an on-demand price, a spot offer where it has a spot price. Ids read
`aws/us-east-1/use1-az1/p4d.24xlarge/spot` (no zone part where the cloud has none, as on
Azure and Lambda; GCP GPUs attached to an N1 host read `.../n1-standard-8+T4:1/on-demand`).
Every GPU offer carries the catalog's own accelerator name as the label `accelerator`:
SkyPilot needs it to launch (`H100-MEGA`, where the canonical name is `H100`).

The catalogs have errors (see `configs/catalogs/README.md`). None of them stops a load; each
becomes one line in `CatalogLoad.warnings`, grouped per file, instance type and problem:

- no on-demand price: the spot offer alone is kept; no price at all: the row is skipped;
  a price of zero or below, or one that is not a number: that price is treated as absent;
- spot equal to or above on-demand: both offers are kept, as listed;
- GPU counts that cannot be right (zero or below, over 16 per VM, or a fraction of a GPU that
  clouds do not sell in slices): skipped, unless the true count is known from the instance
  name or `_KNOWN_GPU_COUNTS` (Azure ND96isr_H100_v5 says 12; it has 8), then fixed;
- accelerators with no GPU memory figure (TPUs, Inferentia, ...): skipped;
- GCP (host and GPU priced apart, see `_gcp_offers`): a host price of 0.0 (a4-highgpu-8g)
  leaves the GPU row as the whole price, a lower bound, rather than dropping the only B200
  machine GCP lists; GPU machine types SkyPilot does not map to their GPUs (a3-edgegpu-8g,
  the -nolssd variants) are skipped, as neither GPU nor CPU offers; a GPU row with no host in
  its zone, or in a count GCP does not attach, is skipped.
"""

from __future__ import annotations

import ast
import csv
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from clouds import energy
from clouds.gpus import canonical_gpu, gpu_memory_gb, gpu_tdp_watts
from placement.model import Offer, Sharing, Tier

SHIPPED_CATALOG_DIR = Path(__file__).resolve().parents[1] / "configs" / "catalogs"
SKYPILOT_CATALOG_VERSION = "v8"  # sky.skylet.constants.CATALOG_SCHEMA_VERSION in SkyPilot 0.14.1

_REQUIRED_COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB",
                     "Price", "SpotPrice", "Region")
_MAX_GPUS_PER_VM = 16
# GPUs that clouds sell in slices (Azure NVadsA10 v5 and NVv4, AWS g6f): a count below 1 is real.
_SLICEABLE = frozenset({"A10", "L4", "Radeon MI25"})
# GPU counts a catalog gets wrong, from the providers' size tables.
_KNOWN_GPU_COUNTS: dict[tuple[str, str], int] = {
    ("azure", "Standard_ND96isr_H100_v5"): 8,
    ("azure", "Standard_ND96isr_H200_v5"): 8,
    ("azure", "Standard_ND96amsr_A100_v4"): 8,
    ("azure", "Standard_ND96asr_v4"): 8,
    ("azure", "Standard_ND40rs_v2"): 8,
}
_COUNT_IN_NAME: dict[str, re.Pattern[str]] = {"lambda": re.compile(r"^gpu_(\d+)x_")}

# GCP, from SkyPilot 0.14.1 sky/catalog/gcp_catalog.py. Machine types with GPUs built in
# (_ACC_INSTANCE_TYPE_DICTS): machine type -> (catalog accelerator name, count).
_GCP_FIXED_HOSTS: dict[str, tuple[str, int]] = {
    **{f"a2-highgpu-{n}g": ("A100", n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": ("A100", 16),
    **{f"a2-ultragpu-{n}g": ("A100-80GB", n) for n in (1, 2, 4, 8)},
    **{f"g2-standard-{cpus}": ("L4", 1) for cpus in (4, 8, 12, 16, 32)},
    "g2-standard-24": ("L4", 2),
    "g2-standard-48": ("L4", 4),
    "g2-standard-96": ("L4", 8),
    **{f"a3-highgpu-{n}g": ("H100", n) for n in (1, 2, 4, 8)},
    "a3-megagpu-8g": ("H100-MEGA", 8),
    "a3-ultragpu-8g": ("H200", 8),
    "a4-highgpu-8g": ("B200", 8),
    **{f"g4-standard-{cpus}": ("RTXPRO6000", n) for n, cpus in ((1, 48), (2, 96), (4, 192), (8, 384))},
}
_GCP_FIXED_GPUS = frozenset(accelerator for accelerator, _ in _GCP_FIXED_HOSTS.values())
# Families of GPU machine types; one not in _GCP_FIXED_HOSTS (a3-edgegpu-8g, *-nolssd) is a
# GPU machine SkyPilot cannot launch with its GPUs, so it is no CPU offer either.
_GCP_GPU_FAMILIES = ("a2-", "a3-", "a4-", "g2-", "g4-")
# Other GPUs attach to N1 hosts (_DEFAULT_HOST_VM_FAMILY): GPU -> count -> largest host
# (vCPUs, memory GiB) it attaches to (_NUM_ACC_TO_MAX_CPU_AND_MEMORY), and the zones where
# the limit is lower (check_accelerator_attachable_to_host).
_GCP_N1_HOSTS = ("n1-standard-", "n1-highmem-", "n1-highcpu-")
_GCP_ATTACHABLE: dict[str, dict[int, tuple[float, float]]] = {
    "K80": {1: (8, 52), 2: (16, 104), 4: (32, 208), 8: (64, 208)},
    "V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "P100": {1: (16, 104), 2: (32, 208), 4: (96, 624)},
}
_GCP_ZONE_LIMITS: dict[tuple[str, int, str], tuple[float, float]] = {
    ("K80", 8, "asia-east1-a"): (64, 416),
    ("K80", 8, "us-east1-d"): (64, 416),
    **{("P100", 4, zone): (64, 208) for zone in ("us-east1-c", "europe-west1-d", "europe-west1-b")},
}


@dataclass(frozen=True, slots=True)
class CatalogLoad:
    offers: list[Offer]
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class _Row:
    """One catalog row, numbers parsed; `None` where the catalog has no usable value."""

    line: int
    instance: str
    accelerator: str  # the catalog's AcceleratorName, as SkyPilot spells it
    count: float | None
    count_text: str
    vcpus: float | None
    memory_gb: float | None
    gpu_info: str
    price: float | None
    spot: float | None
    region: str
    zone: str | None
    arch: str | None

    @property
    def where(self) -> str:
        return f"{self.region}/{self.zone}" if self.zone else self.region


@dataclass(frozen=True, slots=True)
class _Gpu:
    name: str | None  # canonical; None for a CPU-only instance
    accelerator: str
    count: float
    memory_gb: float


_NO_GPU = _Gpu(None, "", 0, 0.0)


@dataclass
class _Problems:
    """Source problems, one line per (file, subject, problem) however many rows share it."""

    rows: dict[tuple[str, str, str], dict[int, str]] = field(default_factory=dict)

    def add(self, file: str, subject: str, problem: str, line: int, where: str) -> None:
        self.rows.setdefault((file, subject, problem), {})[line] = where

    def reporter(self, file: str, subject: str, row: _Row) -> Callable[[str], None]:
        return lambda problem: self.add(file, subject, problem, row.line, row.where)

    def lines(self) -> list[str]:
        """`file:line,line: subject: problem (where, where)`, in file and line order."""
        out = []
        for (file, subject, problem), rows in sorted(self.rows.items(), key=lambda kv: (kv[0][0], min(kv[1]))):
            numbers = _first_few([str(n) for n in rows if n], ",")
            places = _first_few(list(dict.fromkeys(p for p in rows.values() if p)), ", ")
            out.append(f"{file}{':' + numbers if numbers else ''}: {subject}: {problem}"
                       f"{f' ({places})' if places else ''}")
        return out


def _first_few(items: list[str], sep: str, few: int = 6) -> str:
    return sep.join(items[:few]) + (f"{sep}..." if len(items) > few else "")


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
    problems = _Problems()
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


def _load_file(path: Path, label: str, cloud: str, problems: _Problems) -> list[tuple[Offer, int]]:
    rows = _read_rows(path, label, problems)
    if cloud == "gcp":
        return _gcp_offers(rows, label, problems)
    out = []
    for row in rows:
        report = problems.reporter(label, row.instance or _gpu_subject(row), row)
        if not row.instance:
            report("InstanceType empty; row skipped")
            continue
        gpu = _resolve_gpu(cloud, row, report)
        if gpu is not None:
            out += [(_offer(cloud, row, row.instance, gpu, spot, price), row.line)
                    for spot, price in _standalone_markets(row, report)]
    return out


def _read_rows(path: Path, label: str, problems: _Problems) -> list[_Row]:
    rows: list[_Row] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                problems.add(label, "header", f"missing columns {', '.join(missing)}; file skipped", 1, "")
                return []
            for record in reader:
                row = _parse_row(record, reader.line_num, label, problems)
                if row is not None:
                    _check_prices(row, problems.reporter(label, row.instance or _gpu_subject(row), row))
                    rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.add(label, "file", f"unreadable ({exc}); rows after the error skipped", 0, "")
    return rows


def _parse_row(record: dict, line: int, label: str, problems: _Problems) -> _Row | None:
    if None in record or None in record.values():
        problems.add(label, "row", "wrong number of fields; skipped", line, "")
        return None
    text = {k: v.strip() for k, v in record.items()}
    instance = text["InstanceType"]
    subject = instance or f"{text['AcceleratorName']}:{text['AcceleratorCount']}"
    fatal: list[str] = []  # the row is no use without these
    absent: list[str] = []  # a price or count the row can do without

    def number(column: str, required: bool) -> float | None:
        value = text.get(column, "")
        if not value:
            if required:
                fatal.append(f"{column} empty")
            return None
        try:
            return float(value)
        except ValueError:
            (fatal if required else absent).append(f"{column} {value!r} is not a number")
            return None

    row = _Row(line=line, instance=instance, accelerator=text["AcceleratorName"],
               count=number("AcceleratorCount", False), count_text=text["AcceleratorCount"],
               vcpus=number("vCPUs", bool(instance)), memory_gb=number("MemoryGiB", bool(instance)),
               gpu_info=text.get("GpuInfo", ""), price=number("Price", False),
               spot=number("SpotPrice", False), region=text["Region"],
               zone=text.get("AvailabilityZone") or None, arch=text.get("Arch") or None)
    if not row.region:
        fatal.append("Region empty")
    where = row.where if row.region else ""
    for problem in fatal:
        problems.add(label, subject, f"{problem}; row skipped", line, where)
    if fatal:
        return None
    for problem in absent:
        problems.add(label, subject, f"{problem}; treated as absent", line, where)
    return row


def _gpu_subject(row: _Row) -> str:
    return f"{row.accelerator}:{row.count_text}"


def _check_prices(row: _Row, report: Callable[[str], None]) -> None:
    """Warnings about a row's prices, once per row however many offers it takes part in."""
    if row.price is None and row.spot is None:
        report("no price; skipped")
    elif row.price is None:
        report("no on-demand price; spot offer only")
    elif row.spot is not None and row.spot > 0 and row.price > 0:
        if row.spot == row.price:
            report("spot price equals on-demand; kept both")
        elif row.spot > row.price:
            report("spot price above on-demand; kept both")
    for market, price in (("on-demand", row.price), ("spot", row.spot)):
        if price is not None and price < 0:
            report(f"{market} price {price} below zero; treated as absent")


def _standalone_markets(row: _Row, report: Callable[[str], None]) -> list[tuple[bool, float]]:
    """(spot, price) of the offers one self-contained row makes."""
    markets = []
    for spot, price in ((False, row.price), (True, row.spot)):
        if price == 0:
            report(f"{'spot' if spot else 'on-demand'} price 0.0 is not a price; that offer skipped")
        elif price is not None and price > 0:
            markets.append((spot, price))
    return markets


def _resolve_gpu(cloud: str, row: _Row, report: Callable[[str], None]) -> _Gpu | None:
    """The row's GPUs, `_NO_GPU` for a CPU-only row, None (reported) when the row must be skipped."""
    if not row.accelerator:
        return _NO_GPU
    name = canonical_gpu(row.accelerator)
    if name is None or gpu_memory_gb(name) is None:  # TPUs, Inferentia: not GPUs the engine can size
        report(f"unknown accelerator {row.accelerator!r} (no GPU memory figure for it); skipped")
        return None
    count = row.count
    known = _known_gpu_count(cloud, row.instance)
    if known is not None and count != known:
        report(f"catalog says {row.count_text or 'no'} {row.accelerator} GPUs, the instance has {known}; fixed")
        count = float(known)
    if count is None:
        report(f"GPU count {row.count_text!r} unusable; skipped")
        return None
    sliced = 0 < count < 1 and name in _SLICEABLE
    if count <= 0 or count > _MAX_GPUS_PER_VM or (count != int(count) and not sliced):
        report(f"impossible GPU count {row.count_text}; skipped")
        return None
    memory = _gpu_memory_from_info(row.gpu_info)
    if memory is None and row.gpu_info.startswith("{"):
        report("GpuInfo has no readable GPU memory; memory from the GPU table")
    return _Gpu(name, row.accelerator, count, float(memory or gpu_memory_gb(name) or 0.0))


def _known_gpu_count(cloud: str, instance: str) -> int | None:
    if (cloud, instance) in _KNOWN_GPU_COUNTS:
        return _KNOWN_GPU_COUNTS[cloud, instance]
    pattern = _COUNT_IN_NAME.get(cloud)
    match = pattern.match(instance) if pattern else None
    return int(match.group(1)) if match else None


@cache
def _gpu_memory_from_info(text: str) -> float | None:
    """GiB per GPU from a GpuInfo literal: MemoryInfo.SizeInMiB, else TotalGpuMemoryInMiB / count.

    SizeInMiB comes first because Lambda's TotalGpuMemoryInMiB is the per-GPU size.
    """
    if not text.startswith("{"):
        return None  # Azure's GpuInfo is just the GPU name
    try:
        info = ast.literal_eval(text)
        gpus = info.get("Gpus") or []
        size = gpus[0].get("MemoryInfo", {}).get("SizeInMiB") if gpus else None
        if size:
            return round(size / 1024, 1)
        total, count = info.get("TotalGpuMemoryInMiB"), sum(g.get("Count", 0) for g in gpus)
        return round(total / count / 1024, 1) if total and count else None
    except (ValueError, TypeError, SyntaxError, AttributeError, RecursionError):
        return None


def _gcp_offers(rows: list[_Row], label: str, problems: _Problems) -> list[tuple[Offer, int]]:
    """GCP prices GPUs apart from hosts: a GPU VM is a host row plus a GPU row of its zone.

    As SkyPilot's `gcp_catalog.list_accelerators` combines them: A100, A100-80GB, L4, H100,
    H100-MEGA, H200 and B200 come with their own machine types (`_GCP_FIXED_HOSTS`); other
    GPUs attach to every N1 host of the zone within the GPU count's vCPU and memory limit. A
    combined offer has a spot price when both rows have one.
    """
    out: list[tuple[Offer, int]] = []
    gpu_rows: dict[tuple[str, str | None, str, float], tuple[_Row, _Gpu]] = {}
    n1_hosts: dict[tuple[str, str | None], list[_Row]] = {}
    fixed_hosts: list[_Row] = []
    for row in rows:
        if not row.instance:
            report = problems.reporter(label, _gpu_subject(row), row)
            gpu = _resolve_gpu("gcp", row, report)
            if gpu is not None:
                gpu_rows[row.region, row.zone, row.accelerator, gpu.count] = (row, gpu)
            continue
        report = problems.reporter(label, row.instance, row)
        if row.accelerator or not row.instance.startswith(_GCP_GPU_FAMILIES):
            gpu = _resolve_gpu("gcp", row, report)
            if gpu is not None:
                out += [(_offer("gcp", row, row.instance, gpu, spot, price), row.line)
                        for spot, price in _standalone_markets(row, report)]
            if not row.accelerator and row.instance.startswith(_GCP_N1_HOSTS):
                n1_hosts.setdefault((row.region, row.zone), []).append(row)
        elif row.instance in _GCP_FIXED_HOSTS:
            fixed_hosts.append(row)
        else:
            report("GPU machine type SkyPilot does not map to a GPU; skipped")

    used: set[int] = set()
    for host in fixed_hosts:
        accelerator, count = _GCP_FIXED_HOSTS[host.instance]
        found = gpu_rows.get((host.region, host.zone, accelerator, count))
        if found is None:
            problems.reporter(label, host.instance, host)(f"no {accelerator}:{count} price row in the zone; skipped")
            continue
        used.add(found[0].line)
        out += _combined(label, host, *found, problems)
    for gpu_row, gpu in gpu_rows.values():
        if gpu_row.line in used:
            continue
        report = problems.reporter(label, _gpu_subject(gpu_row), gpu_row)
        limits = _GCP_ATTACHABLE.get(gpu.accelerator, {})
        if gpu.accelerator in _GCP_FIXED_GPUS:
            report("no host machine type in the zone; skipped")
        elif gpu.count not in limits:
            report(f"not attachable to N1 hosts in this count (valid: {sorted(limits) or 'none'}); skipped")
        else:
            max_cpus, max_memory = _GCP_ZONE_LIMITS.get((gpu.accelerator, int(gpu.count), gpu_row.zone or ""),
                                                        limits[int(gpu.count)])
            hosts = [h for h in n1_hosts.get((gpu_row.region, gpu_row.zone), [])
                     if (h.vcpus or 0) <= max_cpus and (h.memory_gb or 0) <= max_memory]
            if not hosts:
                report("no N1 host it attaches to in the zone; skipped")
            for host in hosts:
                out += _combined(label, host, gpu_row, gpu, problems, attached=True)
    return out


def _combined(label: str, host: _Row, gpu_row: _Row, gpu: _Gpu, problems: _Problems,
              attached: bool = False) -> list[tuple[Offer, int]]:
    """Offers for one GCP host with one GPU row's GPUs."""
    id_name = f"{host.instance}+{gpu.accelerator}:{gpu.count:g}" if attached else host.instance
    out = []
    for spot, host_price, gpu_price in ((False, host.price, gpu_row.price), (True, host.spot, gpu_row.spot)):
        if host_price is None or gpu_price is None or host_price < 0 or gpu_price <= 0:
            continue
        if host_price == 0:
            problems.reporter(label, host.instance, host)(
                f"host price 0.0; priced from the {gpu.accelerator}:{gpu.count:g} row alone (a lower bound)")
        out.append((_offer("gcp", host, id_name, gpu, spot, round(host_price + gpu_price, 6)), host.line))
    return out


def _offer(cloud: str, row: _Row, id_name: str, gpu: _Gpu, spot: bool, price: float) -> Offer:
    parts = [cloud, row.region, row.zone, id_name, "spot" if spot else "on-demand"]
    labels = [("accelerator", gpu.accelerator)] if gpu.name else []
    if row.arch:
        labels.append(("arch", row.arch))
    return Offer(
        id="/".join(p for p in parts if p),
        tier=Tier.PUBLIC,
        provider=cloud,
        name=row.instance,
        sharing=Sharing.DEDICATED,
        gpu=gpu.name,
        gpu_count=gpu.count,
        gpu_memory_gb=gpu.memory_gb,
        vcpus=row.vcpus or 0.0,
        memory_gb=row.memory_gb or 0.0,
        price_per_hour=price,
        spot=spot,
        cloud=cloud,
        region=row.region,
        zone=row.zone,
        capacity=None,
        gco2_per_kwh=energy.grid_intensity(cloud, row.region).gco2_per_kwh,
        gpu_watts=gpu_tdp_watts(gpu.name) if gpu.name else None,
        labels=tuple(sorted(labels)),
    )
