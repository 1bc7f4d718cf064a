"""The GPU memory estimator: against real H100 peaks (in sample and leave-one-model-out), its terms per model
kind, the allocator's reserve, monotonicity, and the solver using it with the policy's margin.

Calibration rows: configs/telemetry/h100_training_memory_calibration.csv (real training steps on an H100 80GB
HBM3; `nvml_used_bytes` is what had to fit, CUDA context included).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalog_dir
from clouds.gpus import gpu_memory_gb
from placement.memory_estimate import (BYTES_PER_PARAMETER, CALIBRATED, DEFAULT_MARGIN, DEFAULT_VOCAB, LOGIT_BYTES,
                                       MIB, OPTIMIZER_STATE_BYTES, BadFact, Calibration, MeasuredPeak, ModelFacts,
                                       calibrate, estimate, layer_bytes_per_token, read_calibration,
                                       resnet_feature_maps, shape_of)
from placement.model import ReasonCode, Snapshot
from placement.model_shapes import ARCHITECTURES, architecture, normalise
from placement.solve import solve
from placement.spec import GpuMemoryHint, load_specs, spec_from_data, to_job, to_jobs
from policies import load_policy

WITHIN = 0.15  # the target: every row within +-15% of NVML...
MARGIN = DEFAULT_MARGIN  # ...and never under by more than the policy's margin


@pytest.fixture(scope="module")
def rows() -> list[MeasuredPeak]:
    return read_calibration()


def error(row: MeasuredPeak, calibration: Calibration = CALIBRATED) -> float:
    return estimate(row.facts, calibration=calibration).total_gb * 1e9 / row.nvml_used_bytes - 1


# --- against the measured peaks --------------------------------------------------------------

def test_the_calibration_data_is_all_there(rows):
    assert len(rows) == 8
    assert {r.model for r in rows} == {"gpt2-124m", "resnet50"}
    assert {r.facts.image_size for r in rows if r.model == "resnet50"} == {224}
    assert all(r.facts.architecture is not None for r in rows)  # the rows name models the table knows


def test_every_calibration_row_is_within_its_target_in_sample(rows):
    for row in rows:
        assert -MARGIN / (1 + MARGIN) <= error(row) <= WITHIN, row


@pytest.mark.parametrize("left_out", ["gpt2-124m", "resnet50"])
def test_a_model_left_out_of_the_calibration_is_still_within_target(rows, left_out):
    """Fit on the other model's rows alone, predict this one's: the activation terms borrow nothing."""
    fitted = calibrate([r for r in rows if r.model != left_out])
    for row in (r for r in rows if r.model == left_out):
        assert -MARGIN / (1 + MARGIN) <= error(row, fitted) <= WITHIN, row


def test_shipped_constants_are_the_calibration_rounded_up(rows):
    fitted = calibrate(rows)
    assert fitted.cuda_context_gb <= CALIBRATED.cuda_context_gb <= fitted.cuda_context_gb + 0.001
    assert fitted.reserve_share <= CALIBRATED.reserve_share <= fitted.reserve_share * 1.001


def test_calibrate_recovers_the_constants_that_made_the_data():
    truth = Calibration(cuda_context_gb=0.9, reserve_share=0.12)
    synthetic = []
    for precision in ("fp32", "bf16"):
        for facts in (ModelFacts(model="gpt2-medium", batch_size=4, sequence_length=512),
                      ModelFacts(model="vit-b-16", batch_size=64), ModelFacts(model="resnet101", batch_size=32)):
            facts = replace(facts, precision=precision)
            nvml = round(estimate(facts, calibration=truth).total_gb * 1e9)
            synthetic.append(MeasuredPeak("synthetic", facts, nvml - int(1.5e9), nvml - int(0.9e9), nvml))
    fitted = calibrate(synthetic)
    assert fitted.cuda_context_gb == pytest.approx(0.9)
    assert fitted.reserve_share == pytest.approx(0.12, rel=1e-4)


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


# --- the terms per model kind --------------------------------------------------------------

def test_the_rows_allocated_peaks_are_their_counted_terms(rows):
    """Before any fitted constant: the forward pass's end (weights, optimizer state, every activation the layers
    save, counted from the architecture) is within 5% of what PyTorch allocated at its peak, for the transformer
    and the CNN rows alike."""
    for row in rows:
        figures = estimate(row.facts)
        allocated = figures.weights_gb + figures.optimizer_gb + max(figures.activations_gb,
                                                                    figures.gradients_gb + figures.step_gb)
        assert allocated == pytest.approx(row.peak_allocated_bytes / 1e9, rel=0.05), row


def test_a_cnn_row_is_its_feature_maps(rows):
    maps = resnet_feature_maps(architecture("resnet50"), 224)
    assert 20e6 < maps.floats < 23e6 and maps.indices == 64 * 56 * 56  # ~86 MB per image at fp32
    assert maps.largest_map == 64 * 112 * 112  # the stem convolution's output
    for row in (r for r in rows if r.model == "resnet50"):
        element = 4 if row.facts.precision == "fp32" else 2
        per_image = maps.floats * element + maps.indices * 8 + maps.largest_map * element  # + cuDNN's workspace
        assert estimate(row.facts).activations_gb * 1e9 == pytest.approx(row.facts.batch_size * per_image)
    deeper = resnet_feature_maps(architecture("resnet101"), 224)
    assert deeper.floats - maps.floats == 17 * (2 * 256 + 2 * 256 + 2 * 1024) * 14 * 14  # 17 more 256-wide blocks


def test_a_gpt2_layer_keeps_what_gelu_new_saves(rows):
    """Hugging Face's GPT-2 (`gelu_new` in Python ops, dropout 0.1) against a generic GELU block of the same width."""
    gpt2 = next(r for r in rows if r.model == "gpt2-124m" and r.facts.precision == "fp32")
    shape = shape_of(gpt2.facts)[0]
    assert (shape.mlp, shape.dropout) == ("gelu_tanh", True)
    h = 768
    fp32 = layer_bytes_per_token(gpt2.facts, shape, 512)
    assert fp32 == 2 * h * 4 + 6 * h * 4 + 12 * 4 + (h + 5 * 4 * h) * 4 + 2 * h  # norms, attention, MLP, masks
    amp = layer_bytes_per_token(replace(gpt2.facts, precision="bf16"), shape, 512)
    assert amp == 2 * h * 4 + 6 * h * 2 + 12 * 4 + h * 2 + 4 * h * (4 + 4 + 4 + 2 + 2) + 2 * h
    plain = layer_bytes_per_token(gpt2.facts, replace(shape, mlp="gelu", dropout=False), 512)
    assert plain == 2 * h * 4 + 6 * h * 4 + 12 * 4 + (h + 2 * 4 * h) * 4


