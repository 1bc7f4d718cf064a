"""SkyPilot's meaning of a task's resources, as the engine places them: instance types without
accelerators, several counts of one GPU, `ordered:` as a strict order and `any_of` as cost-optimised."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalog_dir
from placement.model import Snapshot
from placement.solve import solve
from placement.spec import gpu_choices, load_specs, spec_from_data, to_job, to_jobs, unset_envs
from placement.yamlio import ConfigError
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



# --- pipelines and job groups --------------------------------------------------------------------------

PIPELINE = """\
name: pipe
---
name: train
resources: {accelerators: A100:8}
run: python train.py
---
name: eval
resources: {accelerators: L4:1}
run: python eval.py
---
name: report
run: python report.py
"""

GROUP = """\
name: rl
execution: parallel
primary_tasks: [trainer]
---
name: trainer
resources: {accelerators: H100:8}
run: python train.py
---
name: replay-buffer
resources: {cpus: 8}
run: python buffer.py
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_pipeline_header_names_it_and_each_task_follows_the_one_before(tmp_path):
    loaded = load_specs([write(tmp_path, "p.yaml", PIPELINE)])
    assert [(s.spec.name, s.pipeline, s.document, s.after) for s in loaded] == [
        ("train", "pipe", 2, None), ("eval", "pipe", 3, 2), ("report", "pipe", 4, 3)]
    assert [(j.id, j.after) for j in to_jobs(loaded)] == [("train", None), ("eval", "train"), ("report", "eval")]


def test_documents_without_a_header_are_a_pipeline_too(tmp_path):
    loaded = load_specs([write(tmp_path, "p.yaml", "name: a\nrun: x\n---\nname: b\nrun: y\n")])
    assert [(j.id, j.after) for j in to_jobs(loaded)] == [("a", None), ("b", "a")]


def test_a_job_group_shares_a_group_and_no_order(tmp_path):
    jobs = to_jobs(load_specs([write(tmp_path, "g.yaml", GROUP)]))
    assert [(j.id, j.after, j.group) for j in jobs] == [("trainer", None, "trainer"), ("replay-buffer", None, "trainer")]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("name: p\nexecution: parallel\nprimary_tasks: [trainr]\n---\nname: trainer\n", 3, "no job of the group"),
    ("name: p\nexecution: parallel\n---\nrun: x\n", 4, "needs a name"),
    ("name: p\nexecution: parallel\n---\nname: a\n---\nname: a\n", 6, "two jobs of the group"),
    ("name: p\nexecution: parallel\n", 1, "at least one job"),
    ("name: 'p q'\nexecution: parallel\n---\nname: a\n", 1, "name"),
    ("name: p\nexecution: sideways\n---\nname: a\n", 2, "execution"),
])
def test_bad_job_groups_and_pipelines_are_refused_with_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, "g.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_specs([path])
    [error] = caught.value.errors
    assert (error.file, error.line) == (str(path), line) and words in str(error), str(error)


