"""Peak GPU memory per GPU of a training or inference job, from the model's facts.

The accounting practitioners use, with its few free constants calibrated on peaks
measured on an H100 (`calibrate`):

- model states (ZeRO, Rajbhandari et al. 2020): weights at their precision; when
  training, fp32 gradients (PyTorch AMP keeps fp32 parameters, Megatron an fp32
  `main_grad`), an fp32 master copy of weights stored narrower than fp32, and the
  optimizer's fp32 state (Adam: m and v). AdamW in bf16 is 2 + 4 + 4 + 8 = 18 bytes
  per parameter, in fp32 4 + 4 + 8 = 16 (AMP's bf16 copies of the weights are the
  2 bytes fp32 lacks). With `trainable_parameters` (LoRA, adapters, a frozen
  backbone) gradients, master weights and optimizer state are held for those alone,
  the weights for all; the trainable ones are counted at the model's precision plus
  the fp32 master copy, which covers adapters PEFT keeps in fp32;
- activations kept for the backward pass (Korthikanti et al. 2022: per layer,
  batch x sequence x hidden x a constant) and the logits of the vocabulary; for
  image models, batch x pixels x (layers x hidden) x a constant; for inference, the
  KV cache, the logits and one layer's working set. Attention is taken to be
  memory-efficient (PyTorch's SDPA, FlashAttention: no sequence^2 scores kept); the
  calibration runs kept far less per token than eager attention would. Eager attention
  keeps about 5 x heads x sequence^2 bytes more per layer and sequence at 16 bit
  (Korthikanti), which this estimate does not cover. A frozen backbone keeps its
  activations too: the backward pass runs through it to reach earlier adapters, and a
  LoRA adapter needs the same input its frozen layer would;
- activation checkpointing (`activation_checkpointing`, one checkpoint per layer as in
  Hugging Face's gradient checkpointing or Megatron's full recomputation) keeps each
  layer's input alone, 2 bytes per token and hidden unit at 16 bit out of the 34 kept
  without it (Korthikanti, Table 2: 2sbhL against 34sbhL): CHECKPOINTED_SHARE = 2/34 of
  a layer per layer, plus one whole layer, recomputed while its backward runs. The share
  scales the calibrated constant, so it keeps the allocator's slack in proportion, and
  holds at fp32 too (4 bytes of 68). The logits are not checkpointed. Image models take
  the same share, as a ViT would; a CNN checkpointed in coarser segments keeps more (give
  `per_gpu_gb` for it);
- the CUDA context and the caching allocator's slack (inside the activation constants).

Where the facts leave the model's shape out (`layers`, `hidden_size`), it is derived
from the parameter count (P ~ 12 x layers x hidden^2): from whichever of the two is
given, or at a fixed hidden/layers ratio; without `vocab_size` a large vocabulary is
assumed. Both err on the large side for most models; deep, narrow models with a small
vocabulary are the exception the vocabulary margin covers.

Each GPU is assumed to hold a whole replica (data parallel). Sharded training
(FSDP, ZeRO-3, tensor parallel) needs less per GPU: give `per_gpu_gb` for it.
Sizes are decimal GB (10^9 bytes), which errs large against GPU sizes too: an
"80 GB" H100 holds 85.5e9 bytes (NVML).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path

GB = 1e9

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
INFERENCE = "none"

HIDDEN_PER_LAYER = 64  # hidden size / layers: GPT-2 small, BERT-base; GPT-2 XL is deeper (33), Llama wider (128)
DEFAULT_VOCAB = 128_256  # Llama 3's; GPT-2's is 50,257, Qwen 2's 151,646
CHECKPOINTED_SHARE = 2 / 34  # of a layer's activations, kept per layer under activation checkpointing (Korthikanti)
LOGIT_BYTES = 16.0  # per logit: fp32 logits, their shifted copy, log-softmax and its gradient (causal-LM loss)
INFERENCE_LOGIT_BYTES = 4.0  # fp32 logits of a prefill
DEFAULT_BATCH = 1
DEFAULT_SEQUENCE = 2048


@dataclass(frozen=True, slots=True)
class Calibration:
    """The free constants: bytes per unit of each activation term, per activation precision."""

    cuda_context_gb: float  # context, driver and NVML's own reservation: what NVML counts beyond the allocator
    token_bytes_fp32: float  # per token, per layer, per hidden unit (Korthikanti: 34 at 16 bit, no recomputation)
    token_bytes_16bit: float
    pixel_bytes_fp32: float  # per pixel, per (layers x hidden) of the derived shape
    pixel_bytes_16bit: float


# Calibrated by `calibrate()` on configs/telemetry/h100_training_memory_calibration.csv (8 rows with
# status ok: GPT-2 124M with AdamW, ResNet-50 with SGD+momentum, fp32 and bf16, on an H100 80GB HBM3);
# `python benchmarks/memory_estimator.py` recomputes them and reports the errors.
CALIBRATED = Calibration(  # rounded up
    cuda_context_gb=1.32,
    token_bytes_fp32=105.3,
    token_bytes_16bit=85.64,
    pixel_bytes_fp32=0.5069,
    pixel_bytes_16bit=0.2679,
)


class BadFact(ValueError):
    """A fact the estimator cannot use: `field` names it, `given` and `valid` say what it is and could be."""

    def __init__(self, field: str, problem: str, given: object, valid: str) -> None:
        super().__init__(f"{field}: {problem} (given: {given!r}); valid: {valid}")
        self.field, self.problem, self.given, self.valid = field, problem, given, valid


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What a spec's `gpu_memory:` hint says about the model (batch size is per GPU)."""

    parameters: float
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

    def __post_init__(self) -> None:
        if not self.parameters > 0:
            raise BadFact("parameters", "not a positive count", self.parameters, "a number above 0")
        for name, table in (("precision", BYTES_PER_PARAMETER), ("optimizer", OPTIMIZER_STATE_BYTES)):
            if getattr(self, name) not in table:
                raise BadFact(name, "unknown", getattr(self, name), "one of " + ", ".join(table))
        for name in ("batch_size", "sequence_length", "image_size", "vocab_size", "layers", "hidden_size"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise BadFact(name, "not a positive whole number", value, "a whole number above 0")
        if not isinstance(self.activation_checkpointing, bool):
            raise BadFact("activation_checkpointing", "not true or false", self.activation_checkpointing,
                          "true or false")
        if self.trainable_parameters is not None:
            if not self.training:
                raise BadFact("trainable_parameters", "inference (optimizer: none) trains no parameters",
                              self.trainable_parameters,
                              "no trainable_parameters, or a training optimizer (adamw, ...)")
            if not 0 < self.trainable_parameters <= self.parameters:
                whole = f"{self.parameters:,.0f}"
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
    def trained_parameters(self) -> float:
        """The parameters that get gradients and optimizer state."""
        return self.parameters if self.trainable_parameters is None else self.trainable_parameters


@dataclass(frozen=True, slots=True)
class TransformerShape:
    layers: float
    hidden: float
    vocab: float


def shape_of(facts: ModelFacts) -> tuple[TransformerShape, tuple[str, ...]]:
    """The model's shape: layers, hidden size and vocabulary as the facts give them, the rest derived
    (parameters = 12 x layers x hidden^2, at HIDDEN_PER_LAYER where neither is given, at least one layer
    deep; DEFAULT_VOCAB), with what was derived or assumed."""
    p, layers, hidden = facts.parameters, facts.layers, facts.hidden_size
    if layers is None and hidden is None:
        hidden = (HIDDEN_PER_LAYER * p / 12) ** (1 / 3)
        layers = max(1.0, hidden / HIDDEN_PER_LAYER)
    elif hidden is None:
        hidden = math.sqrt(p / (12 * layers))
    elif layers is None:
        layers = max(1.0, p / (12 * hidden ** 2))
    assumptions = []
    if facts.layers is None or facts.hidden_size is None:
        assumptions.append(f"shape {layers:.0f} layers x {hidden:.0f} hidden derived from the parameter count")
    if facts.vocab_size is None and (facts.sequence_length is not None or facts.image_size is None):
        assumptions.append(f"vocab_size {DEFAULT_VOCAB:,} assumed")
    return TransformerShape(layers, hidden, facts.vocab_size or DEFAULT_VOCAB), tuple(assumptions)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Peak memory of one GPU, by what holds it (GB)."""

    weights_gb: float
    gradients_gb: float
    optimizer_gb: float  # optimizer state and the fp32 master weights
    activations_gb: float  # with the caching allocator's slack
    cuda_context_gb: float
    assumptions: tuple[str, ...] = ()  # facts the hint left out, and what was assumed

    @property
    def total_gb(self) -> float:
        return (self.weights_gb + self.gradients_gb + self.optimizer_gb + self.activations_gb
                + self.cuda_context_gb)

    @property
    def peak_gb(self) -> float:
        """The total rounded up to 0.1 GB: what a GPU must have."""
        return math.ceil(round(self.total_gb * 10, 6)) / 10


def estimate(facts: ModelFacts, *, shape: TransformerShape | None = None,
             calibration: Calibration = CALIBRATED) -> Estimate:
    """Peak GPU memory per GPU. `shape` replaces the facts' shape where the measured model's true one
    is known (calibration)."""
    weights = facts.parameters * BYTES_PER_PARAMETER[facts.precision]
    gradients = optimizer = 0.0
    if facts.training:
        trained = facts.trained_parameters
        gradients = trained * GRADIENT_BYTES
        master = MASTER_WEIGHT_BYTES if BYTES_PER_PARAMETER[facts.precision] < MASTER_WEIGHT_BYTES else 0.0
        optimizer = trained * (master + OPTIMIZER_STATE_BYTES[facts.optimizer])
    shape_assumptions: tuple[str, ...] = ()
    if shape is None:
        shape, shape_assumptions = shape_of(facts)
    activations, assumptions = _activation_bytes(facts, shape, calibration)
    return Estimate(weights / GB, gradients / GB, optimizer / GB, activations / GB, calibration.cuda_context_gb,
                    assumptions + shape_assumptions)


def _activation_bytes(facts: ModelFacts, shape: TransformerShape,
                      k: Calibration) -> tuple[float, tuple[str, ...]]:
    assumptions = []
    batch = facts.batch_size
    if batch is None:
        batch = DEFAULT_BATCH
        assumptions.append(f"batch_size {DEFAULT_BATCH} assumed")
    sequence = facts.sequence_length
    if sequence is None and facts.image_size is None:
        sequence = DEFAULT_SEQUENCE
        assumptions.append(f"sequence_length {DEFAULT_SEQUENCE} assumed (no sequence_length or image_size)")
    fp32 = facts.precision == "fp32"  # the constants' 16-bit values serve fp16, bf16, fp8, int8 and int4
    token_bytes = k.token_bytes_fp32 if fp32 else k.token_bytes_16bit
    pixel_bytes = k.pixel_bytes_fp32 if fp32 else k.pixel_bytes_16bit
    # Training keeps every layer's activations for the backward pass, or with checkpointing each layer's
    # input and one whole layer (never more than without); inference one layer's at a time.
    if not facts.training:
        layers_kept = 1.0
    elif facts.activation_checkpointing:
        layers_kept = min(shape.layers, shape.layers * CHECKPOINTED_SHARE + 1)
    else:
        layers_kept = shape.layers

    total = 0.0
    if sequence is not None:
        tokens = batch * sequence
        total += layers_kept * tokens * shape.hidden * token_bytes
        if facts.training:
            total += tokens * shape.vocab * LOGIT_BYTES
        else:
            element = 4.0 if fp32 else 2.0  # narrower weights still compute, and cache K and V, in 16 bit
            total += 2 * tokens * shape.layers * shape.hidden * element  # KV cache
            total += tokens * shape.vocab * INFERENCE_LOGIT_BYTES
    if facts.image_size is not None:
        total += batch * facts.image_size ** 2 * layers_kept * shape.hidden * pixel_bytes
    return total, tuple(assumptions)


# --- calibration ----------------------------------------------------------------------------

# Shapes of the measured models, from their published configurations.
KNOWN_SHAPES: dict[str, TransformerShape] = {
    "gpt2-124m": TransformerShape(layers=12, hidden=768, vocab=50_257),
}
CALIBRATION_IMAGE_SIZE = 224  # the CSV leaves `seq` empty for image models: ImageNet's 224 x 224 crops
CALIBRATION_OPTIMIZERS = {"adamw": "adamw", "adam": "adam", "sgd": "sgd_momentum"}  # the CSV's SGD has momentum
CALIBRATION_CSV = Path(__file__).resolve().parents[1] / "configs" / "telemetry" / \
    "h100_training_memory_calibration.csv"  # a copy of shared/data/telemetry's, shipped with the project


@dataclass(frozen=True, slots=True)
class MeasuredPeak:
    """One calibration row: a real training step's facts and the memory it took on the GPU."""

    model: str
    facts: ModelFacts
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    nvml_used_bytes: int  # what must fit: includes the CUDA context

    @property
    def shape(self) -> TransformerShape | None:
        """The true shape, where known (None: derived from the parameter count, as for a hint)."""
        return KNOWN_SHAPES.get(self.model)


def read_calibration(path: str | Path = CALIBRATION_CSV) -> list[MeasuredPeak]:
    """The rows of a calibration CSV that ran (`status` ok)."""
    rows = []
    with open(path, newline="") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            if row["status"] != "ok":
                continue
            try:
                facts = ModelFacts(parameters=float(row["params"]), precision=row["dtype"],
                                   optimizer=CALIBRATION_OPTIMIZERS.get(row["optimizer"], row["optimizer"]),
                                   batch_size=int(row["batch"]),
                                   sequence_length=int(row["seq"]) if row["seq"] else None,
                                   image_size=None if row["seq"] else CALIBRATION_IMAGE_SIZE)
                rows.append(MeasuredPeak(row["model"], facts, int(row["peak_allocated_bytes"]),
                                         int(row["peak_reserved_bytes"]), int(row["nvml_used_bytes"])))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return rows


_MONOTONE = (("token_bytes_fp32", "token_bytes_16bit"), ("pixel_bytes_fp32", "pixel_bytes_16bit"))


def calibrate(rows: Iterable[MeasuredPeak]) -> Calibration:
    """The constants that never under-estimate a row, with the least total relative over-estimate.

    The CUDA context is the largest gap between NVML's count and the allocator's reservation.
    The activation constants come from a linear program: each row's estimate (with the model's
    true shape where known) must reach its `peak_reserved_bytes`, fp32 constants are at least
    their 16-bit twins, and the sum of estimate / measured over rows is minimised.
    """
    from placement.solve import milp  # the solver is needed to calibrate, never to estimate

    rows = list(rows)
    if not rows:
        raise ValueError("calibrate: no calibration rows")
    context_gb = max(r.nvml_used_bytes - r.peak_reserved_bytes for r in rows) / GB
    names = [f.name for f in fields(Calibration) if f.name != "cuda_context_gb"]
    zero = Calibration(context_gb, *[0.0] * len(names))

    lp = milp.LinearProgram()
    per_row = []
    for row in rows:
        base = estimate(row.facts, shape=row.shape, calibration=zero)
        constant = base.total_gb - base.cuda_context_gb  # model states and logits: no free constant in them
        terms = [estimate(row.facts, shape=row.shape, calibration=replace(zero, **{n: 1.0})).activations_gb
                 - base.activations_gb for n in names]
        per_row.append((row.peak_reserved_bytes / GB, constant, terms))
    for index, name in enumerate(names):
        lp.add_var(cost=sum(terms[index] / target for target, _, terms in per_row), upper=1e6)
    for target, constant, terms in per_row:
        used = [i for i, t in enumerate(terms) if t]
        lp.add_row(used, [-terms[i] for i in used], constant - target)
    for wide, narrow in _MONOTONE:
        lp.add_row([names.index(narrow), names.index(wide)], [1.0, -1.0], 0.0)
    solution = milp.solve(lp, integer=False)
    if solution.values is None:
        raise ValueError(f"calibrate: no constants fit these rows ({solution.status})")
    return Calibration(context_gb, **{n: round(v, 6) for n, v in zip(names, solution.values)})
