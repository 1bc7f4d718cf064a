"""SkyPilot's meaning of a task's resources, as the engine places them: instance types without
accelerators, several counts of one GPU, `ordered:` as a strict order and `any_of` as cost-optimised."""

from __future__ import annotations

import pytest

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalog_dir
from placement.model import Snapshot
from placement.solve import solve
from placement.spec import gpu_choices, spec_from_data, to_job
from policies import load_policy
from tests.solver_fixtures import make_policy, public


def plan_of(resources: dict, offers=None, policy=None):
    spec = {"name": "probe", "run": "true", "resources": resources}
    job = to_job(spec_from_data(spec, "probe.yaml"), "probe")
    offers = load_catalog_dir(SHIPPED_CATALOG_DIR).offers if offers is None else offers
    return job, solve(Snapshot(jobs=(job,), offers=tuple(offers)), policy or load_policy("cost-first"))


@pytest.mark.parametrize(("instance_type", "gpu", "count"), [
    ("p4d.24xlarge", "A100", 8), ("a3-highgpu-8g", "H100", 8), ("p3.2xlarge", "V100", 1)])
def test_an_instance_type_alone_brings_its_gpus(instance_type, gpu, count):
    job, plan = plan_of({"instance_type": instance_type})
    [demand] = job.demands
    assert (demand.accelerator, demand.accelerator_count) == (gpu, count)
    [placed] = plan.placements
    assert (placed.target, placed.gpu, placed.gpus_per_node) == (instance_type, gpu, count)


def test_a_cpu_instance_type_stays_a_cpu_job():
    job, _ = plan_of({"instance_type": "m5.xlarge"})
    assert job.demands[0].accelerator is None


@pytest.mark.parametrize("value", [{"A100:4": None, "A100:8": None, "A100-80GB:2": None},
                                   ["A100:4", "A100:8", "A100-80GB:2"], {"A100:4", "A100:8", "A100-80GB:2"}])
def test_several_counts_of_one_gpu_are_each_an_alternative(value):
    choices, _ = gpu_choices(value)
    assert sorted((c.name, c.count) for c in choices) == [("A100", 4), ("A100", 8), ("A100-80GB", 2)]


def test_ordered_takes_the_second_choice_only_when_the_first_cannot_be_had():
    ordered = {"ordered": [{"accelerators": "H100:8"}, {"accelerators": "A100:8"}]}
    h100, a100 = public("p5", gpu="H100", price=98.0), public("p4d", gpu="A100", price=32.0)
    _, plan = plan_of(ordered, [h100, a100], make_policy())
    assert plan.placements[0].target == "p5"  # three times the price, still the first choice
    _, plan = plan_of(ordered, [a100], make_policy())
    assert plan.placements[0].target == "p4d"  # no H100 anywhere: the second choice


def test_any_of_stays_cost_optimised():
    any_of = {"any_of": [{"accelerators": "H100:8"}, {"accelerators": "A100:8"}]}
    _, plan = plan_of(any_of, [public("p5", gpu="H100", price=98.0), public("p4d", gpu="A100", price=32.0)],
                      make_policy())
    assert plan.placements[0].target == "p4d"