def test_a_vit_row_counts_its_tokens_not_its_pixels():
    vit = ModelFacts(model="vit-b-16", precision="bf16", batch_size=64)
    shape, assumptions = shape_of(vit)
    assert (shape.layers, shape.hidden, shape.heads, shape.patch_size) == (12, 768, 12, 16)
    assert assumptions == ()
    tokens = 64 * (14 * 14 + 1)  # patches and the class token
    per_token = layer_bytes_per_token(vit, shape, 197)
    assert per_token == 2 * 768 * 4 + (6 * 768) * 2 + 12 * 4 + (768 + 2 * 3072) * 2  # norms, attention, MLP
    layers = 12 * tokens * per_token
    got = estimate(vit).activations_gb * 1e9
    assert layers < got < layers * 1.1  # plus the patch embedding and the final norm
    coarse = estimate(ModelFacts(model="vit-b-32", precision="bf16", batch_size=64)).activations_gb * 1e9
    assert coarse == pytest.approx(got * (7 * 7 + 1) / 197, rel=0.1)  # 50 tokens an image instead of 197
    # Memory-efficient attention keeps no scores, so heads change nothing; eager attention keeps heads x tokens^2.
    eager = estimate(replace(vit, attention="eager")).activations_gb * 1e9
    assert eager - got == pytest.approx(12 * 64 * 12 * 197 ** 2 * (4 + 2), rel=1e-9)
    more_heads = estimate(replace(vit, heads=24, attention="eager")).activations_gb
    assert more_heads > estimate(replace(vit, attention="eager")).activations_gb
    # The same size without a patch size is a CNN, and gets a CNN's count (of feature maps), not a ViT's.
    cnn = estimate(ModelFacts(parameters=vit.total_parameters, precision="bf16", batch_size=64, image_size=224))
    assert cnn.assumptions and "resnet50" in cnn.assumptions[0]
    maps = resnet_feature_maps(architecture("resnet50"), 224)
    assert cnn.activations_gb * 1e9 == pytest.approx(64 * (maps.floats * 2 + maps.indices * 8 + maps.largest_map * 2))


