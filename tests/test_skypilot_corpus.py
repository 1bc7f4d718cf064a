"""The corpus in tests/skypilot_yamls: SkyPilot 0.14.1 itself is the oracle, asked in this process.

For each file: what SkyPilot says (`dag_utils.load_dag_from_yaml`, as `sky launch` reads a file: a task, a
pipeline or a job group), what the engine says, and what the engine reads (GPU alternatives with counts and
ranks, instance type, pipeline edges, job groups, envs left unset). Where SkyPilot accepts, the engine accepts
and reads the same accelerators SkyPilot parsed; where SkyPilot rejects, the engine rejects with file:line.
Every accepted task, placed, is rebuilt as a `sky.Task` pinned to its placement (the round trip).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalog_dir
from clouds.gpus import canonical_gpu
from clouds.sky_tasks import build_task
from placement.model import Snapshot, Tier
from placement.solve import solve
from placement.spec import check_envs_set, load_specs, to_jobs, unset_envs
from placement.yamlio import ConfigError
from policies import load_policy

CORPUS = Path(__file__).resolve().parent / "skypilot_yamls"

# file -> what the engine reads, per job: (id, [(gpu, count, rank)], instance type, after, group, unset envs).
# None: the file is rejected (by SkyPilot and the engine alike, unless DIVERGES says otherwise).
READS: dict[str, list[tuple] | None] = {
    "minimal.yaml": [("minimal", [(None, 0, 0)], None, None, None, [])],
    "gpu_a40.yaml": [("finetune-a40", [("A40", 1, 0)], None, None, None, [])],
    "gpu_l40.yaml": [("render-l40", [("L40", 4, 0)], None, None, None, [])],
    "gpu_l40s_lowercase.yaml": [("gpu-l40s-lowercase", [("L40S", 1, 0)], None, None, None, [])],
    "gpu_mi300x.yaml": [("rocm-inference", [("MI300X", 8, 0)], None, None, None, [])],
    "tpu_v5e.yaml": [("tpu-train", [("tpu-v5e-8", 1, 0)], None, None, None, [])],
    "gpu_unknown.yaml": None,
    "instance_type_p4d.yaml": [("p4d-train", [("A100", 8, 0)], "p4d.24xlarge", None, None, [])],
    "instance_type_a3.yaml": [("a3-train", [("H100", 8, 0)], "a3-highgpu-8g", None, None, [])],
    "instance_type_p3.yaml": [("instance-type-p3", [("V100", 1, 0)], "p3.2xlarge", None, None, [])],
    "instance_type_cpu.yaml": [("instance-type-cpu", [(None, 0, 0)], "m6i.2xlarge", None, None, [])],
    "pipeline.yaml": [("train", [("A100", 8, 0)], None, None, None, []),
                      ("eval", [("T4", 1, 0)], None, "train", None, [])],
    "pipeline_no_header.yaml": [("preprocess", [(None, 0, 0)], None, None, None, []),
                                ("train", [("L4", 1, 0)], None, "preprocess", None, []),
                                ("publish", [(None, 0, 0)], None, "train", None, [])],
    "pipeline_bad_execution.yaml": None,
    "job_group.yaml": [("trainer", [("H100", 8, 0)], None, None, "trainer", []),
                       ("replay-buffer", [(None, 0, 0)], None, None, "trainer", [])],
    "job_group_unknown_primary.yaml": None,
    "multi_count_mapping.yaml": [("multi-count-mapping", [("A100", 4, 0), ("A100", 8, 0), ("A100-80GB", 2, 0)],
                                  None, None, None, [])],
    "accelerator_list.yaml": [("accelerator-list", [("H100", 8, 0), ("A100-80GB", 8, 1), ("A100", 8, 2)],
                               None, None, None, [])],
    "accelerator_list_of_dicts.yaml": None,
    "ordered.yaml": [("ordered", [("H100", 8, 0), ("A100-80GB", 8, 1), ("A100", 8, 2)], None, None, None, [])],
    "any_of.yaml": [("any-of", [("A100", 8, 0), ("H100", 8, 0)], None, None, None, [])],
    "env_store.yaml": [("env-store", [(None, 0, 0)], None, None, None, [])],
    "env_unset.yaml": [("env-unset", [("L4", 1, 0)], None, None, None, ["HF_TOKEN"])],
    "secrets.yaml": [("secrets", [("A10G", 1, 0)], None, None, None, [])],
    "service_autoscale.yaml": [("service-autoscale-replica-1", [("L4", 1, 0)], None, None, None, [])],
    "service_no_target.yaml": None,
    "unknown_field.yaml": None,
    "multinode.yaml": [("ddp", [("V100", 4, 0)], None, None, None, [])],
}

# Where the engine's verdict differs from SkyPilot's on purpose, and why.
DIVERGES = {
    # SkyPilot keeps a name it cannot canonicalise (a Kubernetes cluster may define it) and fails only when
    # it optimises; no catalog lists it, so the engine could never place it, and says so at once.
    "gpu_unknown.yaml": "the engine rejects a GPU name no SkyPilot catalog lists, with a did-you-mean",
    # SkyPilot refuses a null env until `--env` gives it; the engine reads it, and `submit` refuses it.
    "env_unset.yaml": "accepted by validate/plan; submit refuses it until --env gives HF_TOKEN",
}


def corpus_files() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.yaml"))


def sky_dag(path: Path, env: list[tuple[str, str]] | None = None):
    from sky.utils import dag_utils

    return dag_utils.load_dag_from_yaml(str(path), env_overrides=env)


def sky_verdict(path: Path) -> bool:
    try:
        sky_dag(path)
    except Exception:  # SkyPilot raises ValueError, its own exceptions, jsonschema errors ...
        return False
    return True


def test_every_file_has_an_expectation():
    assert corpus_files() == sorted(READS)
    assert len(READS) >= 25


@pytest.mark.parametrize("name", corpus_files())
def test_engine_and_skypilot_agree(name):
    path = CORPUS / name
    expected = READS[name]
    sky_accepts = sky_verdict(path)
    if name not in DIVERGES:
        assert sky_accepts is (expected is not None), f"SkyPilot {'accepts' if sky_accepts else 'rejects'} {name}"
    if expected is None:
        with pytest.raises(ConfigError) as caught:
            load_specs([path])
        for error in caught.value.errors:
            assert error.file == str(path) and error.line is not None, str(error)
        return
    loaded = load_specs([path])
    jobs = to_jobs(loaded)
    reads = [(j.id, sorted(((d.accelerator, d.accelerator_count, d.rank) for d in j.demands), key=str),
              j.demands[0].instance_type, j.after, j.group, unset_envs(item.spec))
             for j, item in zip(jobs, loaded)]
    assert reads == [(i, sorted(g, key=str), t, a, grp, u) for i, g, t, a, grp, u in expected]


@pytest.mark.parametrize("name", [n for n, r in READS.items() if r is not None and n not in DIVERGES])
def test_the_engine_reads_the_accelerators_skypilot_parsed(name):
    path = CORPUS / name
    tasks = sky_dag(path).tasks
    loaded = load_specs([path])
    assert len(tasks) == len(loaded)
    for task, item in zip(tasks, loaded):
        theirs = set()
        for resources in task.resources:
            for gpu, count in (resources.accelerators or {}).items():
                theirs.add((canonical_gpu(gpu), float(count)))
        [job, *_] = to_jobs([item])
        ours = {(d.accelerator, d.accelerator_count) for d in job.demands if d.accelerator}
        if task.resources and all(r.instance_type and not r.accelerators for r in task.resources):
            continue  # SkyPilot fills an instance type's accelerators when it optimises: checked in READS
        assert ours == theirs, name


def test_an_env_left_unset_is_skypilots_error_until_given():
    path = CORPUS / "env_unset.yaml"
    assert not sky_verdict(path)
    sky_dag(path, env=[("HF_TOKEN", "hf_x")])
    with pytest.raises(ConfigError, match="envs.HF_TOKEN: has no value"):
        check_envs_set(load_specs([path]))
    check_envs_set(load_specs([path], env={"HF_TOKEN": "hf_x"}))


@pytest.fixture(scope="module")
def offers():
    return tuple(load_catalog_dir(SHIPPED_CATALOG_DIR).offers)


@pytest.mark.parametrize("name", [n for n, r in READS.items() if r is not None])
def test_every_accepted_task_round_trips_through_skypilot(name, offers):
    import sky

    loaded = load_specs([CORPUS / name], env={"HF_TOKEN": "hf_x"})
    jobs = to_jobs(loaded)
    by_id = {o.id: o for o in offers}
    plan = solve(Snapshot(jobs=tuple(jobs), offers=offers), load_policy("cost-first"))
    for job, item in zip(jobs, loaded):
        placed = plan.placement_of(job.id)
        if placed is None:  # no shipped offer sells it (A40, L40, MI300X, TPUs): SkyPilot reads it as written
            sky.Task.from_yaml_config(copy.deepcopy(item.spec.sky_config()))
            continue
        assert placed.tier is Tier.PUBLIC
        task = build_task(copy.deepcopy(item.data), placed, by_id[placed.offer_id])
        [resources] = list(task.resources)
        assert resources.instance_type == by_id[placed.offer_id].name


def plan_json(*names: str) -> dict:
    from placement.cli import app

    result = CliRunner().invoke(app, ["plan", "--json", *(str(CORPUS / n) for n in names)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(("name", "target", "gpu"), [
    ("instance_type_p4d.yaml", "p4d.24xlarge", "A100"), ("instance_type_a3.yaml", "a3-highgpu-8g", "H100"),
    ("instance_type_p3.yaml", "p3.2xlarge", "V100")])
def test_plan_puts_an_instance_type_on_that_instance(name, target, gpu):
    [placed] = plan_json(name)["placements"]
    assert (placed["target"], placed["gpu"]) == (target, gpu)


def test_plan_runs_a_pipelines_first_task_and_holds_the_rest():
    plan = plan_json("pipeline.yaml")
    assert [p["job"] for p in plan["placements"]] == ["train"]
    assert [(q["job"], q["reason"]) for q in plan["queued"]] == [("eval", "WaitingForPredecessor")]


def test_plan_starts_a_job_group_together():
    plan = plan_json("job_group.yaml")
    assert sorted(p["job"] for p in plan["placements"]) == ["replay-buffer", "trainer"] and not plan["queued"]


def test_plan_takes_the_first_ordered_choice():
    [placed] = plan_json("ordered.yaml")["placements"]
    assert placed["gpu"] == "H100"  # not the cheaper A100s below it
