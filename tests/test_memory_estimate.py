"""The GPU memory estimator: against real H100 peaks, its accounting, its monotonicity, and the solver using it.

Calibration rows: configs/telemetry/h100_training_memory_calibration.csv (real training
steps on an H100 80GB HBM3; `nvml_used_bytes` is what had to fit, CUDA context included).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalog_dir
from clouds.gpus import gpu_memory_gb
from placement.memory_estimate import (BYTES_PER_PARAMETER, CALIBRATED, CHECKPOINTED_SHARE, DEFAULT_VOCAB,
                                       LOGIT_BYTES, OPTIMIZER_STATE_BYTES, BadFact, Calibration, MeasuredPeak,
                                       ModelFacts, calibrate, estimate, read_calibration, shape_of)
from placement.model import ReasonCode, Snapshot
from placement.solve import solve
from placement.spec import GpuMemoryHint, load_specs, spec_from_data, to_job, to_jobs
from policies import load_policy

# The estimate may fall short of a measured peak by at most this share (it does by none today).
UNDER_TOLERANCE = 0.01
# Bounds on the over-estimate of a calibration row: from a hint, the model's shape and vocabulary are
# derived from its size (GPT-2's 50,257-token vocabulary is taken as Llama 3's 128,256); with the true shape,
# what is left is the model's own error.
MAX_OVER_FROM_HINT = 0.80
MAX_OVER_WITH_TRUE_SHAPE = 0.15


@pytest.fixture(scope="module")
def rows() -> list[MeasuredPeak]:
    return read_calibration()


# --- against the measured peaks --------------------------------------------------------------

def test_the_calibration_data_is_all_there(rows):
    assert len(rows) == 8
    assert {r.model for r in rows} == {"gpt2-124m", "resnet50"}
    assert {r.facts.image_size for r in rows if r.model == "resnet50"} == {224}


def test_every_calibration_row_fits_under_its_estimate(rows):
    for row in rows:
        measured = row.nvml_used_bytes / 1e9
        from_hint = estimate(row.facts).total_gb
        with_shape = estimate(row.facts, shape=row.shape).total_gb
        assert from_hint >= measured * (1 - UNDER_TOLERANCE), row
        assert from_hint <= measured * (1 + MAX_OVER_FROM_HINT), row
        assert measured * (1 - UNDER_TOLERANCE) <= with_shape <= measured * (1 + MAX_OVER_WITH_TRUE_SHAPE), row


def test_the_true_shape_given_as_facts_is_the_calibrations_shape(rows):
    for row in (r for r in rows if r.shape is not None):
        shape = row.shape
        facts = ModelFacts(**{**asdict(row.facts), "layers": shape.layers, "hidden_size": shape.hidden,
                              "vocab_size": shape.vocab})
        assert estimate(facts).total_gb == pytest.approx(estimate(row.facts, shape=shape).total_gb, rel=1e-12)
        assert estimate(facts).assumptions == ()


def test_shipped_constants_are_the_calibration_rounded_up(rows):
    fitted = calibrate(rows)
    for name, value in asdict(fitted).items():
        shipped = getattr(CALIBRATED, name)
        assert value <= shipped <= value * 1.001 + 1e-9, name


def test_calibrate_recovers_the_constants_that_made_the_data():
    truth = Calibration(cuda_context_gb=0.9, token_bytes_fp32=120.0, token_bytes_16bit=70.0,
                        pixel_bytes_fp32=0.6, pixel_bytes_16bit=0.35)
    shapes = [dict(sequence_length=512, batch_size=4), dict(sequence_length=2048, batch_size=2),
              dict(image_size=224, batch_size=64), dict(image_size=384, batch_size=16)]
    synthetic = []
    for precision in ("fp32", "bf16"):
        for parameters, shape in zip((125e6, 350e6, 25e6, 86e6), shapes):
            facts = ModelFacts(parameters, precision, "adamw", **shape)
            reserved = round((estimate(facts, calibration=truth).total_gb - truth.cuda_context_gb) * 1e9)
            synthetic.append(MeasuredPeak("synthetic", facts, reserved, reserved, reserved + int(0.9e9)))
    fitted = calibrate(synthetic)
    for field in fields(Calibration):
        assert getattr(fitted, field.name) == pytest.approx(getattr(truth, field.name), rel=1e-3), field.name


def test_calibration_rows_that_did_not_run_are_skipped_and_bad_ones_named(tmp_path):
    header = "model,params,batch,seq,dtype,optimizer,peak_allocated_bytes,peak_reserved_bytes,nvml_used_bytes," \
             "seconds,status\n"
    good = tmp_path / "good.csv"
    good.write_text(header + "gpt2-124m,124439808,4,512,fp32,adamw,1,2,3,1.0,ok\n"
                    "gpt2-1.5b,1557611200,8,1024,fp32,adamw,,,,,oom\n")
    assert [r.model for r in read_calibration(good)] == ["gpt2-124m"]
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "gpt2-124m,124439808,4,512,fp64,adamw,1,2,3,1.0,ok\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2: precision: unknown \(given: 'fp64'\); valid: one of fp32, "):
        read_calibration(bad)


# --- the accounting ----------------------------------------------------------------------------

@pytest.mark.parametrize("precision, optimizer, weights, gradients, optimizer_state", [
    ("fp32", "adamw", 4, 4, 8),  # 16 bytes per parameter
    ("bf16", "adamw", 2, 4, 4 + 8),  # 18: AMP's fp32 gradients and master weights, m and v
    ("bf16", "sgd_momentum", 2, 4, 4 + 4),
    ("fp32", "sgd", 4, 4, 0),
    ("int4", "none", 0.5, 0, 0),  # inference: the weights alone
])
def test_model_states_per_parameter(precision, optimizer, weights, gradients, optimizer_state):
    got = estimate(ModelFacts(1e9, precision, optimizer, batch_size=1, sequence_length=1))
    assert (got.weights_gb, got.gradients_gb, got.optimizer_gb) == pytest.approx((weights, gradients, optimizer_state))
    assert got.cuda_context_gb == CALIBRATED.cuda_context_gb
    assert got.peak_gb >= got.total_gb > got.peak_gb - 0.1


def test_missing_facts_are_assumed_and_said():
    bare = estimate(ModelFacts(8e9, "bf16", "none"))
    assert [a.split()[0] for a in bare.assumptions] == ["batch_size", "sequence_length", "shape", "vocab_size"]
    assert bare.total_gb == estimate(ModelFacts(8e9, "bf16", "none", batch_size=1, sequence_length=2048,
                                                vocab_size=DEFAULT_VOCAB)).total_gb
    image = ModelFacts(8e9, "bf16", "none", batch_size=1, image_size=224)
    assert [a.split()[0] for a in estimate(image).assumptions] == ["shape"]  # no logits, so no vocabulary
    assert estimate(ModelFacts(**{**asdict(image), "layers": 32, "hidden_size": 4096})).assumptions == ()


@pytest.mark.parametrize("facts, field, words", [
    (dict(parameters=0), "parameters", "not a positive count"),
    (dict(parameters=1e9, precision="fp64"), "precision", "(given: 'fp64'); valid: one of fp32, fp16, bf16"),
    (dict(parameters=1e9, optimizer="lion"), "optimizer", "(given: 'lion'); valid: one of adam, adamw"),
    (dict(parameters=1e9, batch_size=0), "batch_size", "not a positive whole number (given: 0)"),
    (dict(parameters=1e9, vocab_size=0), "vocab_size", "not a positive whole number (given: 0)"),
    (dict(parameters=1e9, layers=2.5), "layers", "not a positive whole number (given: 2.5)"),
    (dict(parameters=1e9, hidden_size=True), "hidden_size", "not a positive whole number (given: True)"),
    (dict(parameters=1e9, activation_checkpointing="yes"), "activation_checkpointing", "not true or false"),
    (dict(parameters=1e9, trainable_parameters=2e9), "trainable_parameters",
     "exceeds parameters (1,000,000,000) (given: 2000000000.0); valid: a count above 0, at most parameters"),
    (dict(parameters=1e9, trainable_parameters=0), "trainable_parameters", "not a positive count (given: 0)"),
    (dict(parameters=1e9, optimizer="none", trainable_parameters=1e6), "trainable_parameters",
     "inference (optimizer: none) trains no parameters"),
    (dict(parameters=1e9, optimizer="none", activation_checkpointing=True), "activation_checkpointing",
     "inference (optimizer: none) keeps no activations to checkpoint"),
])
def test_bad_facts_name_the_field(facts, field, words):
    with pytest.raises(BadFact) as info:
        ModelFacts(**facts)
    assert info.value.field == field and info.value.valid
    assert str(info.value).startswith(f"{field}: ") and words in str(info.value)


# --- the optional facts ------------------------------------------------------------------------

LLAMA3_8B = dict(parameters=8e9, precision="bf16", optimizer="adamw", batch_size=4, sequence_length=2048,
                 layers=32, hidden_size=4096, vocab_size=128_256)


def test_lora_keeps_gradients_and_optimizer_state_for_the_adapters_alone():
    full = estimate(ModelFacts(**LLAMA3_8B))
    lora = estimate(ModelFacts(**LLAMA3_8B, trainable_parameters=42e6))
    assert lora.weights_gb == full.weights_gb == 16  # the frozen backbone is still on the GPU
    assert lora.gradients_gb == pytest.approx(42e6 * 4 / 1e9)  # fp32 gradients
    assert lora.optimizer_gb == pytest.approx(42e6 * (4 + 8) / 1e9)  # fp32 master weights, m and v
    assert lora.activations_gb == full.activations_gb  # the backward pass still runs through every layer
    assert full.total_gb - lora.total_gb == pytest.approx((8e9 - 42e6) * 16 / 1e9)
    assert lora.total_gb < 0.7 * full.total_gb
    everything = estimate(ModelFacts(**LLAMA3_8B, trainable_parameters=8e9))
    assert everything == full


def test_activation_checkpointing_keeps_each_layers_input_and_one_layer():
    plain = estimate(ModelFacts(**LLAMA3_8B))
    checkpointed = estimate(ModelFacts(**LLAMA3_8B, activation_checkpointing=True))
    logits_gb = 4 * 2048 * 128_256 * LOGIT_BYTES / 1e9  # not checkpointed
    per_layer_gb = (plain.activations_gb - logits_gb) / 32
    assert checkpointed.activations_gb - logits_gb == pytest.approx(per_layer_gb * (32 * CHECKPOINTED_SHARE + 1))
    assert checkpointed.activations_gb < 0.3 * plain.activations_gb
    assert (checkpointed.weights_gb, checkpointed.gradients_gb, checkpointed.optimizer_gb) == (
        plain.weights_gb, plain.gradients_gb, plain.optimizer_gb)
    one_layer = dict(LLAMA3_8B, layers=1)  # a single layer cannot keep less than itself
    assert estimate(ModelFacts(**one_layer, activation_checkpointing=True)) == estimate(ModelFacts(**one_layer))


@pytest.mark.parametrize("optimizer, logit_bytes", [("adamw", LOGIT_BYTES), ("none", 4.0)])
def test_vocab_size_changes_the_logits_alone(optimizer, logit_bytes):
    small = estimate(ModelFacts(**{**LLAMA3_8B, "optimizer": optimizer, "vocab_size": 50_257}))
    large = estimate(ModelFacts(**{**LLAMA3_8B, "optimizer": optimizer}))
    assert large.activations_gb - small.activations_gb == pytest.approx(
        4 * 2048 * (128_256 - 50_257) * logit_bytes / 1e9)
    assert large.total_gb - small.total_gb == pytest.approx(large.activations_gb - small.activations_gb)
    no_vocab = {**LLAMA3_8B, "optimizer": optimizer}
    del no_vocab["vocab_size"]
    assert estimate(ModelFacts(**no_vocab)).total_gb == large.total_gb  # Llama 3's is the default


def test_layers_or_hidden_size_alone_derive_the_other_from_the_parameter_count():
    facts = dict(parameters=1.2e9, batch_size=2, sequence_length=1024, vocab_size=50_257)
    both = estimate(ModelFacts(**facts, layers=24, hidden_size=2048)).activations_gb  # 12 x 24 x 2048^2 = 1.2B
    assert estimate(ModelFacts(**facts, layers=24)).activations_gb == pytest.approx(both, rel=0.02)
    assert estimate(ModelFacts(**facts, hidden_size=2048)).activations_gb == pytest.approx(both, rel=0.02)
    deeper = estimate(ModelFacts(**facts, layers=48, hidden_size=2048)).activations_gb
    assert deeper > both  # activations grow with depth at a given width


def test_the_estimator_knows_every_precision_and_optimizer_a_spec_accepts():
    hint = GpuMemoryHint.model_fields
    assert set(hint["precision"].annotation.__args__) == set(BYTES_PER_PARAMETER)
    assert set(hint["optimizer"].annotation.__args__) == set(OPTIMIZER_STATE_BYTES)


# --- monotonicity ------------------------------------------------------------------------------

parameters = st.floats(1e6, 2e11)
batches = st.integers(1, 512)
lengths = st.integers(1, 32_768)
images = st.integers(16, 1024)
precisions = st.sampled_from(sorted(BYTES_PER_PARAMETER))
optimizers = st.sampled_from(sorted(OPTIMIZER_STATE_BYTES))


@st.composite
def model_facts(draw) -> ModelFacts:
    text = draw(st.booleans())
    size = draw(parameters)
    optimizer = draw(optimizers)
    training = optimizer != "none"
    return ModelFacts(size, draw(precisions), optimizer, draw(batches),
                      sequence_length=draw(lengths) if text else None,
                      image_size=None if text else draw(images),
                      trainable_parameters=draw(st.none() | st.floats(1e-4, 1.0).map(size.__mul__)) if training
                      else None,
                      activation_checkpointing=draw(st.booleans()) and training,
                      vocab_size=draw(st.none() | st.integers(1000, 300_000)),
                      layers=draw(st.none() | st.integers(1, 128)),
                      hidden_size=draw(st.none() | st.integers(64, 16_384)))


def total(facts: ModelFacts, **changes) -> float:
    changed = {**asdict(facts), **changes}
    if changed["optimizer"] == "none":  # inference trains nothing
        changed.update(trainable_parameters=None, activation_checkpointing=False)
    return estimate(ModelFacts(**changed)).total_gb


@settings(max_examples=200, deadline=None)
@given(model_facts(), st.floats(1.0, 100.0), st.integers(1, 64))
def test_more_parameters_batch_sequence_or_pixels_never_need_less(facts, factor, extra):
    base = total(facts)
    assert total(facts, parameters=facts.parameters * factor) >= base
    assert total(facts, batch_size=facts.batch_size + extra) >= base
    if facts.vocab_size is not None:
        assert total(facts, vocab_size=facts.vocab_size + extra) >= base
    if facts.layers is not None and facts.hidden_size is not None:  # one alone trades depth for width
        assert total(facts, layers=facts.layers + extra) >= base
        assert total(facts, hidden_size=facts.hidden_size + extra) >= base
    if facts.sequence_length is not None:
        assert total(facts, sequence_length=facts.sequence_length + extra) >= base
    else:
        assert total(facts, image_size=facts.image_size + extra) >= base


@settings(max_examples=200, deadline=None)
@given(model_facts(), st.floats(0.0, 1.0))
def test_fewer_trainable_parameters_or_checkpointing_never_need_more(facts, share):
    if not facts.training:
        return
    everything = total(facts, trainable_parameters=None)
    assert total(facts, trainable_parameters=max(facts.parameters * share, 1.0)) <= everything
    assert total(facts, activation_checkpointing=True) <= total(facts, activation_checkpointing=False)


@settings(max_examples=200, deadline=None)
@given(model_facts())
def test_optimizers_order_adamw_sgd_none(facts):
    adamw, adam = total(facts, optimizer="adamw"), total(facts, optimizer="adam")
    momentum, sgd, none = (total(facts, optimizer=o) for o in ("sgd_momentum", "sgd", "none"))
    assert adamw == adam >= momentum >= sgd
    assert momentum == total(facts, optimizer="adafactor")
    # Serving keeps every layer's K and V, which a training step with one layer, or with checkpointing
    # (each layer's input alone), need not: there a large batch can take more to serve than to train.
    if not facts.activation_checkpointing and shape_of(facts)[0].layers >= 2:
        assert sgd >= none


@settings(max_examples=200, deadline=None)
@given(model_facts())
def test_narrower_precision_never_needs_more(facts):
    estimates = {p: estimate(ModelFacts(**{**asdict(facts), "precision": p}))
                 for p in ("fp32", "bf16", "fp16", "fp8", "int8", "int4")}
    assert estimates["bf16"] == estimates["fp16"]
    assert (estimates["bf16"].total_gb >= estimates["fp8"].total_gb == estimates["int8"].total_gb
            >= estimates["int4"].total_gb)
    fp32, bf16 = estimates["fp32"], estimates["bf16"]
    assert fp32.activations_gb >= bf16.activations_gb
    if facts.optimizer == "none":
        assert fp32.total_gb >= bf16.total_gb
    else:  # mixed precision keeps 16-bit weights beside fp32 master weights: 2 bytes per parameter fp32 lacks
        assert fp32.total_gb >= bf16.total_gb - 2 * facts.parameters / 1e9 - 1e-9


# --- placement ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catalog_offers():
    """Every public offer of the shipped SkyPilot catalogs (configs/catalogs)."""
    return tuple(load_catalog_dir(SHIPPED_CATALOG_DIR).offers)


def job_from(name: str, accelerators: dict, gpu_memory: dict | None = None):
    data = {"name": name, "run": "python train.py", "resources": {"accelerators": accelerators},
            "placement": {"priority": "critical", **({"gpu_memory": gpu_memory} if gpu_memory else {})}}
    return to_job(spec_from_data(data, f"{name}.yaml"), name)


def test_to_job_takes_per_gpu_gb_as_given_and_estimates_from_facts():
    given_gb = job_from("given", {"A100": 1}, {"per_gpu_gb": 30})
    facts = {"parameters": "7B", "precision": "fp16", "batch_size": 8}
    estimated = job_from("estimated", {"A100": 1}, facts)
    assert given_gb.gpu_memory_gb == 30
    assert estimated.gpu_memory_gb == estimate(ModelFacts(7e9, "fp16", "adamw", batch_size=8)).peak_gb
    assert job_from("none", {"A100": 1}).gpu_memory_gb is None


def test_a_model_too_big_for_every_gpu_is_queued_for_memory(catalog_offers):
    facts = {"parameters": "70B", "precision": "bf16", "optimizer": "adamw", "batch_size": 1, "sequence_length": 4096}
    job = job_from("llama-70b-full", {"H100": 8, "H200": 8, "B200": 8, "B300": 8}, facts)
    assert job.gpu_memory_gb > max(o.gpu_memory_gb for o in catalog_offers)
    plan = solve(Snapshot(jobs=(job,), offers=catalog_offers), load_policy("cost-first"))
    assert plan.placements == ()
    assert plan.reason_of(job.id).code is ReasonCode.INSUFFICIENT_GPU_MEMORY


EXAMPLES = Path(__file__).resolve().parent.parent / "configs" / "jobs"


def test_every_shipped_example_fits_a_gpu_it_asks_for():
    """The examples describe real jobs (LoRA on Llama 3 8B, GPT 1.3B pre-training with checkpointing)."""
    hinted = [job for job in to_jobs(load_specs([EXAMPLES])) if job.gpu_memory_gb is not None]
    assert {"finetune-llama3-lora", "pretrain-gpt-1b3"} <= {job.id for job in hinted}
    for job in hinted:
        largest = max(gpu_memory_gb(d.accelerator) for d in job.demands if d.accelerator)
        assert job.gpu_memory_gb <= largest, job.id


def test_a_smaller_model_goes_to_a_gpu_with_enough_memory(catalog_offers):
    single = {"A10": 1, "A6000": 1, "A100": 1, "H100": 1}
    facts = {"parameters": "1.3B", "precision": "bf16", "optimizer": "adamw", "batch_size": 4, "sequence_length": 1024}
    unhinted, hinted = job_from("unhinted", single), job_from("gpt-1b3", single, facts)
    too_small = job_from("gpt-1b3-small-gpus", {"A10": 1, "A6000": 1, "A100": 1}, facts)
    assert 48 < hinted.gpu_memory_gb <= 80  # more than an A6000 has, less than an H100
    plan = solve(Snapshot(jobs=(unhinted, hinted, too_small), offers=catalog_offers), load_policy("cost-first"))
    by_id = {o.id: o for o in catalog_offers}
    cheapest = by_id[plan.placement_of("unhinted").offer_id]
    assert cheapest.gpu_memory_gb < hinted.gpu_memory_gb  # without the estimate, a GPU too small would do
    chosen = by_id[plan.placement_of("gpt-1b3").offer_id]
    assert chosen.gpu_memory_gb >= hinted.gpu_memory_gb and chosen.gpu == "H100"
    assert plan.reason_of("gpt-1b3-small-gpus").code is ReasonCode.INSUFFICIENT_GPU_MEMORY
