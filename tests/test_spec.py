"""Job specs: SkyPilot task YAMLs plus `placement:`, their errors, and their conversion to Jobs."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from placement.memory_estimate import ModelFacts, estimate
from placement.model import Demand, Tier
from placement.spec import (DEFAULT_PRIORITY_CLASSES, SKY_CLOUDS, JobSpec, LoadedSpec, Resources, Service,
                            duration_hours, gpu_choices, load_specs, spec_json_schema, to_job, to_jobs)
from placement.yamlio import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "configs" / "jobs"
BAD = Path(__file__).resolve().parent / "bad_specs"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_one(tmp_path: Path, text: str, **kwargs) -> LoadedSpec:
    loaded, = load_specs([write(tmp_path, "job.yaml", text)], **kwargs)
    return loaded


def job_of(tmp_path: Path, text: str):
    return to_job(load_one(tmp_path, text), "j")


def errors_of(*paths: Path, **kwargs):
    with pytest.raises(ConfigError) as info:
        load_specs(paths, **kwargs)
    return info.value.errors


# --- the corpus of bad specs: file -> (line, field path, words in the message) -----------------

BAD_SPECS: dict[str, tuple[int, str, str]] = {
    "unknown_top_field.yaml": (2, "resouces", "Did you mean 'resources'?"),
    "unknown_resources_field.yaml": (3, "resources.acelerators", "Did you mean 'accelerators'?"),
    "unknown_placement_field.yaml": (5, "placement.budget", "Did you mean 'budget_usd'?"),
    "misspelt_gpu.yaml": (4, "resources.accelerators", "unknown GPU 'A1000' (given: 'A1000:8')"),
    "gpu_list_bad_item.yaml": (5, "resources.accelerators[1]", "unknown GPU 'A10O'"),
    "gpu_count_zero.yaml": (3, "resources.accelerators", "not a valid GPU count (given: 'A100:0')"),
    "gpu_count_negative.yaml": (4, "resources.accelerators.A100", "not a valid GPU count"),
    "gpu_count_fractional.yaml": (3, "resources.accelerators", "fraction below 1 to share one GPU"),
    "gpu_count_not_number.yaml": (3, "resources.accelerators", "the GPU count is not a number"),
    "gpu_count_twice.yaml": (3, "resources.accelerators['A100:8']", "the GPU count is given twice"),
    "bad_cpus.yaml": (3, "resources.cpus", "not a CPU count (given: 'eight+')"),
    "cpus_zero.yaml": (3, "resources.cpus", "not a CPU count (given: 0)"),
    "bad_memory.yaml": (4, "resources.memory", "not a memory size (given: '32XB')"),
    "bad_disk_size.yaml": (3, "resources.disk_size", "not a disk size (given: -100)"),
    "bad_duration.yaml": (5, "placement.max_wait", "not a duration (given: '2 hours'); valid: a number of minutes"),
    "negative_duration.yaml": (4, "placement.max_wait", "a duration cannot be negative"),
    "unknown_tier.yaml": (6, "placement.tiers[1]", "valid: one of onprem, private, public. Did you mean 'public'?"),
    "empty_tiers.yaml": (4, "placement.tiers", "too few items (given: []); valid: at least 1 item"),
    "unknown_priority.yaml": (5, "placement.priority", "unknown priority 'urgent' (given: 'urgent'); "
                                                       "valid: one of low, normal, high, critical"),
    "residency_conflict.yaml": (5, "placement.tiers", "leave on-prem out (given: ['private', 'public'])"),
    "residency_value.yaml": (4, "placement.data_residency", "valid: one of onprem"),
    "residency_spot.yaml": (4, "resources.use_spot", "there is no spot capacity"),
    "spot_conflict.yaml": (7, "placement.spot_ok", "asks for spot capacity, but spot_ok is false"),
    "duplicate_key.yaml": (5, "run", "duplicate key 'run': also set at line 4"),
    "duplicate_nested_key.yaml": (5, "resources.cpus", "duplicate key 'cpus': also set at line 3"),
    "syntax_error.yaml": (4, "", "YAML syntax error"),
    "bad_indentation.yaml": (4, "", "YAML syntax error: mapping values are not allowed here"),
    "python_object_tag.yaml": (4, "run", "the tag !!python/object/apply:os.system is not allowed"),
    "custom_tag.yaml": (3, "envs.BUCKET", "the tag !Ref is not allowed"),
    "envs_wrong_type.yaml": (2, "envs", "wrong type (given: ['EPOCHS=3', 'LR=0.1']); valid: a mapping"),
    "envs_bad_name.yaml": (4, "envs['2ND_STAGE']", "not an environment variable name"),
    "num_nodes_zero.yaml": (2, "num_nodes", "out of range (given: 0); valid: greater than 0"),
    "num_nodes_words.yaml": (2, "num_nodes", "wrong type (given: 'two'); valid: a whole number"),
    "negative_budget.yaml": (5, "placement.budget_usd", "out of range (given: -50)"),
    "expected_hours_zero.yaml": (4, "placement.expected_hours", "valid: greater than 0"),
    "bad_infra.yaml": (3, "resources.infra", "unknown cloud 'awz' (given: 'awz/us-east-1')"),
    "infra_too_deep.yaml": (3, "resources.infra", "too many parts"),
    "infra_and_cloud.yaml": (4, "resources.cloud", "give either infra or cloud, not both"),
    "unknown_cloud.yaml": (3, "resources.cloud", "(given: 'amazon'); valid: one of aws, azure, gcp"),
    "bad_use_spot.yaml": (3, "resources.use_spot", "wrong type (given: 'maybe'); valid: true or false"),
    "any_of_and_ordered.yaml": (5, "resources.ordered", "give either any_of or ordered, not both"),
    "ordered_many_accelerators.yaml": (3, "resources.accelerators", "several accelerators cannot go with ordered"),
    "any_of_entry_two_gpus.yaml": (5, "resources.any_of[1].accelerators", "names one accelerator"),
    "gpu_memory_both.yaml": (6, "placement.gpu_memory.parameters", "either per_gpu_gb or the model's facts"),
    "gpu_memory_empty.yaml": (4, "placement.gpu_memory", "neither per_gpu_gb nor parameters"),
    "bad_parameters.yaml": (5, "placement.gpu_memory.parameters", "not a parameter count (given: '7X')"),
    "bad_precision.yaml": (6, "placement.gpu_memory.precision", "(given: 'fp64'); valid: one of fp32, fp16"),
    "trainable_above_parameters.yaml": (6, "placement.gpu_memory.trainable_parameters",
                                        "exceeds parameters (8,000,000,000) (given: 9000000000.0)"),
    "checkpointing_inference.yaml": (7, "placement.gpu_memory.activation_checkpointing",
                                     "inference (optimizer: none) keeps no activations to checkpoint"),
    "service_both_counts.yaml": (4, "service.replicas", "either replicas or replica_policy"),
    "service_unknown_field.yaml": (4, "service.replica", "Did you mean 'replicas'?"),
    "service_max_below_min.yaml": (6, "service.replica_policy.max_replicas", "max_replicas is below min_replicas"),
    "not_a_mapping.yaml": (1, "", "wrong type (given: [{'name': 'listed'"),
    "run_not_string.yaml": (2, "run", "wrong type (given: ['python a.py', 'python b.py']); valid: a string"),
    "bad_autostop.yaml": (3, "resources.autostop", "not an idle time (given: 'soon')"),
    "workdir_missing_url.yaml": (2, "workdir.url", "required field is missing"),
    "bad_second_document.yaml": (11, "placement.expected_hours", "(document 2): placement.expected_hours"),
    "name_path_traversal.yaml": (1, "name", "not a valid job name (given: '../x'); valid: a letter, then letters"),
    "name_slash.yaml": (2, "name", "not a valid job name (given: 'team/a')"),
    "name_space.yaml": (2, "name", "not a valid job name (given: 'my job')"),
    "name_too_long.yaml": (1, "name", "the name is longer than 63 characters"),
    "alias_bomb_unknown_keys.yaml": (8, "", "the file expands to more than 20,000 values (MAX_NODES)"),
    "alias_bomb_config.yaml": (9, "", "the file expands to more than 20,000 values (MAX_NODES)"),
    "deep_nesting.yaml": (3, "", "the file nests values deeper than 64 levels (MAX_DEPTH)"),
    "not_utf8.yaml": (2, "", "the file is not UTF-8: byte 0xe9 at column 14"),
    "workdir_etc.yaml": (3, "workdir", "names a file of the service host outside the policy's allowed roots "
                                       "(given: '/etc')"),
    "file_mounts_ssh.yaml": (4, "file_mounts['/remote/k']", "(given: '~/.ssh', which is "),
}


def test_the_corpus_is_complete():
    assert len(BAD_SPECS) >= 35
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(BAD_SPECS)


@pytest.mark.parametrize("name", sorted(BAD_SPECS))
def test_bad_spec_says_where_and_what(name):
    line, path, words = BAD_SPECS[name]
    error, = errors_of(BAD / name, allowed_roots=())  # one problem per file, reported once
    text = str(error)
    assert (error.line, error.path) == (line, path)
    assert name in text and f":{line}" in text and path in text
    assert words in text
    assert error.valid, "every error says what would be valid"
    assert "Traceback" not in text


def test_second_bad_document_rejects_the_whole_file(tmp_path):
    error, = errors_of(BAD / "bad_second_document.yaml")
    assert error.document == 2
    fixed = write(tmp_path, "fixed.yaml", (BAD / "bad_second_document.yaml").read_text().replace("soon", "2"))
    assert [s.spec.name for s in load_specs([fixed])] == ["first-ok", "second-bad"]


def test_errors_of_all_files_come_together(tmp_path):
    good = write(tmp_path, "good.yaml", "name: fine\nrun: echo\n")
    errors = errors_of(BAD / "misspelt_gpu.yaml", good, BAD / "duplicate_key.yaml", tmp_path / "absent.yaml")
    assert [Path(e.file).name for e in errors] == ["misspelt_gpu.yaml", "duplicate_key.yaml", "absent.yaml"]


def test_several_errors_in_one_document(tmp_path):
    errors = errors_of(write(tmp_path, "many.yaml", """\
        name: many
        num_nodes: 0
        resources:
          accelerators: A1000:8
          cpus: lots
        placement:
          priority: urgent
        """))
    assert [(e.line, e.path) for e in errors] == [
        (2, "num_nodes"), (4, "resources.accelerators"), (5, "resources.cpus"), (7, "placement.priority")]


# --- examples and SkyPilot task files ------------------------------------------------------

def test_every_example_loads():
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 9
    for file in files:
        assert load_specs([file]), file


def test_examples_become_jobs():
    jobs = {j.id: j for j in to_jobs(load_specs([EXAMPLES]))}
    assert {"serve-llama3-8b-replica-1", "serve-llama3-8b-replica-2"} <= set(jobs)
    assert "serve-llama3-8b-replica-3" not in jobs
    residency = jobs["segment-ct-scans"]
    assert residency.onprem_only and residency.tiers == {Tier.ONPREM} and residency.gpu_memory_gb == 14
    assert jobs["pretrain-gpt-1b3"].num_nodes == 2 and jobs["pretrain-gpt-1b3"].demands[0].accelerator_count == 8
    cpu_only = jobs["preprocess-clickstream"]
    assert cpu_only.demands == (Demand(cpus=32, memory_gb=128),)
    assert jobs["huggingface"].team == "default" and jobs["huggingface"].priority == "normal"
    assert {"eval-summarisation", "refresh-item-embeddings"} <= set(jobs)
    assert jobs["sweep-dlrm-trial"].spot_ok and all(d.use_spot for d in jobs["sweep-dlrm-trial"].demands)


SKYPILOT_TASKS = {
    "glue.yaml": """\
        name: huggingface

        resources:
          accelerators: V100:4

        setup: |
          set -e
          git clone https://github.com/huggingface/transformers/ || true
          cd transformers
          pip3 install .

        run: |
          set -e
          cd transformers/examples/pytorch/text-classification
          python3 run_glue.py --model_name_or_path bert-base-cased --dataset_name imdb --do_train --fp16
        """,
    "distributed.yaml": """\
        name: resnet-distributed-app
        num_nodes: 2
        workdir: ~/Downloads/tpu

        resources:
          accelerators: A100:8
          cpus: 32
          memory: 256+
          infra: gcp/us-central1
          disk_size: 1024
          disk_tier: best
          labels:
            project: resnet

        envs:
          DATA_DIR: /data/imagenet
          USE_FP16: "1"

        file_mounts:
          /data/imagenet:
            name: my-imagenet-bucket
            source: gs://imagenet-bucket
            store: gcs
            mode: MOUNT
          /tmp/config.yaml: ./config.yaml

        setup: |
          pip install -r requirements.txt

        run: |
          num_nodes=`echo "$SKYPILOT_NODE_IPS" | wc -l`
          master_addr=`echo "$SKYPILOT_NODE_IPS" | head -n1`
          python3 -m torch.distributed.launch --nproc_per_node=${SKYPILOT_NUM_GPUS_PER_NODE} \\
            --nnodes=$num_nodes --node_rank=${SKYPILOT_NODE_RANK} --master_addr=$master_addr \\
            --master_port=8008 resnet_ddp.py --num_epochs 20
        """,
    "serve.yaml": """\
        service:
          readiness_probe:
            path: /v1/models
            initial_delay_seconds: 1800
          replica_policy:
            min_replicas: 3
            max_replicas: 10
            target_qps_per_replica: 2.5
            upscale_delay_seconds: 300
          load_balancing_policy: least_load

        resources:
          accelerators: {L4: 1, A10G: 1}
          ports: 8080
          use_spot: true

        envs:
          MODEL_NAME: mistralai/Mistral-7B-Instruct-v0.2

        run: |
          python -m vllm.entrypoints.openai.api_server --model $MODEL_NAME --port 8080
        """,
    "managed.yaml": """\
        name: bert-qa
        workdir:
          url: https://github.com/huggingface/transformers.git
          ref: v4.44.0

        resources:
          any_of:
            - infra: aws
              accelerators: A10G:1
            - infra: gcp/*
              accelerators: L4:1
          use_spot: true
          job_recovery:
            strategy: EAGER_NEXT_REGION
            max_restarts_on_errors: 3
            recover_on_exit_codes: [33, 34]
          autostop:
            idle_minutes: 10
            down: true
          image_id: docker:pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime

        secrets:
          WANDB_API_KEY: null

        config:
          kubernetes:
            provision_timeout: 900

        run: |
          python examples/pytorch/question-answering/run_qa.py --model_name_or_path bert-base-uncased
        """,
}


@pytest.mark.parametrize("name", sorted(SKYPILOT_TASKS))
def test_skypilot_task_loads_unchanged(tmp_path, name):
    path = write(tmp_path, name, SKYPILOT_TASKS[name])
    loaded, = load_specs([path])
    assert loaded.spec.sky_config() == yaml.safe_load(path.read_text())
    assert loaded.spec.placement.team == "default"


def test_skypilot_task_fields_are_read(tmp_path):
    spec = load_one(tmp_path, SKYPILOT_TASKS["distributed.yaml"]).spec
    assert spec.num_nodes == 2 and spec.envs == {"DATA_DIR": "/data/imagenet", "USE_FP16": "1"}
    assert spec.file_mounts["/tmp/config.yaml"] == "./config.yaml"
    assert spec.file_mounts["/data/imagenet"].source == "gs://imagenet-bucket"
    assert spec.run.startswith("num_nodes=")


def test_env_values_become_strings_as_in_skypilot(tmp_path):
    spec = load_one(tmp_path, "envs:\n  EPOCHS: 3\n  LR: 0.1\n  DEBUG: true\n  EMPTY: null\n").spec
    assert spec.envs == {"EPOCHS": "3", "LR": "0.1", "DEBUG": "True", "EMPTY": None}


def test_sky_config_builds_a_real_skypilot_task(monkeypatch):
    monkeypatch.setenv("SKYPILOT_DISABLE_LOCAL_API_SERVER", "1")
    sky = pytest.importorskip("sky")
    for loaded in load_specs([EXAMPLES]):
        task = sky.Task.from_yaml_config(copy.deepcopy(loaded.spec.sky_config()))
        assert task.name == loaded.spec.name
        assert task.num_nodes == loaded.spec.num_nodes


def test_fields_match_skypilot_schema(monkeypatch):
    """Every field SkyPilot's schemas accept for users is a field here (the internal ones are left out)."""
    monkeypatch.setenv("SKYPILOT_DISABLE_LOCAL_API_SERVER", "1")
    schemas = pytest.importorskip("sky.utils.schemas")
    constants = pytest.importorskip("sky.skylet.constants")
    internal = {"file_mounts_mapping", "_metadata", "volume_mounts"}
    assert set(schemas.get_task_schema()["properties"]) - internal == set(JobSpec.model_fields) - {"placement"}
    resources = {k for k in schemas.get_resources_schema()["properties"] if not k.startswith("_")}
    assert resources == set(Resources.model_fields) - {"gpus"}
    assert set(schemas.get_service_schema()["properties"]) == set(Service.model_fields)
    assert set(SKY_CLOUDS) == set(constants.ALL_CLOUDS)


# --- to_job -------------------------------------------------------------------------------

def test_mapping_of_accelerators_is_any_of(tmp_path):
    job = job_of(tmp_path, "resources:\n  accelerators: {A100: 8, H100: 8}\n  cpus: 8+\n")
    assert job.demands == (Demand("A100", 8, cpus=8), Demand("H100", 8, cpus=8))


def test_list_of_accelerators_is_an_order_of_preference(tmp_path):
    job = job_of(tmp_path, "resources:\n  accelerators: ['H100:8', 'A100-80GB:8', 'A100:8']\n")
    assert [(d.accelerator, d.rank) for d in job.demands] == [("H100", 0), ("A100-80GB", 1), ("A100", 2)]


def test_set_of_accelerators_is_any_of(tmp_path):
    job = job_of(tmp_path, "resources:\n  accelerators: !!set {'A100:8', 'H100:8'}\n")
    assert sorted((d.accelerator, d.accelerator_count, d.rank) for d in job.demands) == [
        ("A100", 8, 0), ("H100", 8, 0)]


def test_flow_mapping_with_counts_in_keys(tmp_path):
    job = job_of(tmp_path, "resources:\n  accelerators: {A100:8, H100:8}\n")
    assert [(d.accelerator, d.accelerator_count) for d in job.demands] == [("A100", 8), ("H100", 8)]


def test_gpu_names_are_canonical_and_counts_may_be_fractions(tmp_path):
    assert job_of(tmp_path, "resources:\n  accelerators: a100-40gb\n").demands == (Demand("A100", 1),)
    assert job_of(tmp_path, "resources:\n  gpus: nvidia-h100:2\n").demands == (Demand("H100", 2),)
    assert job_of(tmp_path, "resources:\n  accelerators: T4:0.5\n").demands == (Demand("T4", 0.5),)


def test_accelerators_by_memory_expand_to_every_gpu_that_fits(tmp_path):
    job = job_of(tmp_path, "resources:\n  accelerators: 80GB+:8\n")
    names = {d.accelerator for d in job.demands}
    assert {"A100-80GB", "H100", "H200", "B200"} <= names and "A100" not in names
    assert {d.accelerator_count for d in job.demands} == {8}


def test_ordered_entries_rank_and_inherit(tmp_path):
    job = job_of(tmp_path, """\
        resources:
          cpus: 16+
          memory: 1TB
          ordered:
            - infra: aws/us-east-1/us-east-1a
              accelerators: H100:8
            - accelerators: A100:8
              cpus: 32
              use_spot: true
        """)
    first, second = job.demands
    assert first == Demand("H100", 8, cpus=16, memory_gb=1024, cloud="aws", region="us-east-1",
                           zone="us-east-1a", rank=0)
    assert second == Demand("A100", 8, cpus=32, memory_gb=1024, use_spot=True, rank=1)


def test_any_of_entries_override_pins_and_spot(tmp_path):
    job = job_of(tmp_path, """\
        resources:
          infra: aws
          use_spot: true
          accelerators: L4:1
          any_of:
            - {}
            - infra: k8s/onprem-pool/a100
              accelerators: A100:1
              use_spot: false
            - cloud: GCP
              region: europe-west4
        """)
    assert [(d.accelerator, d.cloud, d.region, d.use_spot, d.rank) for d in job.demands] == [
        ("L4", "aws", None, True, 0),
        ("A100", "kubernetes", "onprem-pool/a100", False, 0),
        ("L4", "gcp", "europe-west4", True, 0)]
    assert job.spot_ok


def test_infra_wildcards(tmp_path):
    assert job_of(tmp_path, "resources:\n  infra: gcp/*\n").demands[0].cloud == "gcp"
    any_cloud = job_of(tmp_path, "resources:\n  infra: '*/us-east-1'\n").demands[0]
    assert (any_cloud.cloud, any_cloud.region) == (None, "us-east-1")


