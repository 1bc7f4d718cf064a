"""The on-prem inventory and private pools: the shipped example, bad files, the Alibaba importer."""

from __future__ import annotations

from pathlib import Path

import pytest

from clouds import energy
from clouds.inventory import (DEFAULT_INVENTORY, Inventory, NodeSpec, amortised_price_per_hour,
                              import_alibaba_nodes, inventory_yaml, load_inventory)
from placement.model import Demand, Sharing, Tier
from placement.yamlio import ConfigError

ALIBABA_NODES = Path(__file__).resolve().parents[1] / "configs" / "traces" / "alibaba_gpu2023_openb_nodes_raw.csv"


@pytest.fixture(scope="module")
def example() -> Inventory:
    return load_inventory(DEFAULT_INVENTORY)


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    return [str(e) for e in info.value.errors]


def test_example_inventory_offers(example: Inventory) -> None:
    offers = {o.id: o for o in example.offers()}
    assert sorted(offers) == sorted([
        "onprem/a100-0", "onprem/a100-1", "onprem/v100-0", "onprem/v100-1", "onprem/t4-0", "onprem/t4-1",
        "onprem/cpu-big", "onprem/cpu-small", "private/private-a100/A100-80GB", "private/private-l4/L4"])
    a100 = offers["onprem/a100-1"]
    assert (a100.tier, a100.provider, a100.name, a100.sharing, a100.capacity) == (
        Tier.ONPREM, "onprem", "a100-1", Sharing.SHARED, 1)
    assert (a100.gpu, a100.gpu_count, a100.gpu_memory_gb, a100.vcpus, a100.memory_gb) == ("A100-80GB", 8, 80, 128, 1024)
    assert (a100.price_per_hour, a100.gpu_watts, a100.host_watts) == (6.8, 400, 900)
    assert a100.labels == (("fabric", "infiniband"), ("rack", "r1"))
    assert (a100.region, a100.gco2_per_kwh) == ("dc-west", 240)
    assert offers["onprem/cpu-small"].gco2_per_kwh == 120  # the node's own grid wins over the site's
    assert offers["onprem/cpu-big"].gpu is None and offers["onprem/cpu-big"].gpu_count == 0
    assert example.pool_quotas() == {"private-a100": 32, "private-l4": 16}


def test_left_out_values_get_defaults(example: Inventory) -> None:
    v100 = next(o for o in example.offers() if o.id == "onprem/v100-0")
    assert v100.price_per_hour == amortised_price_per_hour("V100-32GB", 8, 96, 768)
    assert v100.price_per_hour == pytest.approx((8 * 9000 + 96 * 60 + 768 * 5) * 1.5 / 35040, abs=1e-4)
    assert v100.gpu_watts == 300  # the V100's TDP
    t4 = next(o for o in example.offers() if o.id == "onprem/t4-0")
    assert t4.gpu_memory_gb == 16


def test_private_pool_offers(example: Inventory) -> None:
    offer = next(o for o in example.offers() if o.id == "private/private-a100/A100-80GB")
    assert (offer.tier, offer.provider, offer.sharing, offer.capacity, offer.pool) == (
        Tier.PRIVATE, "private", Sharing.SHARED, None, "private-a100")
    assert offer.price_per_hour == pytest.approx(1.9 * 8)
    assert (offer.cloud, offer.region) == ("kubernetes", "private-a100")  # as SkyPilot reads k8s/private-a100
    assert ("infra", "k8s/private-a100") in offer.labels and offer.gco2_per_kwh == 90
    # A job taking 2 of the node's 8 GPUs pays for 2 GPU-hours.
    assert offer.job_price_per_hour(Demand(accelerator="A100-80GB", accelerator_count=2)) == pytest.approx(3.8)