def test_a_vit_without_patch_size_or_with_a_sequence_is_refused():
    with pytest.raises(BadFact, match="patch_size: only a vision transformer has patches"):
        ModelFacts(model="resnet50", patch_size=16)
    with pytest.raises(BadFact, match="sequence_length: an image model"):
        ModelFacts(model="vit-b-16", sequence_length=512)
    derived = ModelFacts(parameters=86e6, patch_size=16, image_size=224, batch_size=8)
    assert derived.kind == "vit" and shape_of(derived)[0].heads == 12  # hidden 768 / 64


# --- the allocator's reserve ---------------------------------------------------------------

def test_the_reserve_of_a_large_model_with_a_small_batch_does_not_shrink_with_its_activations():
    """GPT-2 XL, one sequence of 512: the activations are small, the model's tensors are not. The caching allocator
    rounds each tensor of 10 MiB or more to a 2 MiB segment (1 MiB lost on average) for every copy, and the step
    of foreach AdamW holds sqrt(v) for every tensor at once (4 bytes per parameter)."""
    small_batch = ModelFacts(model="gpt2-xl", precision="fp32", batch_size=1, sequence_length=512)
    figures = estimate(small_batch)
    xl = architecture("gpt2-xl")
    matrix = (xl.parameters - xl.vocab * xl.hidden) / (xl.layers * 4) * 4  # bytes of an average weight matrix
    assert matrix > 10 * MIB
    copies = 5  # weights, gradients, m, v, the step's sqrt(v)
    rounding = (xl.layers * 4 + 1) * copies * MIB  # the 48 blocks' matrices and the tied embedding
    assert figures.reserve_gb * 1e9 == pytest.approx(CALIBRATED.reserve_share * figures.activations_gb * 1e9
                                                     + rounding)
    assert figures.step_gb == pytest.approx(xl.parameters * 4 / 1e9)
    assert figures.gradients_gb + figures.step_gb > figures.activations_gb  # this job peaks in the optimizer step
    assert figures.total_gb == pytest.approx(figures.weights_gb + figures.optimizer_gb + figures.gradients_gb
                                             + figures.step_gb + figures.reserve_gb + figures.cuda_context_gb)
    # A reserve scaled with activations alone would shrink with the batch; this one keeps the model's part.
    large_batch = estimate(replace(small_batch, batch_size=16))
    model_part = figures.reserve_gb - CALIBRATED.reserve_share * figures.activations_gb
    assert large_batch.reserve_gb - CALIBRATED.reserve_share * large_batch.activations_gb == pytest.approx(model_part)
    assert model_part > 0.9
    # More layers of the same width: more tensors to round, more reserve, at equal activations per layer.
    deeper = estimate(replace(small_batch, model=None, parameters=xl.parameters * 2, layers=96, hidden_size=1600,
                              vocab_size=50_257))
    assert deeper.reserve_gb - CALIBRATED.reserve_share * deeper.activations_gb > 1.9 * rounding / 1e9


def test_small_tensors_are_not_rounded():
    tiny = estimate(ModelFacts(model="gpt2-124m", precision="fp32", batch_size=4, sequence_length=512))
    embedding_copies = 5 * MIB  # 50,257 x 768 x 4 bytes: the only tensor over 10 MiB, in each of 5 copies
    assert tiny.reserve_gb * 1e9 == pytest.approx(CALIBRATED.reserve_share * tiny.activations_gb * 1e9
                                                  + embedding_copies)


# --- the shape table ------------------------------------------------------------------------

