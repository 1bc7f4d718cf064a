"""SkyPilot catalogs -> public offers: the shipped snapshots, their source errors, and bad files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clouds import energy
from clouds.catalog import (SHIPPED_CATALOG_DIR, CatalogLoad, default_catalog_dirs, load_catalog_dir,
                            load_catalogs, skypilot_catalog_dir)
from placement.model import Sharing, Tier

HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone"


@pytest.fixture(scope="module")
def shipped() -> CatalogLoad:
    return load_catalog_dir(SHIPPED_CATALOG_DIR)


@pytest.fixture(scope="module")
def by_id(shipped: CatalogLoad) -> dict:
    return {o.id: o for o in shipped.offers}


def warning(load: CatalogLoad, *parts: str) -> str:
    found = [w for w in load.warnings if all(p in w for p in parts)]
    assert len(found) == 1, (parts, load.warnings)
    return found[0]


def write_catalog(root: Path, cloud: str, rows: list[str], header: str = HEADER, name: str = "vms.csv") -> Path:
    (root / cloud).mkdir(parents=True, exist_ok=True)
    (root / cloud / name).write_text("\n".join([header, *rows]) + "\n")
    return root


# --- the shipped snapshots --------------------------------------------------------------


def test_shipped_catalogs_give_public_dedicated_unbounded_offers(shipped: CatalogLoad) -> None:
    assert len(shipped.offers) >= 600
    assert {o.cloud for o in shipped.offers} == {"aws", "gcp", "azure", "lambda"}
    assert all(o.tier is Tier.PUBLIC and o.sharing is Sharing.DEDICATED and o.capacity is None
               for o in shipped.offers)
    assert len({o.id for o in shipped.offers}) == len(shipped.offers)
    assert all(o.price_per_hour > 0 for o in shipped.offers)


def test_parsing_every_shipped_catalog_is_fast() -> None:
    start = time.perf_counter()
    load_catalog_dir(SHIPPED_CATALOG_DIR)
    assert time.perf_counter() - start < 1.0


def test_spot_and_on_demand_offers_from_one_row(by_id: dict) -> None:
    on_demand = by_id["aws/us-east-1/use1-az1/p4d.24xlarge/on-demand"]
    spot = by_id["aws/us-east-1/use1-az1/p4d.24xlarge/spot"]
    assert (on_demand.spot, on_demand.price_per_hour) == (False, 21.957642)
    assert (spot.spot, spot.price_per_hour) == (True, 2.4655)
    assert (spot.gpu, spot.gpu_count, spot.gpu_memory_gb, spot.vcpus, spot.memory_gb) == ("A100", 8, 40, 96, 1152)
    assert spot.zone == "use1-az1" and spot.region == "us-east-1"
    # An empty SpotPrice is no spot market, not an error.
    assert "aws/us-east-1/use1-az1/p5.4xlarge/on-demand" in by_id
    assert "aws/us-east-1/use1-az1/p5.4xlarge/spot" not in by_id


def test_lambda_has_no_spot_market_and_no_zones(shipped: CatalogLoad, by_id: dict) -> None:
    lam = [o for o in shipped.offers if o.cloud == "lambda"]
    assert len(lam) == 48 and not any(o.spot for o in lam)
    assert by_id["lambda/us-east-1/gpu_8x_h100_sxm5/on-demand"].price_per_hour == 31.92


def test_aws_p5e_without_on_demand_price_keeps_spot(shipped: CatalogLoad, by_id: dict) -> None:
    assert by_id["aws/us-west-2/usw2-az3/p5e.48xlarge/spot"].price_per_hour == 19.5387
    assert "aws/us-west-2/usw2-az3/p5e.48xlarge/on-demand" not in by_id
    text = warning(shipped, "p5e.48xlarge", "no on-demand price")
    assert text.startswith("catalogs/aws/vms.csv:16:")


def test_aws_spot_equal_to_on_demand_is_kept_and_noted(shipped: CatalogLoad, by_id: dict) -> None:
    for market in ("spot", "on-demand"):
        assert by_id[f"aws/us-east-1/use1-az1/p5.48xlarge/{market}"].price_per_hour == 55.04
    text = warning(shipped, "p5.48xlarge", "spot price equals on-demand")
    assert "use1-az1" in text and "use1-az4" in text


def test_azure_nd96isr_h100_v5_has_8_gpus_not_12(shipped: CatalogLoad, by_id: dict) -> None:
    offer = by_id["azure/eastus/Standard_ND96isr_H100_v5/on-demand"]
    assert (offer.gpu, offer.gpu_count) == ("H100", 8)
    assert "catalog says 12 H100 GPUs, the instance has 8; fixed" in warning(shipped, "ND96isr_H100_v5", "fixed")


def test_azure_rows_without_any_price_are_skipped(shipped: CatalogLoad) -> None:
    assert not [o for o in shipped.offers if o.name == "Standard_ND40s_v3"]
    assert "(eastus)" in warning(shipped, "Standard_ND40s_v3", "no price; skipped")
    # The same size with prices in another region stays.
    assert [o.region for o in shipped.offers if o.name == "Standard_NC8ads_A10_v4"] == ["westus3", "westus3"]


def test_gcp_host_plus_gpu_prices_checked_by_hand(by_id: dict) -> None:
    a2 = by_id["gcp/us-central1/us-central1-a/a2-highgpu-1g/on-demand"]
    assert a2.price_per_hour == pytest.approx(0.73948 + 2.93391)
    assert by_id["gcp/us-central1/us-central1-a/a2-highgpu-1g/spot"].price_per_hour == pytest.approx(0.36975 + 1.4341)
    assert (a2.gpu, a2.gpu_count, a2.gpu_memory_gb, a2.vcpus, a2.memory_gb) == ("A100", 1, 40, 12, 85)

    t4 = by_id["gcp/us-central1/us-central1-a/n1-standard-8+T4:1/on-demand"]
    assert (t4.name, t4.gpu, t4.gpu_count, t4.vcpus) == ("n1-standard-8", "T4", 1, 8)
    assert t4.price_per_hour == pytest.approx(0.38 + 0.35)
    t4_spot = by_id["gcp/us-central1/us-central1-a/n1-standard-8+T4:1/spot"]
    assert t4_spot.price_per_hour == pytest.approx(0.10446 + 0.175)
    # The N1 host alone is still a CPU offer.
    assert by_id["gcp/us-central1/us-central1-a/n1-standard-8/on-demand"].gpu is None


def test_gcp_n1_attachment_follows_skypilot_host_limits(by_id: dict) -> None:
    # T4:1 attaches to hosts of at most 48 vCPUs; T4:4 to hosts of up to 96.
    assert "gcp/us-central1/us-central1-a/n1-standard-64+T4:1/on-demand" not in by_id
    assert by_id["gcp/us-central1/us-central1-a/n1-standard-64+T4:4/on-demand"].price_per_hour == pytest.approx(
        3.03998 + 1.4)
    assert "gcp/us-central1/us-central1-a/n1-standard-96+V100:8/on-demand" in by_id
    assert "gcp/us-central1/us-central1-a/n1-standard-96+V100:4/on-demand" not in by_id


def test_gcp_fixed_gpu_machine_types(by_id: dict) -> None:
    mega = by_id["gcp/us-central1/us-central1-a/a3-megagpu-8g/on-demand"]
    assert (mega.gpu, mega.gpu_count) == ("H100", 8)
    assert ("accelerator", "H100-MEGA") in mega.labels  # what SkyPilot must be asked for
    assert mega.price_per_hour == pytest.approx(9.46006 + 82.75421)
    g2 = by_id["gcp/us-east4/us-east4-a/g2-standard-24/on-demand"]
    assert (g2.gpu, g2.gpu_count, g2.gpu_memory_gb) == ("L4", 2, 24)
    assert by_id["gcp/us-central1/us-central1-f/a2-megagpu-16g/on-demand"].gpu_count == 16
    assert by_id["gcp/us-east4/us-east4-c/a2-ultragpu-1g/on-demand"].gpu == "A100-80GB"


def test_gcp_a4_host_price_zero_is_priced_from_the_gpu_row(shipped: CatalogLoad, by_id: dict) -> None:
    b200 = by_id["gcp/us-central1/us-central1-b/a4-highgpu-8g/on-demand"]
    assert (b200.gpu, b200.gpu_count, b200.price_per_hour) == ("B200", 8, 90.216)
    assert by_id["gcp/us-central1/us-central1-b/a4-highgpu-8g/spot"].price_per_hour == 32.6064
    assert "a lower bound" in warning(shipped, "a4-highgpu-8g", "host price 0.0")


def test_gcp_h200_europe_on_demand_below_spot_keeps_both(shipped: CatalogLoad, by_id: dict) -> None:
    assert "europe-west4-a" in warning(shipped, "H200:8", "spot price above on-demand")
    base = "gcp/europe-west4/europe-west4-a/a3-ultragpu-8g"
    assert by_id[f"{base}/on-demand"].price_per_hour == pytest.approx(12.8793 + 36.60258)
    assert by_id[f"{base}/spot"].price_per_hour == pytest.approx(2.94949 + 39.1096)


def test_gcp_gpu_machine_types_skypilot_cannot_launch_are_skipped(shipped: CatalogLoad) -> None:
    assert not [o for o in shipped.offers if o.name.startswith("a3-edgegpu")]
    warning(shipped, "a3-edgegpu-8g:", "does not map to a GPU")


def test_gpu_names_are_canonical_across_clouds(by_id: dict) -> None:
    a100_80 = ["aws/us-east-1/use1-az4/p4de.24xlarge/on-demand", "azure/eastus/Standard_NC24ads_A100_v4/on-demand",
               "gcp/us-central1/us-central1-a/a2-ultragpu-8g/on-demand",
               "lambda/us-east-1/gpu_8x_a100_80gb_sxm4/on-demand"]
    assert {(by_id[i].gpu, by_id[i].gpu_memory_gb) for i in a100_80} == {("A100-80GB", 80)}
    # AWS names the p3dn GPU 'V100' in GpuInfo; the catalog's AcceleratorName (V100-32GB) wins.
    assert by_id["aws/us-east-1/use1-az1/p3dn.24xlarge/on-demand"].gpu == "V100-32GB"
    assert by_id["azure/eastus/Standard_NC6s_v3/on-demand"].gpu == "V100"
    assert by_id["lambda/us-east-1/gpu_1x_a6000/on-demand"].gpu == "A6000"


def test_gpu_memory_per_gpu(by_id: dict) -> None:
    # Lambda's TotalGpuMemoryInMiB is per GPU (16 GiB for 8 V100s): SizeInMiB must win.
    assert by_id["lambda/us-east-1/gpu_8x_v100/on-demand"].gpu_memory_gb == 16
    assert by_id["aws/us-west-2/usw2-az2/p6-b300.48xlarge/on-demand"].gpu_memory_gb == pytest.approx(268.6)
    # Azure's GpuInfo is only a name: memory from the GPU table.
    assert by_id["azure/westus2/Standard_NC6/on-demand"].gpu_memory_gb == 12


def test_old_v4_format_without_arch_and_with_zone_names(by_id: dict) -> None:
    g4dn = by_id["aws/us-east-1/us-east-1a/g4dn.xlarge/on-demand"]
    assert (g4dn.gpu, g4dn.gpu_count, g4dn.zone) == ("T4", 1, "us-east-1a")
    assert not any(k == "arch" for k, _ in g4dn.labels)
    assert ("arch", "x86_64") in by_id["aws/us-east-1/use1-az1/p4d.24xlarge/on-demand"].labels
    assert by_id["aws/us-east-1/us-east-1a/g5g.xlarge/on-demand"].gpu == "T4g"


def test_carbon_and_power_facts(by_id: dict) -> None:
    assert by_id["aws/us-east-1/use1-az1/p4d.24xlarge/spot"].gco2_per_kwh == 415.755
    assert by_id["gcp/europe-west4/europe-west4-a/a2-highgpu-1g/spot"].gco2_per_kwh == 474.0
    # CCF spells Azure regions 'West US 3'; SkyPilot 'westus3'.
    assert by_id["azure/westus3/Standard_NC8ads_A10_v4/on-demand"].gco2_per_kwh == 350.861
    lam = by_id["lambda/us-east-1/gpu_1x_a10/on-demand"]
    assert lam.gco2_per_kwh == energy.grid_intensity("lambda", "us-east-1").gco2_per_kwh
    assert energy.grid_intensity("lambda", "us-east-1").basis == "dataset median"
    assert by_id["aws/us-east-1/use1-az1/p5.48xlarge/spot"].gpu_watts == 700
    assert by_id["gcp/us-central1/us-central1-a/n1-standard-8/on-demand"].gpu_watts is None


def test_every_shipped_warning_is_a_known_source_error(shipped: CatalogLoad) -> None:
    expected = ["p5e.48xlarge: no on-demand price", "p5.48xlarge: spot price equals on-demand",
                "Standard_NC16ads_A10_v4: no price", "Standard_NC32ads_A10_v4: no price",
                "Standard_NC8ads_A10_v4: no price", "Standard_ND40s_v3: no price",
                "Standard_NC40ads_H100_v5: spot price equals", "Standard_NC80adis_H100_v5: spot price equals",
                "Standard_ND96isr_H100_v5: spot price equals", "Standard_ND96isr_H100_v5: catalog says 12",
                "a3-edgegpu-8g: GPU machine type", "a3-edgegpu-8g-nolssd: GPU machine type",
                "a3-ultragpu-8g-nolssd: GPU machine type", "a4-highgpu-8g: host price 0.0",
                "A100-80GB:1: spot price above", "A100-80GB:2: spot price above", "A100-80GB:4: spot price above",
                "A100-80GB:8: spot price above", "H200:8: spot price above"]
    assert len(shipped.warnings) == len(expected)
    for part in expected:
        assert any(part in w for w in shipped.warnings), part


# --- errors a catalog may have ------------------------------------------------------------


def test_bad_rows_warn_and_never_crash(tmp_path: Path) -> None:
    write_catalog(tmp_path, "aws", [
        "ok.xlarge,,,4,16,,1.0,0.3,us-east-1,use1-az1",                 # line 2
        "badprice.xlarge,,,4,16,,abc,0.3,us-east-1,use1-az1",           # 3: spot kept
        "short.xlarge,,,4,16",                                          # 4: wrong field count
        "nocpu.xlarge,,,,16,,1.0,,us-east-1,use1-az1",                  # 5: no vCPUs
        "zero.xlarge,T4,0,4,16,,1.0,,us-east-1,use1-az1",               # 6: zero GPUs
        "half.xlarge,T4,0.5,4,16,,1.0,,us-east-1,use1-az1",             # 7: T4 is not sold in slices
        "slice.xlarge,A10,0.5,4,16,,1.0,,us-east-1,use1-az1",           # 8: A10 is
        "huge.xlarge,H100,32,4,16,,1.0,,us-east-1,use1-az1",            # 9: over 16
        "inf.xlarge,Inferentia,1,4,16,,1.0,,us-east-1,use1-az1",        # 10: unknown accelerator
        "spotty.xlarge,,,4,16,,1.0,2.0,us-east-1,use1-az1",             # 11: spot above on-demand
        "free.xlarge,,,4,16,,0.0,0.1,us-east-1,use1-az1",               # 12: zero on-demand
        "ok.xlarge,,,4,16,,1.0,0.3,us-east-1,use1-az1",                 # 13: duplicate
        "noregion.xlarge,,,4,16,,1.0,0.3,,",                            # 14: no region
        'info.xlarge,T4,1,4,16,"{\'Gpus\': [",1.0,,us-east-1,use1-az1',  # 15: broken GpuInfo
        ",,,4,16,,1.0,,us-east-1,use1-az1",                             # 16: no instance type
    ])
    load = load_catalog_dir(tmp_path)
    ids = {o.id for o in load.offers}
    assert ids == {"aws/us-east-1/use1-az1/ok.xlarge/on-demand", "aws/us-east-1/use1-az1/ok.xlarge/spot",
                   "aws/us-east-1/use1-az1/badprice.xlarge/spot",
                   "aws/us-east-1/use1-az1/slice.xlarge/on-demand",
                   "aws/us-east-1/use1-az1/spotty.xlarge/on-demand", "aws/us-east-1/use1-az1/spotty.xlarge/spot",
                   "aws/us-east-1/use1-az1/free.xlarge/spot", "aws/us-east-1/use1-az1/info.xlarge/on-demand"}
    for line, part in [(3, "Price 'abc' is not a number; treated as absent"), (3, "no on-demand price"),
                       (4, "wrong number of fields"), (5, "vCPUs empty; row skipped"),
                       (6, "impossible GPU count 0"), (7, "impossible GPU count 0.5"),
                       (9, "impossible GPU count 32"), (10, "unknown accelerator 'Inferentia'"),
                       (11, "spot price above on-demand"), (12, "on-demand price 0.0 is not a price"),
                       (13, "duplicate offer"), (14, "Region empty; row skipped"),
                       (15, "GpuInfo has no readable GPU memory"), (16, "InstanceType empty; row skipped")]:
        assert any(w.startswith(f"{tmp_path.name}/aws/vms.csv:{line}") and part in w for w in load.warnings), part
    info = next(o for o in load.offers if o.name == "info.xlarge")
    assert info.gpu_memory_gb == 16  # from the GPU table
    assert next(o for o in load.offers if o.name == "slice.xlarge").gpu_count == 0.5


def test_gpu_count_fixed_from_the_instance_name(tmp_path: Path) -> None:
    write_catalog(tmp_path, "lambda", ["gpu_8x_h100_sxm5,H100,4.0,208,1800,1.0,us-east-1,,"],
                  header="InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice")
    load = load_catalog_dir(tmp_path)
    assert [o.gpu_count for o in load.offers] == [8]
    assert "catalog says 4.0 H100 GPUs, the instance has 8; fixed" in load.warnings[0]


def test_missing_columns_skip_the_file(tmp_path: Path) -> None:
    write_catalog(tmp_path, "aws", ["x,1.0"], header="InstanceType,Price")
    load = load_catalog_dir(tmp_path)
    assert load.offers == []
    assert "missing columns AcceleratorName" in load.warnings[0]


def test_gcp_gpu_row_without_a_host_in_its_zone(tmp_path: Path) -> None:
    header = ("InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,"
              "Price,SpotPrice")
    write_catalog(tmp_path, "gcp", [
        "n1-standard-8,8,30,,,,us-central1,us-central1-a,0.38,0.1",
        ",,,T4,1,,us-central1,us-central1-b,0.35,0.175",      # host only in zone a
        ",,,T4,8,,us-central1,us-central1-a,2.8,1.4",         # T4 does not come in eights on GCP
        ",,,tpu-v4-8,1,,us-central1,us-central1-a,2.8,1.4",   # not a GPU
        "a2-highgpu-1g,12,85,,,,us-central1,us-central1-a,0.7,0.3",  # no A100 row in its zone
    ], header=header)
    load = load_catalog_dir(tmp_path)
    assert [o.id for o in load.offers] == ["gcp/us-central1/us-central1-a/n1-standard-8/on-demand",
                                           "gcp/us-central1/us-central1-a/n1-standard-8/spot"]
    for part in ["T4:1: no N1 host it attaches to", "T4:8: not attachable to N1 hosts in this count",
                 "tpu-v4-8:1: unknown accelerator", "a2-highgpu-1g: no A100:1 price row in the zone"]:
        assert any(part in w for w in load.warnings), part


# --- which catalog directory wins -------------------------------------------------------


def test_first_directory_with_a_cloud_wins(tmp_path: Path) -> None:
    fresh = write_catalog(tmp_path / "fresh", "aws", ["c.xlarge,,,4,16,,9.0,,us-east-1,use1-az1"])
    load = load_catalogs([fresh, SHIPPED_CATALOG_DIR])
    aws = [o for o in load.offers if o.cloud == "aws"]
    assert [o.price_per_hour for o in aws] == [9.0]  # the shipped AWS files (both) are not mixed in
    assert {o.cloud for o in load.offers} == {"aws", "gcp", "azure", "lambda"}


def test_missing_directory_is_a_warning(tmp_path: Path) -> None:
    load = load_catalogs([tmp_path / "nowhere"])
    assert load.offers == [] and "not found" in load.warnings[0]


def test_default_dirs_put_skypilots_own_catalog_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path))
    assert skypilot_catalog_dir() == tmp_path / ".sky" / "catalogs" / "v8"
    assert default_catalog_dirs() == [SHIPPED_CATALOG_DIR]
    skypilot_catalog_dir().mkdir(parents=True)
    assert default_catalog_dirs() == [tmp_path / ".sky" / "catalogs" / "v8", SHIPPED_CATALOG_DIR]
    monkeypatch.delenv("SKY_RUNTIME_DIR")
    assert skypilot_catalog_dir() == Path.home() / ".sky" / "catalogs" / "v8"