def plan_files(*paths):
    from placement.cli import app

    result = CliRunner().invoke(app, ["plan", "--json", *map(str, paths)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_places_a_pipelines_first_task_only(tmp_path):
    plan = plan_files(write(tmp_path, "p.yaml", PIPELINE))
    assert [p["job"] for p in plan["placements"]] == ["train"]
    assert {q["job"]: (q["reason"], q["scope"]) for q in plan["queued"]} == {
        "eval": ("WaitingForPredecessor", "train"), "report": ("WaitingForPredecessor", "eval")}


def test_plan_places_a_job_group_together(tmp_path):
    plan = plan_files(write(tmp_path, "g.yaml", GROUP))
    assert sorted(p["job"] for p in plan["placements"]) == ["replay-buffer", "trainer"]
    # One job that cannot be placed holds the whole group back.
    plan = plan_files(write(tmp_path, "g.yaml", GROUP.replace("H100:8", "tpu-v5e-8")))
    assert plan["placements"] == []
    assert {q["job"]: q["reason"] for q in plan["queued"]} == {"trainer": "NoOfferSellsGpu",
                                                              "replay-buffer": "WaitingForGroup"}


# --- envs: $VAR substitution, values from the command line, SkyServe's checks -------------------------

ENVS = """\
envs:
  DATA_BUCKET_NAME: my-bucket
  DATA_BUCKET_STORE_TYPE: s3
  HF_TOKEN:
file_mounts:
  /data:
    name: $DATA_BUCKET_NAME
    store: ${DATA_BUCKET_STORE_TYPE}
    mode: MOUNT
run: echo
"""


def test_envs_are_substituted_where_skypilot_substitutes_them(tmp_path):
    [loaded] = load_specs([write(tmp_path, "e.yaml", ENVS)])
    mount = loaded.spec.file_mounts["/data"]
    assert (mount.name, mount.store) == ("my-bucket", "s3")
    assert loaded.data["file_mounts"]["/data"]["store"] == "${DATA_BUCKET_STORE_TYPE}"  # stored as written


def test_an_unknown_variable_is_left_as_written_and_then_checked(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_specs([write(tmp_path, "e.yaml", ENVS.replace("${DATA_BUCKET_STORE_TYPE}", "$NOT_AN_ENV"))])
    [error] = caught.value.errors
    assert error.line == 8 and "$NOT_AN_ENV" in str(error)


def test_env_values_from_the_command_line_fill_the_envs(tmp_path):
    path = write(tmp_path, "e.yaml", ENVS)
    assert unset_envs(load_specs([path])[0].spec) == ["HF_TOKEN"]
    [loaded] = load_specs([path], env={"HF_TOKEN": "hf_x", "DATA_BUCKET_STORE_TYPE": "gcs"})
    assert unset_envs(loaded.spec) == [] and loaded.data["envs"]["HF_TOKEN"] == "hf_x"
    assert loaded.spec.file_mounts["/data"].store == "gcs"


def test_submit_names_each_env_still_unset_and_validate_only_notes_it(tmp_path):
    from placement.cli import app

    path = write(tmp_path, "e.yaml", ENVS.replace("  HF_TOKEN:\n", "  HF_TOKEN:\n  WANDB_KEY:\n"))
    result = CliRunner().invoke(app, ["submit", str(path), "--address", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert f"{path}:4: envs.HF_TOKEN: has no value" in result.output
    assert f"{path}:5: envs.WANDB_KEY: has no value" in result.output
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "HF_TOKEN, WANDB_KEY" in result.output
    (tmp_path / ".env").write_text("HF_TOKEN=hf_x\n")
    result = CliRunner().invoke(app, ["submit", str(path), "--env-file", str(tmp_path / ".env"), "--address",
                                      "127.0.0.1:1"])
    assert "HF_TOKEN" not in result.output and f"{path}:5: envs.WANDB_KEY" in result.output


def test_the_service_refuses_a_spec_with_an_env_unset(tmp_path):
    from placement.service import Engine, ServiceConfig

    eng = Engine(ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=()), {})
    data = {"run": "echo", "envs": {"HF_TOKEN": None}}
    with pytest.raises(ValueError, match="envs.HF_TOKEN: has no value"):
        eng.submit([{"source": "e.yaml#1", "data": data}])
    assert eng.store.jobs() == []


@pytest.mark.parametrize(("policy", "accepted"), [
    ({"min_replicas": 1, "max_replicas": 3}, False),
    ({"min_replicas": 1, "max_replicas": 3, "target_qps_per_replica": 5}, True),
    ({"min_replicas": 2, "max_replicas": 2}, True),
    ({"min_replicas": 1, "target_qps_per_replica": 5}, False),
    ({"min_replicas": 1}, True),
])
def test_service_checks_are_skypilots(policy, accepted):
    import sky

    data = {"run": "serve", "service": {"readiness_probe": "/health", "replica_policy": policy}}
    try:
        sky.Task.from_yaml_config(json.loads(json.dumps(data)))
        sky_accepts = True
    except ValueError:
        sky_accepts = False
    assert sky_accepts is accepted
    if accepted:
        spec_from_data(data, "s.yaml")
    else:
        with pytest.raises(ValueError, match="service.replica_policy"):
            spec_from_data(data, "s.yaml")
