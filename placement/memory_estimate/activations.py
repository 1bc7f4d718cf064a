"""What the forward pass keeps for the backward pass, per model kind: transformers per token and layer,
ResNets per feature map.
"""

from __future__ import annotations

from dataclasses import dataclass

from placement.memory_estimate.facts import (CONV_WORKSPACE_MAPS, DEFAULT_BATCH, DEFAULT_IMAGE, DEFAULT_SEQUENCE,
                                             INDEX_BYTES, INFERENCE_LOGIT_BYTES, LOGIT_BYTES, MASK_BYTES, ModelFacts)
from placement.model_shapes import Architecture


def activation_bytes(facts: ModelFacts, shape: Architecture) -> tuple[float, tuple[str, ...]]:
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