def test_cpus_and_memory_are_minimums_either_way(tmp_path):
    for cpus, memory in (("8", "32"), ("8+", "32+"), ("8", "32GB"), ("'8+'", "32768MB")):
        demand, = job_of(tmp_path, f"resources:\n  cpus: {cpus}\n  memory: {memory}\n").demands
        assert (demand.cpus, demand.memory_gb) == (8, 32)


def test_spot(tmp_path):
    spot_only = job_of(tmp_path, "resources:\n  use_spot: true\n")
    assert spot_only.spot_ok and spot_only.demands[0].use_spot is True
    on_demand = job_of(tmp_path, "resources:\n  use_spot: false\nplacement:\n  spot_ok: true\n")
    assert on_demand.spot_ok and on_demand.demands[0].use_spot is False
    either = job_of(tmp_path, "placement:\n  spot_ok: true\n")
    assert either.spot_ok and either.demands[0].use_spot is None
    assert not job_of(tmp_path, "run: echo\n").spot_ok


def test_placement_block(tmp_path):
    job = job_of(tmp_path, """\
        name: train
        placement:
          team: vision
          priority: high
          expected_hours: 6
          max_wait: 1h30m
          tiers: [private, public]
          budget_usd: 250
          gpu_memory: {per_gpu_gb: 70}
        """)
    assert (job.name, job.team, job.priority, job.expected_hours, job.max_wait_hours) == (
        "train", "vision", "high", 6, 1.5)
    assert job.tiers == {Tier.PRIVATE, Tier.PUBLIC} and job.budget_usd == 250 and job.gpu_memory_gb == 70
    assert not job.onprem_only


