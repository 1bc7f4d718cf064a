"""Peak GPU memory per GPU of a training or inference job, from the model's facts.

The estimate is a central figure; placement adds the policy's stated margin (`memory.margin`):
a GPU fits when estimate x (1 + margin) <= its memory. The central figure is

    weights + optimizer + max(activations, gradients + optimizer step) + allocator reserve + CUDA context

- model states (ZeRO, Rajbhandari et al. 2020): weights at their precision; an fp32 master copy of weights
  stored narrower than fp32 and the optimizer's fp32 state (Adam: m and v); fp32 gradients (PyTorch AMP
  keeps fp32 parameters). AdamW in bf16 is 2 + 4 + 4 + 8 = 18 bytes per parameter, in fp32 4 + 4 + 8 = 16.
  With `trainable_parameters` (LoRA, adapters, a frozen backbone) gradients, master weights and optimizer
  state are held for those alone;
- two phases: the forward pass ends holding every activation the backward pass needs, and no gradients
  yet (PyTorch's `zero_grad` sets them to None; the backward frees activations as it makes gradients);
  the optimizer step holds the gradients and its temporaries (PyTorch's default foreach Adam materialises
  sqrt(v) for every tensor at once: 4 bytes per trained parameter; SGD steps in place). The peak is the
  larger: a large model with a small batch peaks in the step;
- activations, counted per model kind from what the layers save for the backward pass (no constant
  borrowed from another kind):
  - transformers (language models and ViTs), per token and layer (Korthikanti et al. 2022, counted for
    PyTorch's memory-efficient attention, SDPA): each norm's input in fp32 (AMP keeps the residual stream
    in fp32; RMSNorm as Hugging Face's Llama writes it keeps a second fp32 copy), the QKV projection's
    input, Q, K and V (narrower K and V with grouped-query attention), the attention output and the output
    projection's input, the MLP's input and what its activation saves: GELU its input and output; SwiGLU
    gate, up, the SiLU and their product; GPT-2's `gelu_new`, written in Python ops, five tensors
    (x, tanh, 1 + tanh, 0.5 x, the output; under AMP three of them fp32, `pow` autocasting); 1-byte
    dropout masks where the model trains with dropout; `attention: eager` adds heads x tokens^2 scores per
    layer. A ViT's tokens are (image_size / patch_size)^2 + 1 (the class token); a language model adds its
    logits: 12 bytes each (the fp32 logits, or AMP's upcast, the log-softmax and its gradient);
  - CNNs (ResNets), per image from the architecture's feature maps: every convolution's output (the batch
    norm's input) and every ReLU's output (the next convolution's input), the stem's max-pool indices
    (int64); at 16 bit the tensors are half as wide, the indices are not; and cuDNN's convolution
    workspace, taken as one largest feature map;
- the caching allocator's reserve: what PyTorch holds in cached segments beyond the peak allocation. The
  allocator rounds blocks to 512 B and gives every tensor of 10 MiB or more its own segment rounded up to
  2 MiB, and keeps segments: the rounding costs about 1 MiB per large tensor, per copy (weights, gradients,
  master weights, each optimizer buffer, the step's temporary), so it grows with the number of layers and
  the size of the largest tensors, not with activations; and the blocks activations free and re-allocate
  at other sizes fragment the cache in proportion to them (`reserve_share`, calibrated);
- the CUDA context (driver, cuBLAS workspace, NVML's own reservation; calibrated).

Where the facts leave the model's shape out, `model:` names a row of `placement.model_shapes` (GPT-2,
Llama, Mistral, ViT, ResNet), else the shape is derived from the parameter count (P ~ 12 x layers x
hidden^2 at a fixed hidden/layers ratio, a GELU MLP; without `vocab_size` a large vocabulary is assumed;
an image model without `patch_size` is taken for a ResNet-50 at its resolution). Each GPU is assumed to
hold a whole replica (data parallel); sharded training needs less per GPU: give `per_gpu_gb` for it. Sizes
are decimal GB (10^9 bytes), which errs large against GPU sizes: an "80 GB" H100 holds 85.5e9 bytes.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from placement.model_shapes import ARCHITECTURES, Architecture, Kind, architecture, normalise

GB = 1e9
MIB = 2 ** 20

BYTES_PER_PARAMETER = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
MASTER_WEIGHT_BYTES = 4.0  # fp32 copy of weights stored narrower, for the optimizer step
GRADIENT_BYTES = 4.0
OPTIMIZER_STATE_BYTES = {
    "adam": 8.0, "adamw": 8.0,  # m and v in fp32
    "adafactor": 4.0,  # factored second moment (negligible) plus a first moment, often kept
    "sgd_momentum": 4.0,
    "sgd": 0.0,
    "none": 0.0,  # inference
}
STEP_TEMPORARY_BYTES = {"adam": 4.0, "adamw": 4.0}  # foreach Adam's sqrt(v), every tensor at once
INFERENCE = "none"
ATTENTION = ("sdpa", "eager")
DEFAULT_MARGIN = 0.10  # the policy's default `memory.margin`
UNDER_WEIGHT = 3.0  # calibration: an under-estimate counts three times an over-estimate

HIDDEN_PER_LAYER = 64  # hidden size / layers: GPT-2 small, BERT-base, ViT-B; GPT-2 XL is deeper (33), Llama wider (128)
HEAD_WIDTH = 64  # hidden / heads where the heads are not given
DEFAULT_VOCAB = 128_256  # Llama 3's; GPT-2's is 50,257, Qwen 2's 151,646
DEFAULT_BATCH = 1
DEFAULT_SEQUENCE = 2048
DEFAULT_IMAGE = 224
DEFAULT_CNN = "resnet50"  # what an image model without patch_size or model is taken for
LOGIT_BYTES = 12.0  # per logit of a causal-LM loss: the fp32 logits (or AMP's upcast), log-softmax, its gradient
INFERENCE_LOGIT_BYTES = 4.0  # fp32 logits of a prefill
MASK_BYTES = 1.0  # a dropout mask element
CONV_WORKSPACE_MAPS = 1.0  # cuDNN's convolution workspace, in the batch's largest feature maps
INDEX_BYTES = 8.0  # a max-pool index (int64)
LARGE_TENSOR_BYTES = 10 * MIB  # the caching allocator's kMinLargeAlloc: from here a tensor has its own segment...
ROUNDING_WASTE_BYTES = 1 * MIB  # ...rounded up to 2 MiB (kRoundLarge): 1 MiB lost on average


@dataclass(frozen=True, slots=True)
class Calibration:
    """The free constants, fitted on measured peaks (`calibrate`)."""

    cuda_context_gb: float  # what NVML counts beyond the allocator's reservation
    reserve_share: float  # cached-but-free bytes per byte of activations (fragmentation)


# Calibrated by `calibrate()` on configs/telemetry/h100_training_memory_calibration.csv (8 rows: GPT-2 124M with
# AdamW, ResNet-50 with SGD+momentum, fp32 and bf16, on an H100 80GB HBM3), at the default margin;
# `python benchmarks/memory_estimator.py` recomputes them and reports the leave-one-model-out errors.
CALIBRATED = Calibration(cuda_context_gb=1.32, reserve_share=0.2154)  # rounded up


class BadFact(ValueError):
    """A fact the estimator cannot use: `field` names it, `given` and `valid` say what it is and could be."""

    def __init__(self, field: str, problem: str, given: object, valid: str) -> None:
        super().__init__(f"{field}: {problem} (given: {given!r}); valid: {valid}")
        self.field, self.problem, self.given, self.valid = field, problem, given, valid


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What a spec's `gpu_memory:` hint says about the model (batch size is per GPU).

    `model` names a row of `placement.model_shapes`; facts given beside it replace the row's."""

    parameters: float | None = None
    precision: str = "bf16"
    optimizer: str = "adamw"
    batch_size: int | None = None
    sequence_length: int | None = None
    image_size: int | None = None  # pixels per side
    trainable_parameters: float | None = None  # LoRA, adapters, a frozen backbone; None: all of them
    activation_checkpointing: bool = False
    vocab_size: int | None = None
    layers: int | None = None
    hidden_size: int | None = None
    model: str | None = None
    patch_size: int | None = None  # ViT
    heads: int | None = None
    attention: str = "sdpa"  # sdpa (memory-efficient, FlashAttention) or eager (keeps the scores)

    def __post_init__(self) -> None:
        if self.model is not None and architecture(self.model) is None:
            near = difflib.get_close_matches(normalise(str(self.model)), list(ARCHITECTURES), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise BadFact("model", "not a model this estimator knows" + hint, self.model,
                          "one of " + ", ".join(ARCHITECTURES) + ", or parameters with the model's shape")
        if self.parameters is None and self.model is None:
            raise BadFact("parameters", "missing", None, "a parameter count, or model: <name>")
        if self.parameters is not None and not self.parameters > 0:
            raise BadFact("parameters", "not a positive count", self.parameters, "a number above 0")
        for name, table in (("precision", BYTES_PER_PARAMETER), ("optimizer", OPTIMIZER_STATE_BYTES)):
            if getattr(self, name) not in table:
                raise BadFact(name, "unknown", getattr(self, name), "one of " + ", ".join(table))
        if self.attention not in ATTENTION:
            raise BadFact("attention", "unknown", self.attention, "one of " + ", ".join(ATTENTION))
        for name in ("batch_size", "sequence_length", "image_size", "vocab_size", "layers", "hidden_size",
                     "patch_size", "heads"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise BadFact(name, "not a positive whole number", value, "a whole number above 0")
        if not isinstance(self.activation_checkpointing, bool):
            raise BadFact("activation_checkpointing", "not true or false", self.activation_checkpointing,
                          "true or false")
        kind = self.kind
        if self.sequence_length is not None and kind != "lm":
            raise BadFact("sequence_length", f"an image model ({kind}) has no sequence", self.sequence_length,
                          "image_size for an image model, or no image_size / patch_size for a language model")
        if self.patch_size is not None and kind != "vit":
            raise BadFact("patch_size", f"only a vision transformer has patches, this is a {kind} model",
                          self.patch_size, "no patch_size, or a ViT (model: vit-b-16, ...)")
        if self.trainable_parameters is not None:
            if not self.training:
                raise BadFact("trainable_parameters", "inference (optimizer: none) trains no parameters",
                              self.trainable_parameters,
                              "no trainable_parameters, or a training optimizer (adamw, ...)")
            total = self.total_parameters
            if not 0 < self.trainable_parameters <= total:
                whole = f"{total:,.0f}"
                raise BadFact("trainable_parameters", f"exceeds parameters ({whole})" if self.trainable_parameters > 0
                              else "not a positive count", self.trainable_parameters,
                              f"a count above 0, at most parameters ({whole})")
        if self.activation_checkpointing and not self.training:
            raise BadFact("activation_checkpointing", "inference (optimizer: none) keeps no activations to "
                          "checkpoint", True, "false, or a training optimizer (adamw, ...)")

    @property
    def training(self) -> bool:
        return self.optimizer != INFERENCE

    @property
    def architecture(self) -> Architecture | None:
        return architecture(self.model) if self.model is not None else None

    @property
    def kind(self) -> Kind:
        """lm, vit or cnn: the named model's, else a ViT with patch_size, a CNN with image_size alone."""
        known = self.architecture
        if known is not None:
            return known.kind
        if self.patch_size is not None:
            return "vit"
        return "cnn" if self.image_size is not None and self.sequence_length is None else "lm"

    @property
    def total_parameters(self) -> float:
        known = self.architecture
        return self.parameters if self.parameters is not None else known.parameters  # type: ignore[union-attr]

    @property
    def trained_parameters(self) -> float:
        """The parameters that get gradients and optimizer state."""
        return self.total_parameters if self.trainable_parameters is None else self.trainable_parameters


def shape_of(facts: ModelFacts) -> tuple[Architecture, tuple[str, ...]]:
    """The model's shape: the named model's row with the facts given beside it, or derived from the parameter
    count (parameters = 12 x layers x hidden^2, at HIDDEN_PER_LAYER where neither is given), with what was
    derived or assumed."""
    p, known, kind = facts.total_parameters, facts.architecture, facts.kind
    assumptions: list[str] = []
    if kind == "cnn":
        base = known or ARCHITECTURES[DEFAULT_CNN]
        if known is None:
            assumptions.append(f"activations of a {DEFAULT_CNN} assumed (give model: for another CNN)")
        return replace(base, parameters=p), tuple(assumptions)
    layers, hidden = facts.layers, facts.hidden_size
    if known is not None:
        layers, hidden = layers or known.layers, hidden or known.hidden
    if layers is None and hidden is None:
        hidden = (HIDDEN_PER_LAYER * p / 12) ** (1 / 3)
        layers = max(1.0, hidden / HIDDEN_PER_LAYER)
    elif hidden is None:
        hidden = math.sqrt(p / (12 * layers))
    elif layers is None:
        layers = max(1.0, p / (12 * hidden ** 2))
    if known is None and (facts.layers is None or facts.hidden_size is None):
        assumptions.append(f"shape {layers:.0f} layers x {hidden:.0f} hidden derived from the parameter count")
    vocab = facts.vocab_size or (known.vocab if known is not None else 0)
    if kind == "lm" and not vocab:
        vocab = DEFAULT_VOCAB
        assumptions.append(f"vocab_size {DEFAULT_VOCAB:,} assumed")
    heads = facts.heads or (known.heads if known is not None and hidden == known.hidden else 0) or \
        max(1, round(hidden / HEAD_WIDTH))
    base = known or Architecture(facts.model or "derived", kind, p, 1, 1)
    if known is not None and hidden != known.hidden:  # a resized model keeps its build, not its widths
        base = replace(base, intermediate=0, kv_heads=0)
    shape = replace(base, parameters=p, layers=layers, hidden=hidden, heads=heads, vocab=vocab,
                    patch_size=facts.patch_size or base.patch_size)
    return shape, tuple(assumptions)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Peak memory of one GPU, by what holds it (GB). Two phases: the activations at the end of the forward
    pass, the gradients and the optimizer step's temporaries in the step; the peak holds the larger."""

    weights_gb: float
    gradients_gb: float
    optimizer_gb: float  # optimizer state and the fp32 master weights
    activations_gb: float  # kept for the backward pass (training) or one layer's working set and the KV cache
    step_gb: float  # the optimizer step's temporaries
    reserve_gb: float  # the caching allocator's cached, unallocated segments
    cuda_context_gb: float
    assumptions: tuple[str, ...] = ()  # facts the hint left out, and what was assumed

    @property
    def total_gb(self) -> float:
        return (self.weights_gb + self.optimizer_gb + max(self.activations_gb, self.gradients_gb + self.step_gb)
                + self.reserve_gb + self.cuda_context_gb)

    @property
    def peak_gb(self) -> float:
        """The total rounded up to 0.1 GB: the central figure placement adds its margin to."""
        return _round_up(self.total_gb)

    def required_gb(self, margin: float) -> float:
        """What a GPU must have with the policy's margin: the central figure x (1 + margin), rounded up to 0.1 GB
        (as `Job.gpu_memory_needed` works it out from `peak_gb`)."""
        return _round_up(self.peak_gb * (1 + margin))


def _round_up(gb: float) -> float:
    return math.ceil(round(gb * 10, 6)) / 10


def estimate(facts: ModelFacts, *, calibration: Calibration = CALIBRATED) -> Estimate:
    """Peak GPU memory per GPU: the central figure, without the policy's margin."""
    parameters = facts.total_parameters
    weights = parameters * BYTES_PER_PARAMETER[facts.precision]
    gradients = optimizer = step = 0.0
    if facts.training:
        trained = facts.trained_parameters
        gradients = trained * GRADIENT_BYTES
        optimizer = trained * (_master_bytes(facts) + OPTIMIZER_STATE_BYTES[facts.optimizer])
        step = trained * STEP_TEMPORARY_BYTES.get(facts.optimizer, 0.0)
    shape, shape_assumptions = shape_of(facts)
    activations, assumptions = _activation_bytes(facts, shape)
    reserve = calibration.reserve_share * activations + _rounding_bytes(facts, shape)
    return Estimate(weights / GB, gradients / GB, optimizer / GB, activations / GB, step / GB, reserve / GB,
                    calibration.cuda_context_gb, assumptions + shape_assumptions)


def _master_bytes(facts: ModelFacts) -> float:
    return MASTER_WEIGHT_BYTES if BYTES_PER_PARAMETER[facts.precision] < MASTER_WEIGHT_BYTES else 0.0


def _rounding_bytes(facts: ModelFacts, shape: Architecture) -> float:
    """The allocator's rounding of large tensors: ROUNDING_WASTE_BYTES per tensor of LARGE_TENSOR_BYTES or more,
    per copy of the weights (gradients, master weights, optimizer buffers, step temporaries: of fully trained
    weights; adapters are small)."""
    matrices = shape.layers * shape.matrices_per_layer
    embedding = shape.vocab * shape.hidden if shape.kind == "lm" else 0.0
    per_matrix = max(facts.total_parameters - embedding, 0.0) / max(matrices, 1.0)
    copies = [BYTES_PER_PARAMETER[facts.precision]]
    if facts.training and facts.trainable_parameters is None:
        buffers = round(OPTIMIZER_STATE_BYTES[facts.optimizer] / 4)
        copies += [GRADIENT_BYTES] + [MASTER_WEIGHT_BYTES] * (_master_bytes(facts) > 0) + [4.0] * buffers
        if facts.optimizer in STEP_TEMPORARY_BYTES:
            copies.append(STEP_TEMPORARY_BYTES[facts.optimizer])
    waste = 0.0
    for width in copies:
        waste += matrices * (per_matrix * width >= LARGE_TENSOR_BYTES)
        waste += embedding * width >= LARGE_TENSOR_BYTES
    return waste * ROUNDING_WASTE_BYTES


def _activation_bytes(facts: ModelFacts, shape: Architecture) -> tuple[float, tuple[str, ...]]:
    assumptions = []
    batch = facts.batch_size
    if batch is None:
        batch = DEFAULT_BATCH
        assumptions.append(f"batch_size {DEFAULT_BATCH} assumed")
    if shape.kind == "lm":
        sequence = facts.sequence_length
        if sequence is None:
            sequence = DEFAULT_SEQUENCE
            assumptions.append(f"sequence_length {DEFAULT_SEQUENCE} assumed")
        return _language_model_bytes(facts, shape, batch, sequence), tuple(assumptions)
    image = facts.image_size or shape.image_size
    if facts.image_size is None:
        assumptions.append(f"image_size {image} assumed" + ("" if shape.image_size else " (no image_size)"))
        image = image or DEFAULT_IMAGE
    if shape.kind == "vit":
        return _vit_bytes(facts, shape, batch, image), tuple(assumptions)
    return _cnn_bytes(facts, shape, batch, image), tuple(assumptions)


def _element_bytes(facts: ModelFacts) -> float:
    """Bytes of an activation: fp32, else 16 bit (narrower weights still compute in 16 bit)."""
    return 4.0 if facts.precision == "fp32" else 2.0


def layer_bytes_per_token(facts: ModelFacts, shape: Architecture, tokens_per_sample: float) -> float:
    """What one transformer layer keeps for its backward pass, per token (see the module's docstring)."""
    e, h = _element_bytes(facts), shape.hidden
    kv = h * (shape.kv_heads / shape.heads) if shape.kv_heads and shape.heads else h
    ffn = shape.ffn if shape.intermediate else 4 * h
    norms = 2 * h * 4.0 * (2 if shape.norm == "rmsnorm" else 1)
    attention = (4 * h + 2 * kv) * e + shape.heads * 4.0  # + the softmax's log-sum-exp per head
    if facts.attention == "eager":
        attention += shape.heads * tokens_per_sample * (4.0 + e + (MASK_BYTES if shape.dropout else 0.0))
    if shape.mlp == "gelu_tanh":  # 0.5 x (1 + tanh(...)): x (fp32: pow autocasts), tanh, 1 + tanh, 0.5 x, the output
        mlp = h * e + ffn * (5 * e if e == 4.0 else 4.0 + 4.0 + 4.0 + e + e)
    else:  # GELU: its input and output; SwiGLU: gate, up, SiLU, product
        mlp = (h + (4 if shape.mlp == "swiglu" else 2) * ffn) * e
    masks = 2 * h * MASK_BYTES if shape.dropout else 0.0
    return norms + attention + mlp + masks


def _transformer_layers(facts: ModelFacts, shape: Architecture, tokens: float, per_sample: float) -> float:
    per_token = layer_bytes_per_token(facts, shape, per_sample)
    if not facts.training:
        return tokens * per_token
    if facts.activation_checkpointing:
        kept = shape.layers * shape.hidden * 4.0 + per_token  # each layer's fp32 input, and one layer recomputed
        return tokens * min(kept, shape.layers * per_token)
    return tokens * shape.layers * per_token


def _language_model_bytes(facts: ModelFacts, shape: Architecture, batch: int, sequence: int) -> float:
    e, tokens = _element_bytes(facts), batch * sequence
    total = _transformer_layers(facts, shape, tokens, sequence) + tokens * shape.hidden * (4.0 + e)  # final norm
    if facts.training:
        total += tokens * shape.vocab * LOGIT_BYTES
    else:
        kv = shape.hidden * (shape.kv_heads / shape.heads) if shape.kv_heads and shape.heads else shape.hidden
        total += 2 * tokens * shape.layers * kv * e  # KV cache
        total += tokens * shape.vocab * INFERENCE_LOGIT_BYTES
    return total


def _vit_bytes(facts: ModelFacts, shape: Architecture, batch: int, image: int) -> float:
    e = _element_bytes(facts)
    per_sample = (image // shape.patch_size) ** 2 + 1  # patches and the class token
    tokens = batch * per_sample
    patch_embedding = batch * 3 * image ** 2 * (4.0 + (e if e < 4 else 0.0)) + tokens * shape.hidden * e
    return _transformer_layers(facts, shape, tokens, per_sample) + patch_embedding \
        + tokens * shape.hidden * (4.0 + e)  # the final norm


@dataclass(frozen=True, slots=True)
class FeatureMaps:
    """What a CNN keeps per image for its backward pass, in elements."""

    floats: float  # activations at the compute precision
    indices: float  # int64 max-pool indices
    block_inputs: float  # what activation checkpointing per block keeps
    largest_block: float
    largest_map: float  # the largest feature map (the stem convolution's output)


def resnet_feature_maps(shape: Architecture, image: int) -> FeatureMaps:
    """A torchvision ResNet's saved tensors per image: the stem (input, conv output, ReLU output, max-pool
    output and indices), then per block each convolution's output and each ReLU's output, the block's
    output, and the downsampling convolution's output in each stage's first block."""
    side = image // 2
    floats = 3 * image ** 2 + 2 * 64 * side ** 2
    side //= 2
    indices = 64 * side ** 2
    floats += 64 * side ** 2
    block_inputs, largest = 64 * side ** 2, 0.0
    for stage, (count, width) in enumerate(zip(shape.blocks, (64, 128, 256, 512))):
        out = 4 * width if shape.bottleneck else width
        for index in range(count):
            stride = 2 if index == 0 and stage > 0 else 1
            after = side // stride
            if shape.bottleneck:  # 1x1 (at the input's resolution), 3x3 (strided), 1x1 to 4 x width
                kept = 2 * width * side ** 2 + 2 * width * after ** 2 + 2 * out * after ** 2
            else:  # 3x3 (strided), 3x3
                kept = 2 * width * after ** 2 + 2 * out * after ** 2
            if index == 0 and (stage > 0 or shape.bottleneck):
                kept += out * after ** 2  # the downsampling convolution's output
            floats += kept
            largest = max(largest, kept)
            block_inputs += out * after ** 2
            side = after
    return FeatureMaps(floats, indices, block_inputs, largest, 64 * (image // 2) ** 2)


def _cnn_bytes(facts: ModelFacts, shape: Architecture, batch: int, image: int) -> float:
    maps, e = resnet_feature_maps(shape, image), _element_bytes(facts)
    workspace = maps.largest_map * CONV_WORKSPACE_MAPS * e
    if not facts.training:
        return batch * (maps.largest_block * e + workspace)
    kept = maps.floats * e + maps.indices * INDEX_BYTES
    if facts.activation_checkpointing:
        kept = min((maps.block_inputs + maps.largest_block) * e, kept)
    return batch * (kept + workspace)


# --- calibration ----------------------------------------------------------------------------

CALIBRATION_IMAGE_SIZE = 224  # the CSV leaves `seq` empty for image models: ImageNet's 224 x 224 crops
CALIBRATION_OPTIMIZERS = {"adamw": "adamw", "adam": "adam", "sgd": "sgd_momentum"}  # the CSV's SGD has momentum
CALIBRATION_CSV = Path(__file__).resolve().parents[1] / "configs" / "telemetry" / \
    "h100_training_memory_calibration.csv"  # a copy of the project's shared telemetry data, shipped with it


@dataclass(frozen=True, slots=True)
class MeasuredPeak:
    """One calibration row: a real training step's facts and the memory it took on the GPU."""

    model: str
    facts: ModelFacts
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    nvml_used_bytes: int  # what must fit: includes the CUDA context


def read_calibration(path: str | Path = CALIBRATION_CSV) -> list[MeasuredPeak]:
    """The rows of a calibration CSV that ran (`status` ok), with the facts a spec naming the model would give.

    Optional columns (`trainable`, `checkpointing`, `image`) carry what rows of LoRA, activation checkpointing
    and other resolutions measured (benchmarks/measure_memory.py writes them)."""
    rows = []
    with open(path, newline="") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            if row["status"] != "ok":
                continue
            try:
                known = architecture(row["model"])
                image = row.get("image") or None
                facts = ModelFacts(
                    parameters=float(row["params"]), precision=row["dtype"],
                    optimizer=CALIBRATION_OPTIMIZERS.get(row["optimizer"], row["optimizer"]),
                    batch_size=int(row["batch"]), sequence_length=int(row["seq"]) if row["seq"] else None,
                    image_size=None if row["seq"] else int(image or CALIBRATION_IMAGE_SIZE),
                    trainable_parameters=float(row["trainable"]) if row.get("trainable") else None,
                    activation_checkpointing=row.get("checkpointing", "") in ("1", "true", "True"),
                    model=known.name if known is not None else None)
                rows.append(MeasuredPeak(row["model"], facts, int(row["peak_allocated_bytes"]),
                                         int(row["peak_reserved_bytes"]), int(row["nvml_used_bytes"])))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return rows


def calibrate(rows: Iterable[MeasuredPeak], margin: float = DEFAULT_MARGIN) -> Calibration:
    """The constants closest to the rows' NVML peaks that keep every row within the margin (estimate x (1 + margin)
    >= measured). Closest counts an under-estimate UNDER_WEIGHT times an over-estimate (an under-estimate costs a
    run that runs out of memory, an over-estimate a larger GPU): the central figure is the rows' 75th percentile.

    The CUDA context is the largest gap between NVML's count and the allocator's reservation; the reserve
    share comes from a linear program over the rows.
    """
    from placement.solve import milp  # the solver is needed to calibrate, never to estimate

    rows = list(rows)
    if not rows:
        raise ValueError("calibrate: no calibration rows")
    context_gb = max(r.nvml_used_bytes - r.peak_reserved_bytes for r in rows) / GB
    zero = Calibration(context_gb, 0.0)
    lp = milp.LinearProgram()
    share = lp.add_var(cost=0.0, upper=10.0)
    for row in rows:
        measured = row.nvml_used_bytes / GB
        base = estimate(row.facts, calibration=zero)
        slope = estimate(row.facts, calibration=replace(zero, reserve_share=1.0)).total_gb - base.total_gb
        over, under = lp.add_var(cost=1.0, upper=1e6), lp.add_var(cost=UNDER_WEIGHT, upper=1e6)
        # (estimate - measured) / measured = over - under
        lp.add_row([share, over, under], [slope / measured, -1.0, 1.0], 1.0 - base.total_gb / measured)
        lp.add_row([share, over, under], [-slope / measured, 1.0, -1.0], base.total_gb / measured - 1.0)
        lp.add_row([share], [-slope * (1 + margin)], base.total_gb * (1 + margin) - measured)
    solution = milp.solve(lp, integer=False)
    if solution.values is None:
        raise ValueError(f"calibrate: no constants fit these rows within a {margin:.0%} margin ({solution.status})")
    return Calibration(context_gb, round(solution.values[share], 6))
