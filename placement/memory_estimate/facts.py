"""A model's facts as a spec's `gpu_memory:` hint gives them, checked, with the estimator's constants and
the model's shape (named, or derived from the parameter count).

Values only, so the policy model can take its default memory margin from here.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, replace

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