def test_residency_means_onprem_only(tmp_path):
    job = job_of(tmp_path, "placement:\n  data_residency: onprem\n  tiers: [onprem, public]\n")
    assert job.onprem_only and job.tiers == {Tier.ONPREM}


def test_model_facts_set_gpu_memory_to_the_estimate(tmp_path):
    loaded = load_one(tmp_path, "placement:\n  gpu_memory: {parameters: 7B, precision: fp16, batch_size: 8}\n")
    hint = loaded.spec.placement.gpu_memory
    assert (hint.parameters, hint.precision, hint.optimizer, hint.batch_size) == (7e9, "fp16", "adamw", 8)
    expected = estimate(ModelFacts(parameters=7e9, precision="fp16", optimizer="adamw", batch_size=8)).peak_gb
    assert to_job(loaded, "j").gpu_memory_gb == expected


def test_every_fact_reaches_the_estimator(tmp_path):
    loaded = load_one(tmp_path, """\
        placement:
          gpu_memory:
            parameters: 8B
            trainable_parameters: 42M
            precision: bf16
            optimizer: adamw
            batch_size: 4
            sequence_length: 2048
            activation_checkpointing: true
            vocab_size: 128256
            layers: 32
            hidden_size: 4096
        """)
    facts = ModelFacts(parameters=8e9, trainable_parameters=42e6, precision="bf16", optimizer="adamw", batch_size=4,
                       sequence_length=2048, activation_checkpointing=True, vocab_size=128_256, layers=32,
                       hidden_size=4096)
    assert loaded.spec.placement.gpu_memory.model_facts() == facts
    assert to_job(loaded, "j").gpu_memory_gb == estimate(facts).peak_gb


