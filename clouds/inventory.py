"""On-prem nodes and private GPU pools, from `configs/inventory.yaml`, as `Offer`s.

The file (see the shipped example for every field) has three parts:

- `site`: where the on-prem nodes are and the grid they draw from;
- `nodes`: on-prem machines, one entry per machine or per group of identical machines
  (`count: 16` makes `<name>-00` ... `<name>-15`); each becomes an ONPREM offer
  `onprem/<node>` of capacity 1 that jobs share;
- `pools`: private clouds SkyPilot reaches as `k8s/<context>` or `ssh/<pool>`, with a GPU
  quota and an internal price per GPU-hour; each GPU type becomes a PRIVATE offer
  `private/<pool>/<gpu>` of one node's shape, unbounded in count but held to the quota.

Errors name file, line and field (`placement.yamlio`). Where the file leaves a value out:
GPU memory and power come from `clouds.gpus`, a node's price from `amortised_price_per_hour`,
grid intensity from the node, pool or site, else the median of the grid dataset
(`clouds.energy`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clouds import energy
from clouds.gpus import canonical_gpu, gpu_memory_gb, gpu_tdp_watts, suggest_gpu
from placement.model import Offer, Sharing, Tier
from placement.yamlio import ConfigError, Invalid, load_documents, parse_model, show

DEFAULT_INVENTORY = Path(__file__).resolve().parents[1] / "configs" / "inventory.yaml"

# Amortised cost of owning a server: what it cost, written off straight-line over 4 years
# (35,040 h), times 1.5 for power, cooling, space and operations. Purchase prices per GPU (its
# share of an 8-GPU server, rough 2024 street prices; G2/G3 are the Alibaba trace's
# undisclosed models, taken as V100-class) and per vCPU and GiB of host memory. Assumptions,
# not quotes: give `price_per_hour` where you know better.
GPU_PURCHASE_USD: dict[str, float] = {
    "H100": 30_000, "H200": 35_000, "B200": 45_000, "A100-80GB": 18_000, "A100": 12_000,
    "L40S": 9_000, "A6000": 5_000, "A10": 4_000, "A10G": 4_000, "L4": 3_500, "T4": 2_500,
    "V100-32GB": 9_000, "V100": 7_000, "G3": 9_000, "G2": 7_000, "P100": 4_000,
}
HOST_PURCHASE_USD_PER_VCPU = 60.0
HOST_PURCHASE_USD_PER_GB = 5.0
LIFETIME_HOURS = 4 * 8760
OVERHEAD = 1.5

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_INFRA = re.compile(r"^(k8s|kubernetes|ssh)/(.+)$")


def amortised_price_per_hour(gpu: str | None, gpus: float, cpus: float, memory_gb: float) -> float | None:
    """$/h of owning a node, by the model above; None for a GPU type it has no price for."""
    if gpu is not None and gpu not in GPU_PURCHASE_USD:
        return None
    purchase = (GPU_PURCHASE_USD[gpu] * gpus if gpu else 0.0) + \
        cpus * HOST_PURCHASE_USD_PER_VCPU + memory_gb * HOST_PURCHASE_USD_PER_GB
    return round(purchase * OVERHEAD / LIFETIME_HOURS, 4)


def _gpu_name(name: str | None) -> str | None:
    if name is None:
        return None
    found = canonical_gpu(name)
    if found is None:
        hint = suggest_gpu(name)
        raise Invalid(f"unknown GPU {name!r}", given=show(name),
                      valid="a GPU name such as A100, A100-80GB, H100, L4, T4, V100",
                      suggestion=hint[0] if hint else None)
    return found


def _object_name(name: str) -> str:
    if not _NAME.match(name):
        raise Invalid("not a usable name", given=show(name),
                      valid="letters, digits, '.', '_' and '-', starting with a letter or digit")
    return name


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(_Spec):
    name: str = "onprem"
    grid_gco2_per_kwh: float | None = Field(None, ge=0)

    check_name = field_validator("name")(_object_name)


class NodeSpec(_Spec):
    """One on-prem machine, or `count` identical ones named `<name>-<i>`."""

    name: str
    count: int = Field(1, ge=1)
    gpu: str | None = None
    gpus: int = Field(0, ge=0)
    gpu_memory_gb: float | None = Field(None, gt=0)
    cpus: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    labels: dict[str, str] = Field(default_factory=dict)
    price_per_hour: float | None = Field(None, ge=0)
    grid_gco2_per_kwh: float | None = Field(None, ge=0)
    gpu_watts: float | None = Field(None, gt=0)
    host_watts: float = Field(0.0, ge=0)

    check_name = field_validator("name")(_object_name)
    check_gpu = field_validator("gpu")(_gpu_name)

    @model_validator(mode="after")
    def _consistent(self) -> NodeSpec:
        if self.gpus and self.gpu is None:
            raise Invalid(f"{self.gpus} GPUs of which type?", valid="add `gpu:` (e.g. A100)", path=("gpu",))
        if self.gpu is not None and not self.gpus:
            raise Invalid(f"`gpu: {self.gpu}` but no GPUs", valid="add `gpus:` (how many)", path=("gpus",))
        if self.price_per_hour is None and self.amortised_price() is None:
            raise Invalid(f"no default price for {self.gpu} nodes", path=("price_per_hour",),
                          valid=f"give `price_per_hour:` (defaults exist for {', '.join(GPU_PURCHASE_USD)})")
        return self

    def amortised_price(self) -> float | None:
        return amortised_price_per_hour(self.gpu, self.gpus, self.cpus, self.memory_gb)

    def node_names(self) -> list[str]:
        if self.count == 1:
            return [self.name]
        width = len(str(self.count - 1))
        return [f"{self.name}-{i:0{width}d}" for i in range(self.count)]


class PoolGpu(_Spec):
    """One GPU type a private pool offers, and the shape of the nodes that carry it."""

    gpu: str
    price_per_gpu_hour: float = Field(ge=0)
    gpus_per_node: int = Field(gt=0)
    vcpus_per_node: float = Field(gt=0)
    memory_gb_per_node: float = Field(gt=0)
    gpu_memory_gb: float | None = Field(None, gt=0)
    gpu_watts: float | None = Field(None, gt=0)

    check_gpu = field_validator("gpu")(_gpu_name)


class PoolSpec(_Spec):
    name: str
    infra: str
    gpu_quota: float = Field(ge=0)
    gpu_types: list[PoolGpu] = Field(min_length=1)
    site: str | None = None
    grid_gco2_per_kwh: float | None = Field(None, ge=0)

    check_name = field_validator("name")(_object_name)

    @field_validator("infra")
    @classmethod
    def _infra(cls, infra: str) -> str:
        if not _INFRA.match(infra):
            raise Invalid("not a SkyPilot infra for a private pool", given=show(infra),
                          valid="k8s/<kubernetes context> or ssh/<node pool>")
        return infra

    @field_validator("gpu_types")
    @classmethod
    def _one_entry_per_gpu(cls, entries: list[PoolGpu]) -> list[PoolGpu]:
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if entry.gpu in seen:
                raise Invalid(f"{entry.gpu} listed twice", valid="one entry per GPU type", path=(i, "gpu"))
            seen.add(entry.gpu)
        return entries

    def sky_cloud_region(self) -> tuple[str, str]:
        """(cloud, region) as SkyPilot reads the infra: k8s/<ctx> -> kubernetes, ctx; ssh/<p> -> ssh, ssh-<p>."""
        match = _INFRA.match(self.infra)
        assert match  # checked by _infra
        kind, rest = match.groups()
        return ("ssh", f"ssh-{rest}") if kind == "ssh" else ("kubernetes", rest)


class Inventory(_Spec):
    site: Site = Field(default_factory=Site)
    nodes: list[NodeSpec] = Field(default_factory=list)
    pools: list[PoolSpec] = Field(default_factory=list)

    @field_validator("nodes")
    @classmethod
    def _unique_node_names(cls, nodes: list[NodeSpec]) -> list[NodeSpec]:
        first: dict[str, int] = {}
        for i, spec in enumerate(nodes):
            for name in spec.node_names():
                if name in first:
                    raise Invalid(f"node {name!r} is also named by nodes[{first[name]}]",
                                  valid="unique node names", path=(i, "name"))
                first[name] = i
        return nodes

    @field_validator("pools")
    @classmethod
    def _unique_pool_names(cls, pools: list[PoolSpec]) -> list[PoolSpec]:
        seen: set[str] = set()
        for i, pool in enumerate(pools):
            if pool.name in seen:
                raise Invalid(f"pool {pool.name!r} defined twice", valid="unique pool names", path=(i, "name"))
            seen.add(pool.name)
        return pools

    def offers(self) -> list[Offer]:
        """One ONPREM offer per node, one PRIVATE offer per pool and GPU type."""
        return [offer for spec in self.nodes for offer in self._node_offers(spec)] + \
            [self._pool_offer(pool, entry) for pool in self.pools for entry in pool.gpu_types]

    def pool_quotas(self) -> dict[str, float]:
        """Private pool -> GPUs it may use in all."""
        return {pool.name: pool.gpu_quota for pool in self.pools}

    def _grid(self, *overrides: float | None) -> float:
        for value in (*overrides, self.site.grid_gco2_per_kwh):
            if value is not None:
                return value
        return energy.grid_intensity("onprem", None).gco2_per_kwh

    def _node_offers(self, spec: NodeSpec) -> list[Offer]:
        price = spec.price_per_hour if spec.price_per_hour is not None else spec.amortised_price()
        assert price is not None  # checked by NodeSpec._consistent
        return [Offer(
            id=f"onprem/{name}", tier=Tier.ONPREM, provider="onprem", name=name, sharing=Sharing.SHARED,
            gpu=spec.gpu, gpu_count=float(spec.gpus),
            gpu_memory_gb=float(spec.gpu_memory_gb or (gpu_memory_gb(spec.gpu) if spec.gpu else 0.0) or 0.0),
            vcpus=spec.cpus, memory_gb=spec.memory_gb, price_per_hour=price, region=self.site.name,
            capacity=1, gco2_per_kwh=self._grid(spec.grid_gco2_per_kwh),
            gpu_watts=spec.gpu_watts or (gpu_tdp_watts(spec.gpu) if spec.gpu else None),
            host_watts=spec.host_watts, labels=tuple(sorted(spec.labels.items())),
        ) for name in spec.node_names()]

    def _pool_offer(self, pool: PoolSpec, entry: PoolGpu) -> Offer:
        cloud, region = pool.sky_cloud_region()
        labels = [("infra", pool.infra)] + ([("site", pool.site)] if pool.site else [])
        return Offer(
            id=f"private/{pool.name}/{entry.gpu}", tier=Tier.PRIVATE, provider="private", name=pool.name,
            sharing=Sharing.SHARED, gpu=entry.gpu, gpu_count=float(entry.gpus_per_node),
            gpu_memory_gb=float(entry.gpu_memory_gb or gpu_memory_gb(entry.gpu) or 0.0),
            vcpus=entry.vcpus_per_node, memory_gb=entry.memory_gb_per_node,
            price_per_hour=round(entry.price_per_gpu_hour * entry.gpus_per_node, 6),
            cloud=cloud, region=region, capacity=None, pool=pool.name,
            gco2_per_kwh=self._grid(pool.grid_gco2_per_kwh),
            gpu_watts=entry.gpu_watts or gpu_tdp_watts(entry.gpu), labels=tuple(sorted(labels)),
        )


def load_inventory(path: str | Path) -> Inventory:
    """The inventory in one YAML file (an empty file is an empty inventory). Raises ConfigError."""
    documents = load_documents(path)
    if len(documents) > 1:
        raise ConfigError([documents[1].error((), "an inventory is one YAML document",
                                              valid="remove the `---` and merge the documents")])
    return parse_model(Inventory, documents[0]) if documents else Inventory()


# --- the Alibaba openb trace's nodes as an inventory ----------------------------------


def import_alibaba_nodes(csv_path: str | Path, limit: int | None = None) -> list[NodeSpec]:
    """Nodes of Alibaba's cluster-trace-gpu-v2023 (`sn,cpu_milli,memory_mib,gpu,model`), one spec each.

    GPU models map to canonical names (`V100M16` -> V100, `V100M32` -> V100-32GB; `G2`, `G3`
    stay as the trace's undisclosed models); the trace's own name is kept as the label
    `trace_model`. Prices come from `amortised_price_per_hour`.
    """
    nodes: list[NodeSpec] = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            if limit is not None and len(nodes) >= limit:
                break
            gpus, model = int(row["gpu"]), row["model"].strip()
            gpu = canonical_gpu(model) if gpus else None
            if gpus and gpu is None:
                raise ValueError(f"{csv_path}:{reader.line_num}: unknown GPU model {model!r}")
            nodes.append(NodeSpec(name=row["sn"], gpu=gpu, gpus=gpus, cpus=int(row["cpu_milli"]) / 1000,
                                  memory_gb=int(row["memory_mib"]) / 1024,
                                  labels={"trace_model": model} if model else {}))
    return nodes


def inventory_yaml(nodes: Iterable[NodeSpec], *, prefix: str = "node", site: Site | None = None,
                   pools: Iterable[PoolSpec] = (), comment: str | None = None) -> str:
    """Inventory YAML for these nodes, identical ones folded into groups.

    Groups are named after their shape (`<prefix>-g2x8-96c-384g`), so the machines get new
    names (`...-000`, `...-001`); everything else about them is kept.
    """
    groups: dict[str, dict[str, Any]] = {}  # shape (as JSON) -> group entry
    for spec in nodes:
        shape = spec.model_dump_json(exclude={"name", "count"})
        if shape in groups:
            groups[shape]["count"] += spec.count
        else:
            groups[shape] = {"name": "", "count": spec.count, **_plain(spec.model_dump(
                exclude={"name", "count"}, exclude_defaults=True))}
    used: set[str] = set()
    for entry in groups.values():
        base = f"{prefix}-{_shape_slug(entry)}"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        entry["name"] = name
    document: dict[str, Any] = {}
    if site is not None:
        document["site"] = _plain(site.model_dump(exclude_defaults=True))
    document["nodes"] = list(groups.values())
    pools = list(pools)
    if pools:
        document["pools"] = [_plain(p.model_dump(exclude_defaults=True)) for p in pools]
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    header = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    return header + text


def _shape_slug(entry: dict[str, Any]) -> str:
    gpu = re.sub(r"[^a-z0-9.]+", "-", str(entry.get("gpu", "cpu")).lower())
    gpus = f"x{entry['gpus']}" if entry.get("gpus") else ""
    return f"{gpu}{gpus}-{entry['cpus']:g}c-{entry['memory_gb']:g}g"


def _plain(value: Any) -> Any:
    """Whole floats as ints, so the YAML reads `cpus: 96`, not `cpus: 96.0`."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
