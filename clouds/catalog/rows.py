"""Catalog rows read and checked: numbers parsed, prices and GPU counts checked or fixed, each problem
collected once per file, instance type and problem; and the `Offer` a row makes.
"""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from clouds import energy
from clouds.gpus import canonical_gpu, gpu_memory_gb, gpu_tdp_watts
from placement.model import Offer, Sharing, Tier

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


@dataclass(frozen=True, slots=True)


class Row:
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


class Gpu:
    name: str | None  # canonical; None for a CPU-only instance
    accelerator: str
    count: float
    memory_gb: float


NO_GPU = Gpu(None, "", 0, 0.0)


@dataclass


class Problems:
    """Source problems, one line per (file, subject, problem) however many rows share it."""

    rows: dict[tuple[str, str, str], dict[int, str]] = field(default_factory=dict)

    def add(self, file: str, subject: str, problem: str, line: int, where: str) -> None:
        self.rows.setdefault((file, subject, problem), {})[line] = where

    def reporter(self, file: str, subject: str, row: Row) -> Callable[[str], None]:
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


def read_rows(path: Path, label: str, problems: Problems) -> list[Row]:
    rows: list[Row] = []
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
                    _check_prices(row, problems.reporter(label, row.instance or gpu_subject(row), row))
                    rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.add(label, "file", f"unreadable ({exc}); rows after the error skipped", 0, "")
    return rows


def _parse_row(record: dict, line: int, label: str, problems: Problems) -> Row | None:
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

    row = Row(line=line, instance=instance, accelerator=text["AcceleratorName"],
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


def gpu_subject(row: Row) -> str:
    return f"{row.accelerator}:{row.count_text}"


def _check_prices(row: Row, report: Callable[[str], None]) -> None:
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


def standalone_markets(row: Row, report: Callable[[str], None]) -> list[tuple[bool, float]]:
    """(spot, price) of the offers one self-contained row makes."""
    markets = []
    for spot, price in ((False, row.price), (True, row.spot)):
        if price == 0:
            report(f"{'spot' if spot else 'on-demand'} price 0.0 is not a price; that offer skipped")
        elif price is not None and price > 0:
            markets.append((spot, price))
    return markets


def resolve_gpu(cloud: str, row: Row, report: Callable[[str], None]) -> Gpu | None:
    """The row's GPUs, `NO_GPU` for a CPU-only row, None (reported) when the row must be skipped."""
    if not row.accelerator:
        return NO_GPU
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
    return Gpu(name, row.accelerator, count, float(memory or gpu_memory_gb(name) or 0.0))


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


def make_offer(cloud: str, row: Row, id_name: str, gpu: Gpu, spot: bool, price: float) -> Offer:
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