def test_defaults(tmp_path):
    job = job_of(tmp_path, "run: echo\n")
    assert (job.name, job.team, job.priority, job.num_nodes, job.expected_hours, job.max_wait_hours) == (
        "job", "default", "normal", 1, 1.0, None)
    assert job.tiers == frozenset(Tier) and job.demands == (Demand(),)


def test_priority_classes_are_the_loaders_to_choose(tmp_path):
    path = write(tmp_path, "p.yaml", "placement:\n  priority: batch\n")
    assert load_specs([path], priority_classes=["batch", "interactive"])[0].spec.placement.priority == "batch"
    error, = errors_of(path)
    assert error.valid == "one of " + ", ".join(DEFAULT_PRIORITY_CLASSES)
    error, = errors_of(write(tmp_path, "q.yaml", "placement:\n  priority: hihg\n"), priority_classes=["low", "high"])
    assert (error.valid, error.suggestion) == ("one of low, high", "high")


@pytest.mark.parametrize("text, hours", [
    ("90s", 0.025), ("30m", 0.5), ("2h", 2), ("1d", 24), ("1w", 168), ("1h30m", 1.5), ("1h 30m", 1.5),
    ("45", 0.75), (45, 0.75), (0, 0), ("2H", 2)])
def test_durations(text, hours):
    assert duration_hours(text) == pytest.approx(hours)


