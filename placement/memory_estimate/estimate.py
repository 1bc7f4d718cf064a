"""The estimate: model states, the larger phase (activations, or gradients and the optimizer step), the
caching allocator's reserve and the CUDA context, per GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from placement.memory_estimate.activations import activation_bytes
from placement.memory_estimate.facts import (BYTES_PER_PARAMETER, CALIBRATED, GB, GRADIENT_BYTES, LARGE_TENSOR_BYTES,
                                             MASTER_WEIGHT_BYTES, OPTIMIZER_STATE_BYTES, ROUNDING_WASTE_BYTES,
                                             STEP_TEMPORARY_BYTES, Calibration, ModelFacts, shape_of)
from placement.model_shapes import Architecture


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
    activations, assumptions = activation_bytes(facts, shape)
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
