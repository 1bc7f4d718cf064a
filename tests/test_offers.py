"""All tiers together: collecting offers, finding them for a request, and the CLI's argument parsers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clouds.catalog import SHIPPED_CATALOG_DIR
from clouds.inventory import DEFAULT_INVENTORY
from clouds.offers import GpuArg, OfferSet, collect_offers, find_offers, parse_amount, parse_gpu_arg
from placement.model import Offer, Sharing, Tier


@pytest.fixture(scope="module")
def offer_set() -> OfferSet:
    return collect_offers(DEFAULT_INVENTORY, [SHIPPED_CATALOG_DIR])


@pytest.fixture(scope="module")
def offers(offer_set: OfferSet) -> list[Offer]:
    return offer_set.offers


def test_collect_offers_joins_all_tiers(offer_set: OfferSet) -> None:
    offers, warnings, quotas = offer_set  # unpacks as the tuple the CLI wants
    tiers = {t: sum(1 for o in offers if o.tier is t) for t in Tier}
    assert tiers[Tier.ONPREM] == 8 and tiers[Tier.PRIVATE] == 2 and tiers[Tier.PUBLIC] >= 600
    assert quotas == {"private-a100": 32, "private-l4": 16}
    assert any("p5e.48xlarge" in w for w in warnings)
    assert len({o.id for o in offers}) == len(offers)


def test_collect_offers_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path))  # no SkyPilot catalog here: the shipped one is used
    default = collect_offers()
    explicit = collect_offers(DEFAULT_INVENTORY, [SHIPPED_CATALOG_DIR])
    assert {o.id for o in default.offers} == {o.id for o in explicit.offers}


def test_cheapest_first_across_tiers(offers: list[Offer]) -> None:
    found = find_offers(offers, gpu="A100-80GB", gpu_count=8, cpus=8, memory_gb=64, spot=False)
    prices = [p for _, p in found]
    assert prices == sorted(prices)
    assert [o.id for o, _ in found[:3]] == ["onprem/a100-0", "onprem/a100-1", "private/private-a100/A100-80GB"]
    public = [(o, p) for o, p in found if o.tier is Tier.PUBLIC]
    cheapest = min(o.price_per_hour for o in offers
                   if o.tier is Tier.PUBLIC and not o.spot and o.gpu == "A100-80GB" and o.gpu_count >= 8)
    assert public[0][1] == cheapest == 22.32  # Lambda's gpu_8x_a100_80gb_sxm4
    assert all(o.gpu == "A100-80GB" and o.gpu_count >= 8 and not o.spot for o, _ in found)


def test_shared_offers_charge_the_requests_share(offers: list[Offer]) -> None:
    found = dict((o.id, p) for o, p in find_offers(offers, gpu="T4", gpu_count=1))
    assert found["onprem/t4-0"] == pytest.approx(0.55 / 4)
    assert found["aws/us-east-1/us-east-1a/g4dn.12xlarge/on-demand"] == 3.912  # a dedicated instance: whole price
    cpu_only = dict((o.id, p) for o, p in find_offers(offers, cpus=48, memory_gb=96))
    assert cpu_only["onprem/cpu-big"] == pytest.approx(0.5 * 0.5)  # half its 96 vCPUs
    assert "onprem/cpu-small" not in cpu_only


def test_filters(offers: list[Offer]) -> None:
    spot = find_offers(offers, gpu="H100", gpu_count=8, spot=True)
    assert spot and all(o.spot and o.tier is Tier.PUBLIC for o, _ in spot)
    assert spot[0][0].id == "aws/us-east-1/use1-atl2-az1/p5.48xlarge/spot"
    private = find_offers(offers, gpu="l4", tiers={"private"})
    assert [o.id for o, _ in private] == ["private/private-l4/L4"] and private[0][1] == pytest.approx(0.45)
    assert find_offers(offers, gpu="A100-80GB", gpu_count=8, tiers={Tier.ONPREM}, memory_gb=2048) == []
    any_four = find_offers(offers, gpu_count=4, tiers={"onprem"})
    assert {o.id for o, _ in any_four} == {"onprem/a100-0", "onprem/a100-1", "onprem/v100-0", "onprem/v100-1",
                                           "onprem/t4-0", "onprem/t4-1"}
    everything = find_offers(offers)
    assert len(everything) == len(offers) and everything[0][1] == min(o.price_per_hour for o in offers)


def test_unknown_gpu_is_an_error_with_a_suggestion(offers: list[Offer]) -> None:
    with pytest.raises(ValueError, match="did you mean A100"):
        find_offers(offers, gpu="A1000")


@settings(max_examples=60, deadline=None)
@given(gpu=st.sampled_from([None, "A100", "A100-80GB", "H100", "T4", "L4", "V100"]),
       gpu_count=st.sampled_from([None, 0.5, 1, 2, 4, 8, 16]),
       cpus=st.sampled_from([None, 4, 32, 96]), memory_gb=st.sampled_from([None, 16, 256, 1024]),
       spot=st.sampled_from([None, True, False]),
       tiers=st.sampled_from([None, {Tier.PUBLIC}, {Tier.ONPREM, Tier.PRIVATE}]))
def test_every_found_offer_meets_the_request(offers: list[Offer], gpu, gpu_count, cpus, memory_gb, spot,
                                             tiers) -> None:
    found = find_offers(offers, gpu=gpu, gpu_count=gpu_count, cpus=cpus, memory_gb=memory_gb, spot=spot,
                        tiers=tiers)
    assert [p for _, p in found] == sorted(p for _, p in found)
    for offer, price in found:
        assert gpu is None or offer.gpu == gpu
        assert offer.gpu_count >= (gpu_count if gpu_count is not None else (1 if gpu else 0))
        assert offer.vcpus >= (cpus or 0) and offer.memory_gb >= (memory_gb or 0)
        assert spot is None or offer.spot == spot
        assert tiers is None or offer.tier in tiers
        assert 0 <= price <= offer.price_per_hour + 1e-9
        if offer.sharing is Sharing.DEDICATED:
            assert price == offer.price_per_hour


def test_parse_gpu_arg() -> None:
    assert parse_gpu_arg("A100:8") == GpuArg("A100", 8.0)
    assert parse_gpu_arg("a100-80gb") == GpuArg("A100-80GB", 1.0)
    assert parse_gpu_arg(" H100-MEGA:0.5 ") == GpuArg("H100", 0.5)
    with pytest.raises(ValueError, match="did you mean A100"):
        parse_gpu_arg("A1000:8")
    with pytest.raises(ValueError, match="above zero"):
        parse_gpu_arg("A100:0")
    with pytest.raises(ValueError, match="not an amount"):
        parse_gpu_arg("A100:eight")


def test_parse_amount() -> None:
    assert parse_amount("8+") == 8.0 and parse_amount("8") == 8.0 and parse_amount(" 64.5+") == 64.5
    assert parse_amount(16) == 16.0
    for bad in ("lots", "-1", "+"):
        with pytest.raises(ValueError):
            parse_amount(bad)


def test_a_busy_node_charges_each_gpu_its_share_of_the_whole_node() -> None:
    """The last free GPU of an 8-GPU node costs 1/8 of the node's price, not all of it (issue 19)."""
    from clouds.onprem import RayNodesProvider
    from placement.model import Demand

    node = {"NodeID": "n1", "Alive": True, "Labels": {"placement.node": "busy"},
            "Resources": {"GPU": 8.0, "CPU": 64.0, "memory": 512 * 1024 ** 3, "accelerator_type:A100": 1.0}}
    provider = RayNodesProvider(jobs_client=None, list_nodes=lambda: [node])
    idle, = provider.offers({})
    busy, = provider.offers({"busy": (7.0, 56.0, 448.0)})
    assert busy.gpu_count == 1 and busy.vcpus == 8
    one_gpu = Demand(accelerator="A100", accelerator_count=1, cpus=8, memory_gb=64)
    assert busy.job_price_per_hour(one_gpu) == pytest.approx(idle.price_per_hour / 8)
    assert busy.job_price_per_hour(one_gpu) == pytest.approx(idle.job_price_per_hour(one_gpu))
    cpu_only = Demand(cpus=8, memory_gb=16)
    assert busy.job_price_per_hour(cpu_only) == pytest.approx(idle.price_per_hour * 8 / 64)