def test_the_table_names_its_sources_and_its_counts_hold():
    for arch in ARCHITECTURES.values():
        assert arch.source, arch.name
        if arch.kind != "cnn":  # a transformer's parameters are mostly 12 x layers x hidden^2 (SwiGLU wider)
            attention = 2 * arch.hidden ** 2 + 2 * arch.hidden * arch.kv_width
            body = arch.layers * (attention + (3 if arch.mlp == "swiglu" else 2) * arch.hidden * arch.ffn)
            assert 0.6 < body / arch.parameters < 1.05, arch.name
    assert normalise("meta-llama/Meta-Llama-3-8B") == "llama-3-8b" and normalise("ViT_B_16") == "vit-b-16"
    assert architecture("gpt2").parameters == 124_439_808  # the calibration rows' model


def test_a_named_model_fills_in_the_facts_not_given():
    named = ModelFacts(model="llama-3-8b", batch_size=4, sequence_length=2048)
    spelled = ModelFacts(parameters=8_030_261_248, batch_size=4, sequence_length=2048, layers=32, hidden_size=4096,
                         vocab_size=128_256)
    assert estimate(named).weights_gb == estimate(spelled).weights_gb
    assert estimate(named).assumptions == ()
    # Grouped-query attention and SwiGLU: the named model keeps narrower K and V, a wider MLP.
    shape = shape_of(named)[0]
    assert (shape.kv_heads, shape.ffn, shape.norm) == (8, 14_336, "rmsnorm")
    # A fact beside the name replaces the table's.
    assert estimate(replace(named, vocab_size=32_000)).activations_gb < estimate(named).activations_gb


def test_an_unknown_model_name_says_what_is_known():
    with pytest.raises(BadFact) as info:
        ModelFacts(model="gpt-5")
    assert info.value.field == "model" and "gpt2-xl" in info.value.valid and "resnet50" in info.value.valid
    with pytest.raises(BadFact, match="did you mean 'llama-3-8b'"):
        ModelFacts(model="Llama3-8B")


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
    assert got.step_gb == pytest.approx(4.0 if optimizer == "adamw" else 0.0)
    assert got.cuda_context_gb == CALIBRATED.cuda_context_gb
    assert got.peak_gb >= got.total_gb > got.peak_gb - 0.1
    assert got.required_gb(0.1) >= got.peak_gb * 1.1 > got.required_gb(0.1) - 0.1


def test_missing_facts_are_assumed_and_said():
    bare = estimate(ModelFacts(8e9, "bf16", "none"))
    assert [a.split()[0] for a in bare.assumptions] == ["batch_size", "sequence_length", "shape", "vocab_size"]
    assert bare.total_gb == estimate(ModelFacts(8e9, "bf16", "none", batch_size=1, sequence_length=2048,
                                                vocab_size=DEFAULT_VOCAB)).total_gb