@given(st.integers(0, 100), st.integers(0, 59), st.integers(0, 59))
def test_duration_parts_add_up(h, m, s):
    assert duration_hours(f"{h}h{m}m{s}s") == pytest.approx(h + m / 60 + s / 3600)


@given(st.sampled_from(["A100", "H100", "L4", "T4", "A10G", "V100", "A100-80GB"]), st.integers(1, 16))
def test_every_accelerator_spelling_means_the_same(name, count):
    expected = ((name, float(count)),)
    for value in (f"{name}:{count}", {name: count}, [f"{name}:{count}"], {f"{name}:{count}": None}):
        choices, _ = gpu_choices(value)
        assert tuple((c.name, c.count) for c in choices) == expected


# --- loading many files, and job ids -----------------------------------------------------

def test_directories_are_walked_recursively_and_sorted(tmp_path):
    write(tmp_path, "b.yaml", "name: b\n")
    write(tmp_path, "a/z.yml", "name: z\n")
    write(tmp_path, "a/y.yaml", "name: y\nrun: a\n---\nname: y2\n")
    write(tmp_path, "notes.txt", "name: ignored\n")
    loaded = load_specs([tmp_path])
    assert [(s.spec.name, Path(s.file).name, s.document) for s in loaded] == [
        ("y", "y.yaml", 1), ("y2", "y.yaml", 2), ("z", "z.yml", 1), ("b", "b.yaml", 1)]


