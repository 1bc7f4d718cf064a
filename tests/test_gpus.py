"""GPU names as SkyPilot canonicalises them, and facts from the catalogs."""

from __future__ import annotations

import ast
import csv

import pytest

from clouds.gpus import (CATALOG_DIR, COMMON_ACCELERATORS, GPU_MODELS, SKY_ACCELERATORS, canonical_gpu,
                         gpu_sellers, suggest_gpu)
from placement.model import ReasonCode


def test_the_shipped_list_is_skypilots():
    with COMMON_ACCELERATORS.open() as handle:
        names = {row["AcceleratorName"] for row in csv.DictReader(handle)}
    assert names <= set(SKY_ACCELERATORS)
    assert {"A40", "L40", "L40S", "MI300X", "tpu-v6e", "Gaudi HL-205"} <= names


@pytest.mark.parametrize(("given", "canonical"), [
    ("a40", "A40"), ("A40", "A40"), ("L40", "L40"), ("l40s", "L40S"), ("MI300X", "MI300X"),
    ("tpu-v5e-8", "tpu-v5e-8"), ("TPU-V4-8", "tpu-v4-8"), ("Inferentia", "Inferentia"),
    ("a100-80gb", "A100-80GB"), ("A100-40GB", "A100"), ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("H100-MEGA", "H100"), ("RTX A6000", "A6000"), ("V100M32", "V100-32GB"), ("Radeon Pro V520", "Radeon Pro V520"),
])
def test_names_are_canonicalised_as_skypilot_does(given, canonical):
    assert canonical_gpu(given) == canonical


@pytest.mark.parametrize(("typo", "meant"), [("MI300", "MI300X"), ("A1000", "A100"), ("L40SS", "L40S"),
                                             ("H10", "H100")])
def test_did_you_mean_points_at_the_right_gpu(typo, meant):
    assert canonical_gpu(typo) is None
    assert suggest_gpu(typo)[0] == meant


def test_known_names_get_no_other_gpu():
    # A40 is not a misspelt P40, L40 not a misspelt L40S: each is its own GPU.
    assert canonical_gpu("A40") != canonical_gpu("P40")
    assert canonical_gpu("L40") != canonical_gpu("L40S")
    assert GPU_MODELS["L40"].tdp_watts != GPU_MODELS["L40S"].tdp_watts


def test_memory_and_vendor_come_from_the_catalogs():
    said: dict[str, set[float]] = {}
    for path in CATALOG_DIR.glob("*/vms*.csv"):
        for row in csv.DictReader(path.open()):
            name, info = row.get("AcceleratorName"), row.get("GpuInfo") or ""
            if not name or "SizeInMiB" not in info or canonical_gpu(name) != name:
                continue
            gpu = ast.literal_eval(info)["Gpus"][0]
            said.setdefault(name, set()).add(round(gpu["MemoryInfo"]["SizeInMiB"] / 1024, 1))
            if "Manufacturer" in gpu:
                assert GPU_MODELS[name].vendor == gpu["Manufacturer"]
    assert len(said) > 10
    for name, memories in said.items():  # catalogs may disagree (B200: 179.1 or 180 GiB); one of them is taken
        assert GPU_MODELS[name].memory_gb in memories, name
    assert GPU_MODELS["Radeon Pro V520"].vendor == "AMD"


def test_sellers_from_the_catalog():
    assert gpu_sellers("tpu-v5e-8") == ("GCP",)
    assert gpu_sellers("L40") == ("PrimeIntellect", "RunPod")
    assert "AWS" in gpu_sellers("A100") and gpu_sellers("NoSuchGpu") == ()


def _plan_for(accelerators: str):
    from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalog_dir
    from placement.model import Snapshot
    from placement.solve import solve
    from placement.spec import spec_from_data, to_job
    from policies import load_policy

    spec = {"name": "probe", "run": "true", "resources": {"accelerators": accelerators}}
    job = to_job(spec_from_data(spec, "probe.yaml"), "probe")
    return solve(Snapshot(jobs=(job,), offers=load_catalog_dir(SHIPPED_CATALOG_DIR).offers), load_policy("cost-first"))


@pytest.mark.parametrize(("accelerators", "seller"), [("tpu-v5e-8", "sold only by GCP, and no GCP TPU offer"),
                                                      ("L40:1", "PrimeIntellect, RunPod"), ("MI300X:8", "RunPod")])
def test_a_known_gpu_no_offer_sells_is_accepted_and_waits(accelerators, seller):
    plan = _plan_for(accelerators)
    [(job_id, why)] = plan.queued
    assert job_id == "probe" and not plan.placements
    assert why.code is ReasonCode.NO_OFFER_SELLS_GPU and seller in why.message, why


def test_a_gpu_offers_sell_is_placed():
    assert _plan_for("A100:8").placements[0].gpu == "A100"