@pytest.mark.parametrize("facts, field, words", [
    (dict(parameters=0), "parameters", "not a positive count"),
    (dict(), "parameters", "missing"),
    (dict(parameters=1e9, precision="fp64"), "precision", "(given: 'fp64'); valid: one of fp32, fp16, bf16"),
    (dict(parameters=1e9, optimizer="lion"), "optimizer", "(given: 'lion'); valid: one of adam, adamw"),
    (dict(parameters=1e9, attention="flash"), "attention", "(given: 'flash'); valid: one of sdpa, eager"),
    (dict(parameters=1e9, batch_size=0), "batch_size", "not a positive whole number (given: 0)"),
    (dict(parameters=1e9, vocab_size=0), "vocab_size", "not a positive whole number (given: 0)"),
    (dict(parameters=1e9, layers=2.5), "layers", "not a positive whole number (given: 2.5)"),
    (dict(parameters=1e9, hidden_size=True), "hidden_size", "not a positive whole number (given: True)"),
    (dict(parameters=1e9, activation_checkpointing="yes"), "activation_checkpointing", "not true or false"),
    (dict(parameters=1e9, trainable_parameters=2e9), "trainable_parameters",
     "exceeds parameters (1,000,000,000) (given: 2000000000.0); valid: a count above 0, at most parameters"),
    (dict(model="resnet50", trainable_parameters=30e6), "trainable_parameters", "exceeds parameters (25,557,032)"),
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

LLAMA3_8B = dict(model="llama-3-8b", precision="bf16", optimizer="adamw", batch_size=4, sequence_length=2048)


def test_lora_keeps_gradients_and_optimizer_state_for_the_adapters_alone():
    full = estimate(ModelFacts(**LLAMA3_8B))
    lora = estimate(ModelFacts(**LLAMA3_8B, trainable_parameters=42e6))
    assert lora.weights_gb == full.weights_gb == pytest.approx(8_030_261_248 * 2 / 1e9)  # the frozen backbone stays
    assert lora.gradients_gb == pytest.approx(42e6 * 4 / 1e9)  # fp32 gradients
    assert lora.optimizer_gb == pytest.approx(42e6 * (4 + 8) / 1e9)  # fp32 master weights, m and v
    assert lora.activations_gb == full.activations_gb  # the backward pass still runs through every layer
    assert lora.total_gb < 0.6 * full.total_gb


def test_activation_checkpointing_keeps_each_layers_input_and_one_layer():
    plain = estimate(ModelFacts(**LLAMA3_8B))
    checkpointed = estimate(ModelFacts(**LLAMA3_8B, activation_checkpointing=True))
    tokens, shape = 4 * 2048, shape_of(ModelFacts(**LLAMA3_8B))[0]
    per_layer = layer_bytes_per_token(ModelFacts(**LLAMA3_8B), shape, 2048) * tokens
    assert (plain.activations_gb - checkpointed.activations_gb) * 1e9 == pytest.approx(
        32 * per_layer - (32 * 4096 * 4 * tokens + per_layer))
    assert checkpointed.activations_gb < 0.5 * plain.activations_gb  # the logits are not checkpointed
    one_layer = dict(LLAMA3_8B, layers=1)  # a single layer cannot keep less than itself
    assert estimate(ModelFacts(**one_layer, activation_checkpointing=True)).activations_gb == \
        estimate(ModelFacts(**one_layer)).activations_gb


@pytest.mark.parametrize("optimizer, logit_bytes", [("adamw", LOGIT_BYTES), ("none", 4.0)])
def test_vocab_size_changes_the_logits_alone(optimizer, logit_bytes):
    small = estimate(ModelFacts(**{**LLAMA3_8B, "optimizer": optimizer, "vocab_size": 50_257}))
    large = estimate(ModelFacts(**{**LLAMA3_8B, "optimizer": optimizer}))
    logits = 4 * 2048 * (128_256 - 50_257) * logit_bytes / 1e9
    assert large.activations_gb - small.activations_gb == pytest.approx(logits)


def test_the_estimator_knows_every_precision_optimizer_and_fact_a_spec_accepts():
    hint = GpuMemoryHint.model_fields
    assert set(hint["precision"].annotation.__args__) == set(BYTES_PER_PARAMETER)
    assert set(hint["optimizer"].annotation.__args__) == set(OPTIMIZER_STATE_BYTES)
    assert set(hint) - {"per_gpu_gb"} == set(asdict(ModelFacts(1.0)))


# --- monotonicity ------------------------------------------------------------------------------

parameters = st.floats(1e6, 2e11)
batches = st.integers(1, 512)
lengths = st.integers(1, 32_768)
images = st.integers(32, 1024)
precisions = st.sampled_from(sorted(BYTES_PER_PARAMETER))
optimizers = st.sampled_from(sorted(OPTIMIZER_STATE_BYTES))


@st.composite
def model_facts(draw) -> ModelFacts:
    kind = draw(st.sampled_from(["lm", "vit", "cnn"]))
    size = draw(parameters)
    optimizer = draw(optimizers)
    training = optimizer != "none"
    return ModelFacts(size, draw(precisions), optimizer, draw(batches),
                      sequence_length=draw(lengths) if kind == "lm" else None,
                      image_size=None if kind == "lm" else draw(images),
                      patch_size=draw(st.sampled_from([14, 16, 32])) if kind == "vit" else None,
                      trainable_parameters=draw(st.none() | st.floats(1e-4, 1.0).map(size.__mul__)) if training
                      else None,
                      activation_checkpointing=draw(st.booleans()) and training,
                      vocab_size=draw(st.none() | st.integers(1000, 300_000)) if kind == "lm" else None,
                      layers=draw(st.none() | st.integers(1, 128)) if kind != "cnn" else None,
                      hidden_size=draw(st.none() | st.integers(64, 16_384)) if kind != "cnn" else None,
                      attention=draw(st.sampled_from(["sdpa", "eager"])))


def total(facts: ModelFacts, **changes) -> float:
    changed = {**asdict(facts), **changes}
    if changed["optimizer"] == "none":  # inference trains nothing
        changed.update(trainable_parameters=None, activation_checkpointing=False)
    return estimate(ModelFacts(**changed)).total_gb


@settings(max_examples=200, deadline=None)
@given(model_facts(), st.floats(1.0, 100.0), st.integers(1, 64))
def test_more_parameters_batch_sequence_or_pixels_never_need_less(facts, factor, extra):
    base = total(facts)
    if facts.layers is not None and facts.hidden_size is not None or facts.kind == "cnn":  # else the shape moves
        assert total(facts, parameters=facts.parameters * factor) >= base
    assert total(facts, batch_size=facts.batch_size + extra) >= base
    if facts.vocab_size is not None:
        assert total(facts, vocab_size=facts.vocab_size + extra) >= base
    if facts.layers is not None and facts.hidden_size is not None:  # one alone trades depth for width
        assert total(facts, layers=facts.layers + extra) >= base
    if facts.sequence_length is not None:
        assert total(facts, sequence_length=facts.sequence_length + extra) >= base
    elif facts.kind == "cnn":
        assert total(facts, image_size=facts.image_size + 4 * extra) >= base
    else:
        assert total(facts, image_size=facts.image_size + facts.patch_size * extra) >= base


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
def test_optimizers_order_adamw_sgd(facts):
    adamw, adam = total(facts, optimizer="adamw"), total(facts, optimizer="adam")
    momentum, sgd = (total(facts, optimizer=o) for o in ("sgd_momentum", "sgd"))
    assert adamw == adam >= momentum >= sgd
    assert momentum == total(facts, optimizer="adafactor")


@settings(max_examples=200, deadline=None)
@given(model_facts())
def test_narrower_precision_never_needs_more_but_for_amps_logits(facts):
    estimates = {p: estimate(ModelFacts(**{**asdict(facts), "precision": p}))
                 for p in ("fp32", "bf16", "fp16", "fp8", "int8", "int4")}
    assert estimates["bf16"] == estimates["fp16"]
    assert (estimates["bf16"].total_gb >= estimates["fp8"].total_gb == estimates["int8"].total_gb
            >= estimates["int4"].total_gb)
    # A layer keeps less at 16 bit; AMP keeps more of what it upcasts: a language model's logits for the loss
    # (20 bytes a logit against fp32's 16), a ViT's fp32 image beside its 16-bit copy.
    shape = shape_of(facts)[0]
    if facts.kind == "cnn":
        assert estimates["fp32"].activations_gb >= estimates["bf16"].activations_gb
    else:
        wide, narrow = (layer_bytes_per_token(replace(facts, precision=p), shape, 197) for p in ("fp32", "bf16"))
        assert wide >= narrow


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
    estimated = job_from("estimated", {"A100": 1}, {"parameters": "7B", "precision": "fp16", "batch_size": 8})
    named = job_from("named", {"A100": 1}, {"model": "gpt2-xl", "batch_size": 2, "sequence_length": 1024})
    assert (given_gb.gpu_memory_gb, given_gb.gpu_memory_estimated) == (30, False)
    assert given_gb.gpu_memory_needed(0.25) == 30  # a figure given outright gets no margin
    assert estimated.gpu_memory_gb == estimate(ModelFacts(7e9, "fp16", "adamw", batch_size=8)).peak_gb
    assert estimated.gpu_memory_estimated
    assert named.gpu_memory_gb == estimate(ModelFacts(model="gpt2-xl", batch_size=2, sequence_length=1024)).peak_gb
    assert job_from("none", {"A100": 1}).gpu_memory_gb is None


def test_a_gpu_fits_only_with_the_policys_margin(catalog_offers, tmp_path):
    """An estimate just under 80 GB fits an H100 without a margin, not with the default 10%."""
    facts = {"model": "gpt2-xl", "precision": "bf16", "batch_size": 6, "sequence_length": 1024}
    job = job_from("gpt2-xl", {"A100-80GB": 1, "H100": 1}, facts)
    assert 72 < job.gpu_memory_gb < 80 < job.gpu_memory_needed(load_policy("cost-first").memory.margin)
    plan = solve(Snapshot(jobs=(job,), offers=catalog_offers), load_policy("cost-first"))
    reason = plan.reason_of("gpt2-xl")
    assert reason.code is ReasonCode.INSUFFICIENT_GPU_MEMORY
    assert f"an estimated {job.gpu_memory_gb:g} GB + the policy's 10% margin" in reason.message
    no_margin = tmp_path / "no-margin.yaml"
    no_margin.write_text("name: no-margin\nmemory:\n  margin: 0\n")
    plan = solve(Snapshot(jobs=(job,), offers=catalog_offers), load_policy(no_margin))
    by_id = {o.id: o for o in catalog_offers}
    assert by_id[plan.placement_of("gpt2-xl").offer_id].gpu_memory_gb == 80


def test_a_bad_margin_is_named(tmp_path):
    from placement.yamlio import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmemory:\n  margin: 1.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3.*memory\.margin"):
        load_policy(bad)


def test_a_model_too_big_for_every_gpu_is_queued_for_memory(catalog_offers):
    facts = {"model": "llama-3-70b", "batch_size": 1, "sequence_length": 4096}
    job = job_from("llama-70b-full", {"H100": 8, "H200": 8, "B200": 8, "B300": 8}, facts)
    assert job.gpu_memory_gb > max(o.gpu_memory_gb for o in catalog_offers)
    plan = solve(Snapshot(jobs=(job,), offers=catalog_offers), load_policy("cost-first"))
    assert plan.placements == ()
    reason = plan.reason_of(job.id)
    assert reason.code is ReasonCode.INSUFFICIENT_GPU_MEMORY and "10% margin" in reason.message


EXAMPLES = Path(__file__).resolve().parent.parent / "configs" / "jobs"


def test_every_shipped_example_fits_a_gpu_it_asks_for():
    """The examples describe real jobs (LoRA on Llama 3 8B, GPT 1.3B pre-training with checkpointing)."""
    hinted = [job for job in to_jobs(load_specs([EXAMPLES])) if job.gpu_memory_gb is not None]
    assert {"finetune-llama3-lora", "pretrain-gpt-1b3"} <= {job.id for job in hinted}
    for job in hinted:
        largest = max(gpu_memory_gb(d.accelerator) for d in job.demands if d.accelerator)
        assert job.gpu_memory_needed(DEFAULT_MARGIN) <= largest, job.id


def test_a_smaller_model_goes_to_a_gpu_with_enough_memory(catalog_offers):
    single = {"A10": 1, "A6000": 1, "A100": 1, "H100": 1}
    facts = {"parameters": "1.3B", "precision": "bf16", "optimizer": "adamw", "batch_size": 6, "sequence_length": 1024}
    unhinted, hinted = job_from("unhinted", single), job_from("gpt-1b3", single, facts)
    too_small = job_from("gpt-1b3-small-gpus", {"A10": 1, "A6000": 1, "A100": 1}, facts)
    assert 48 < hinted.gpu_memory_needed(DEFAULT_MARGIN) <= 80  # more than an A6000 has, less than an H100
    plan = solve(Snapshot(jobs=(unhinted, hinted, too_small), offers=catalog_offers), load_policy("cost-first"))
    by_id = {o.id: o for o in catalog_offers}
    cheapest = by_id[plan.placement_of("unhinted").offer_id]
    assert cheapest.gpu_memory_gb < hinted.gpu_memory_gb  # without the estimate, a GPU too small would do
    chosen = by_id[plan.placement_of("gpt-1b3").offer_id]
    assert chosen.gpu_memory_gb >= hinted.gpu_memory_needed(DEFAULT_MARGIN) and chosen.gpu == "H100"
    assert plan.reason_of("gpt-1b3-small-gpus").code is ReasonCode.INSUFFICIENT_GPU_MEMORY