def test_ssh_pool_and_grid_fallback(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("pools:\n  - name: lab\n    infra: ssh/lab-boxes\n    gpu_quota: 4\n    gpu_types:\n"
                    "      - {gpu: rtx6000, price_per_gpu_hour: 0.3, gpus_per_node: 2, vcpus_per_node: 16,"
                    " memory_gb_per_node: 64}\n")
    offer = load_inventory(path).offers()[0]
    assert (offer.id, offer.cloud, offer.region, offer.gpu) == (
        "private/lab/RTX6000", "ssh", "ssh-lab-boxes", "RTX6000")
    assert offer.gco2_per_kwh == energy.grid_intensity("onprem", None).gco2_per_kwh


def test_empty_file_is_an_empty_inventory(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert load_inventory(path).offers() == [] and load_inventory(path).pool_quotas() == {}


def test_bad_inventory_errors_name_file_line_and_field(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, """\
nodes:
  - name: a
    gpu: A1000
    gpus: 8
    cpus: 8
    memory_gb: 64
    gpu_mem: 40
  - name: b
    gpus: 2
    cpus: 4
    memory_gb: 8
  - name: c
    cpus: -1
    memory_gb: 8
pools:
  - name: p
    infra: aws/us-east-1
    gpu_quota: 8
    gpu_types:
      - {gpu: L4, price_per_gpu_hour: 0.4, gpus_per_node: 4, vcpus_per_node: 8}
""")
    file = str(tmp_path / "inventory.yaml")
    assert errors == [
        f"{file}:3: nodes[0].gpu: unknown GPU 'A1000' (given: 'A1000'); valid: a GPU name such as A100, "
        "A100-80GB, H100, L4, T4, V100. Did you mean 'A100'?",
        f"{file}:7: nodes[0].gpu_mem: unknown field 'gpu_mem'; valid: the fields of nodes[0]: count, cpus, gpu, "
        "gpu_memory_gb, gpu_watts, gpus, grid_gco2_per_kwh, host_watts, labels, memory_gb, name, price_per_hour. "
        "Did you mean 'gpu_memory_gb'?",
        f"{file}:8: nodes[1].gpu: 2 GPUs of which type?; valid: add `gpu:` (e.g. A100)",
        f"{file}:13: nodes[2].cpus: out of range (given: -1); valid: greater than 0",
        f"{file}:17: pools[0].infra: not a SkyPilot infra for a private pool (given: 'aws/us-east-1'); "
        "valid: k8s/<kubernetes context> or ssh/<node pool>",
        f"{file}:20: pools[0].gpu_types[0].memory_gb_per_node: required field is missing; "
        "valid: add `memory_gb_per_node:`",
    ]


def test_node_and_pool_names_must_not_collide(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, """\
nodes:
  - {name: gpu, count: 3, gpu: T4, gpus: 1, cpus: 4, memory_gb: 16}
  - {name: gpu-1, cpus: 4, memory_gb: 16}
pools:
  - name: p
    infra: k8s/a
    gpu_quota: 1
    gpu_types: [{gpu: L4, price_per_gpu_hour: 1, gpus_per_node: 1, vcpus_per_node: 4, memory_gb_per_node: 16}]
  - name: p
    infra: k8s/b
    gpu_quota: 1
    gpu_types: [{gpu: L4, price_per_gpu_hour: 1, gpus_per_node: 1, vcpus_per_node: 4, memory_gb_per_node: 16}]
""")
    assert len(errors) == 2
    assert ":3: nodes[1].name: node 'gpu-1' is also named by nodes[0]" in errors[0]
    assert ":9: pools[1].name: pool 'p' defined twice" in errors[1]


def test_gpu_type_without_default_price_needs_one(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "nodes:\n  - {name: old, gpu: K80, gpus: 4, cpus: 16, memory_gb: 64}\n")
    assert ":2: nodes[0].price_per_hour: no default price for K80 nodes" in errors[0]


def test_two_documents_are_an_error(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "nodes: []\n---\npools: []\n")
    assert "an inventory is one YAML document" in errors[0]


def test_alibaba_importer_gives_the_whole_cluster() -> None:
    nodes = import_alibaba_nodes(ALIBABA_NODES)
    assert len(nodes) == 1523
    assert sum(n.gpus for n in nodes) == 6212
    assert sum(1 for n in nodes if n.gpu is None) == 310
    assert {n.gpu for n in nodes} == {None, "G2", "T4", "P100", "V100", "G3", "V100-32GB", "A10"}
    v100m32 = next(n for n in nodes if n.labels.get("trace_model") == "V100M32")
    assert v100m32.gpu == "V100-32GB" and v100m32.amortised_price() is not None
    first = nodes[0]
    assert (first.name, first.gpus, first.cpus, first.memory_gb) == ("openb-node-0000", 0, 32, 256)
    assert len(import_alibaba_nodes(ALIBABA_NODES, limit=10)) == 10


def test_alibaba_inventory_yaml_groups_and_round_trips(tmp_path: Path) -> None:
    text = inventory_yaml(import_alibaba_nodes(ALIBABA_NODES), prefix="openb", comment="Alibaba openb nodes")
    assert text.startswith("# Alibaba openb nodes\n")
    path = tmp_path / "openb.yaml"
    path.write_text(text)
    inventory = load_inventory(path)
    assert len(inventory.nodes) == 27  # distinct node shapes
    offers = inventory.offers()
    assert len(offers) == 1523 and sum(o.gpu_count for o in offers) == 6212
    g2 = [o for o in offers if o.gpu == "G2"]
    assert len(g2) == 549 and g2[0].id == "onprem/openb-g2x8-96c-384g-000" and g2[-1].name.endswith("-548")


def test_group_names_disambiguate_equal_shapes() -> None:
    specs = [NodeSpec(name="a", cpus=4, memory_gb=16, price_per_hour=1.0),
             NodeSpec(name="b", cpus=4, memory_gb=16, price_per_hour=2.0)]
    text = inventory_yaml(specs, prefix="x")
    assert "name: x-cpu-4c-16g\n" in text and "name: x-cpu-4c-16g-2\n" in text
