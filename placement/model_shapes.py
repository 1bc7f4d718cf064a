"""Shapes of well-known architectures, for the GPU memory estimator (`gpu_memory: {model: gpt2-xl}`).

Each row is what the estimator needs and a spec would otherwise have to say: the parameter count, the
layers and widths, the vocabulary, the heads, the patch size and native image size, and how a layer is
built (its norm, its MLP, whether it trains with dropout), with where the numbers come from. Parameter
counts are those the reference implementations report (`num_parameters()` of the Hugging Face model,
`sum(p.numel())` of the torchvision one), so they match what a measured run holds.

Sources:
- GPT-2: Radford et al. 2019, "Language Models are Unsupervised Multitask Learners", Table 2; the Hugging
  Face configs `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl` (n_layer, n_embd, n_head, vocab 50,257,
  `activation_function: gelu_new`, dropout 0.1).
- Llama 2 / Llama 3 / Mistral: the Hugging Face configs `meta-llama/Llama-2-7b-hf`, `-13b-hf`,
  `meta-llama/Meta-Llama-3-8B`, `-70B`, `mistralai/Mistral-7B-v0.1` (num_hidden_layers, hidden_size,
  intermediate_size, num_attention_heads, num_key_value_heads, vocab_size; RMSNorm, SwiGLU, no dropout).
- ViT: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", Table 1 (layers, hidden, MLP, heads);
  parameter counts of torchvision's `vit_b_16`, `vit_b_32`, `vit_l_16` (1,000 classes; dropout 0).
- ResNet: He et al. 2016, "Deep Residual Learning", Table 1 (blocks per stage); parameter counts of
  torchvision's `resnet18` ... `resnet152` (v1.5: the stride on the 3x3 convolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["lm", "vit", "cnn"]


@dataclass(frozen=True, slots=True)
class Architecture:
    """One model's shape and layer build."""

    name: str
    kind: Kind
    parameters: float
    layers: int  # transformer blocks; for a CNN, residual blocks in all
    hidden: int  # model width; for a CNN, the first stage's bottleneck width
    heads: int = 0
    kv_heads: int = 0  # grouped-query attention: fewer K and V heads (0: as many as heads)
    intermediate: int = 0  # MLP width (0: 4 x hidden)
    vocab: int = 0
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "gelu_tanh", "swiglu"] = "gelu"  # gelu_tanh: Hugging Face's `gelu_new`, in Python ops
    dropout: bool = False  # trains with dropout (a 1-byte mask per element kept)
    matrices_per_layer: int = 4  # weight matrices of one block (the allocator rounds each)
    patch_size: int = 0  # ViT
    image_size: int = 0  # the resolution it was trained at (ViT, CNN)
    blocks: tuple[int, ...] = ()  # CNN: residual blocks per stage
    bottleneck: bool = True  # CNN: ResNet bottleneck (1x1, 3x3, 1x1) or basic (3x3, 3x3) blocks
    source: str = ""

    @property
    def ffn(self) -> int:
        return self.intermediate or 4 * self.hidden

    @property
    def kv_width(self) -> float:
        """Width of K (and of V): hidden x kv_heads / heads."""
        return self.hidden * (self.kv_heads / self.heads) if self.kv_heads and self.heads else float(self.hidden)


def _gpt2(name: str, parameters: int, layers: int, hidden: int, heads: int) -> Architecture:
    return Architecture(name, "lm", parameters, layers, hidden, heads=heads, vocab=50_257, mlp="gelu_tanh",
                        dropout=True, source=f"Hugging Face config {name.replace('-124m', '')}; Radford et al. 2019")


def _llama(name: str, parameters: int, layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int,
           vocab: int, source: str) -> Architecture:
    return Architecture(name, "lm", parameters, layers, hidden, heads=heads, kv_heads=kv_heads,
                        intermediate=intermediate, vocab=vocab, norm="rmsnorm", mlp="swiglu", matrices_per_layer=7,
                        source=f"Hugging Face config {source}")


def _vit(name: str, parameters: int, layers: int, hidden: int, heads: int, patch: int) -> Architecture:
    return Architecture(name, "vit", parameters, layers, hidden, heads=heads, patch_size=patch, image_size=224,
                        source=f"Dosovitskiy et al. 2021, Table 1; torchvision {name.replace('-', '_')}")


def _resnet(name: str, parameters: int, blocks: tuple[int, ...], bottleneck: bool) -> Architecture:
    return Architecture(name, "cnn", parameters, sum(blocks), 64, image_size=224, blocks=blocks, bottleneck=bottleneck,
                        matrices_per_layer=3 if bottleneck else 2,
                        source=f"He et al. 2016, Table 1; torchvision {name}")


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    _gpt2("gpt2-124m", 124_439_808, 12, 768, 12),
    _gpt2("gpt2-medium", 354_823_168, 24, 1024, 16),
    _gpt2("gpt2-large", 774_030_080, 36, 1280, 20),
    _gpt2("gpt2-xl", 1_557_611_200, 48, 1600, 25),
    _llama("llama-2-7b", 6_738_415_616, 32, 4096, 11_008, 32, 32, 32_000, "meta-llama/Llama-2-7b-hf"),
    _llama("llama-2-13b", 13_015_864_320, 40, 5120, 13_824, 40, 40, 32_000, "meta-llama/Llama-2-13b-hf"),
    _llama("llama-3-8b", 8_030_261_248, 32, 4096, 14_336, 32, 8, 128_256, "meta-llama/Meta-Llama-3-8B"),
    _llama("llama-3-70b", 70_553_706_496, 80, 8192, 28_672, 64, 8, 128_256, "meta-llama/Meta-Llama-3-70B"),
    _llama("mistral-7b", 7_241_732_096, 32, 4096, 14_336, 32, 8, 32_000, "mistralai/Mistral-7B-v0.1"),
    _vit("vit-b-16", 86_567_656, 12, 768, 12, 16),
    _vit("vit-b-32", 88_224_232, 12, 768, 12, 32),
    _vit("vit-l-16", 304_326_632, 24, 1024, 16, 16),
    _resnet("resnet18", 11_689_512, (2, 2, 2, 2), bottleneck=False),
    _resnet("resnet34", 21_797_672, (3, 4, 6, 3), bottleneck=False),
    _resnet("resnet50", 25_557_032, (3, 4, 6, 3), bottleneck=True),
    _resnet("resnet101", 44_549_160, (3, 4, 23, 3), bottleneck=True),
    _resnet("resnet152", 60_192_808, (3, 8, 36, 3), bottleneck=True),
)}

ALIASES = {"gpt2": "gpt2-124m", "gpt2-small": "gpt2-124m", "gpt2-1.5b": "gpt2-xl", "meta-llama-3-8b": "llama-3-8b",
           "meta-llama-3-70b": "llama-3-70b", "llama-2-7b-hf": "llama-2-7b", "llama-2-13b-hf": "llama-2-13b",
           "mistral-7b-v0.1": "mistral-7b", "vit-b/16": "vit-b-16", "vit-b/32": "vit-b-32", "vit-l/16": "vit-l-16"}


def normalise(name: str) -> str:
    """`meta-llama/Meta-Llama-3-8B` -> `llama-3-8b`, `ViT_B_16` -> `vit-b-16`: the table's spelling."""
    key = name.strip().lower().replace("_", "-")
    if key not in ALIASES and "/" in key:
        key = key.rsplit("/", 1)[1]
    return ALIASES.get(key, key)


def architecture(name: str) -> Architecture | None:
    """The table's row for a model name (any spelling `normalise` knows), or None."""
    return ARCHITECTURES.get(normalise(name))
