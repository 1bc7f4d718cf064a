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

The package: `facts` (the model's facts, constants, its shape), `activations`, `estimate`, and
`calibration` (fitting the free constants on measured peaks, read from a CSV).
"""

from placement.memory_estimate.activations import layer_bytes_per_token, resnet_feature_maps
from placement.memory_estimate.calibration import CALIBRATION_CSV, MeasuredPeak, calibrate, read_calibration
from placement.memory_estimate.estimate import Estimate, estimate
from placement.memory_estimate.facts import (BYTES_PER_PARAMETER, CALIBRATED, DEFAULT_MARGIN, DEFAULT_VOCAB, GB,
                                             LOGIT_BYTES, MIB, OPTIMIZER_STATE_BYTES, BadFact, Calibration, ModelFacts,
                                             shape_of)

__all__ = ["BYTES_PER_PARAMETER", "CALIBRATED", "CALIBRATION_CSV", "DEFAULT_MARGIN", "DEFAULT_VOCAB", "GB",
           "LOGIT_BYTES", "MIB", "OPTIMIZER_STATE_BYTES", "BadFact", "Calibration", "Estimate", "MeasuredPeak",
           "ModelFacts", "calibrate", "estimate", "layer_bytes_per_token", "read_calibration",
           "resnet_feature_maps", "shape_of"]