def test_job_ids_are_unique(tmp_path):
    write(tmp_path, "1.yaml", "name: train\nrun: a\n---\nname: train\n---\nname: train-2\n")
    write(tmp_path, "2.yaml", "name: train\n")
    write(tmp_path, "3-unnamed.yaml", "run: echo\n")
    write(tmp_path, "4.yaml", "name: api\nservice: {replicas: 2}\n---\nname: api\nservice: {readiness_probe: /}\n")
    write(tmp_path, "5.yaml", "name: api-replica-1\n")
    ids = [job.id for job in to_jobs(load_specs([tmp_path]))]
    assert ids == ["train", "train-2", "train-2-2", "train-3", "job-3-unnamed",
                   "api-replica-1", "api-replica-2", "api-2-replica-1", "api-replica-1-2"]


def test_service_replicas(tmp_path):
    loaded = load_specs([write(tmp_path, "s.yaml", """\
        name: web
        service:
          readiness_probe: /health
          replica_policy: {min_replicas: 0, max_replicas: 4, target_qps_per_replica: 2}
        ---
        name: api
        service:
          readiness_probe: /health
          replica_policy: {min_replicas: 3, max_replicas: 4, target_qps_per_replica: 2}
        resources: {accelerators: L4:1}
        """)])
    jobs = to_jobs(loaded)
    assert [j.id for j in jobs] == ["api-replica-1", "api-replica-2", "api-replica-3"]
    assert all(j.name == "api" and j.demands == (Demand("L4", 1),) for j in jobs)


def test_json_schema():
    schema = spec_json_schema()
    json.dumps(schema)
    assert {"resources", "placement", "run", "service"} <= set(schema["properties"])
    placement = schema["$defs"]["PlacementSpec"]["properties"]
    assert {"team", "priority", "max_wait", "tiers", "data_residency", "gpu_memory"} <= set(placement)
    assert schema["additionalProperties"] is False
