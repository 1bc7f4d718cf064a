"""Measure GPU memory calibration rows on a machine with an NVIDIA GPU, as the shipped rows were measured.

Each case builds a model from its published shape (placement/model_shapes.py; random weights, nothing is
downloaded), runs a few real training steps with PyTorch, and records PyTorch's peak allocated and peak
reserved bytes (`torch.cuda.max_memory_allocated` / `max_memory_reserved`) and the largest GPU memory NVML
reported as used while the steps ran (sampled every 20 ms: what must fit, CUDA context included). A case that
runs out of memory is written with status `oom`. Rows go to a CSV in the calibration file's format
(configs/telemetry/h100_training_memory_calibration.csv: model, params, batch, seq, dtype, optimizer,
peak_allocated_bytes, peak_reserved_bytes, nvml_used_bytes, seconds, status), with three more columns the
estimator reads: `trainable` (LoRA: the adapters' parameters), `checkpointing` (1: activation checkpointing)
and `image` (pixels per side). `bf16` is mixed precision as in the shipped rows (fp32 parameters, bf16
autocast), except for LoRA, whose frozen base is stored in bf16 and whose adapters are fp32.

The cases are models the estimator was not fitted to: a Llama-style model with LoRA and activation
checkpointing, ViT-L/16, GPT-2 XL in mixed precision with activation checkpointing and with a small batch,
ResNet-101. Needs PyTorch with CUDA and nvidia-ml-py; transformers for the language models, torchvision for
the image models (a case whose package is missing is skipped, said so). Then:

    python benchmarks/measure_memory.py [--cases llama-3-8b-lora,vit-l-16] [--steps 3] [--out FILE]
    python benchmarks/memory_estimator.py --csv configs/telemetry/h100_training_memory_calibration.csv --csv FILE
"""

from __future__ import annotations

import argparse
import csv
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from placement.model_shapes import Architecture, architecture  # noqa: E402

HEADER = ["model", "params", "batch", "seq", "dtype", "optimizer", "peak_allocated_bytes", "peak_reserved_bytes",
          "nvml_used_bytes", "seconds", "status", "trainable", "checkpointing", "image"]
NO_GPU = 2  # exit status where the machine cannot measure


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement: a model of the shape table, its batch, and how it trains."""

    name: str
    model: str  # a row of placement/model_shapes.py
    batch: int
    sequence: int | None = None
    image: int | None = None
    dtype: str = "bf16"  # fp32, or bf16 (mixed precision)
    optimizer: str = "adamw"  # adamw, or sgd (with momentum 0.9, as the shipped rows)
    lora_rank: int = 0  # > 0: LoRA adapters of this rank on every linear layer of the blocks, the rest frozen
    checkpointing: bool = False

    @property
    def architecture(self) -> Architecture:
        found = architecture(self.model)
        if found is None:
            raise ValueError(f"case {self.name}: model {self.model!r} is not in placement/model_shapes.py")
        return found


CASES = {c.name: c for c in (
    Case("llama-3-8b-lora", "llama-3-8b", batch=4, sequence=2048, lora_rank=16, checkpointing=True),
    Case("llama-3-8b-lora-b1", "llama-3-8b", batch=1, sequence=2048, lora_rank=16, checkpointing=True),
    Case("vit-l-16", "vit-l-16", batch=64, image=224),
    Case("vit-l-16-b128", "vit-l-16", batch=128, image=224),
    Case("gpt2-xl-ckpt", "gpt2-xl", batch=8, sequence=1024, checkpointing=True),
    Case("gpt2-xl-b1-fp32", "gpt2-xl", batch=1, sequence=512, dtype="fp32"),
    Case("resnet101", "resnet101", batch=64, image=224, optimizer="sgd"),
)}


@dataclass(frozen=True, slots=True)
class Measurement:
    parameters: int
    trainable: int | None  # None: all of them
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    nvml_used_bytes: int
    seconds: float
    status: str  # ok, oom


class Gpu(Protocol):
    """The CUDA boundary: runs a case's training steps on the GPU and says what they held."""

    def measure(self, case: Case, steps: int) -> Measurement:
        ...


def gpu_problem() -> str | None:
    """Why this machine cannot measure (no PyTorch, no CUDA device, no NVML), or None."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (pip install torch, a CUDA build)"
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA device (no NVIDIA GPU, driver or CUDA build here)"
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - any NVML failure means no NVML readings
        return f"NVML is not usable ({exc}); install nvidia-ml-py and the NVIDIA driver"
    return None


def row_of(case: Case, measured: Measurement) -> dict[str, str]:
    """The CSV row of one measurement, in the calibration file's format."""
    ok = measured.status == "ok"
    return {"model": case.model, "params": str(measured.parameters), "batch": str(case.batch),
            "seq": str(case.sequence) if case.sequence else "", "dtype": case.dtype, "optimizer": case.optimizer,
            "peak_allocated_bytes": str(measured.peak_allocated_bytes) if ok else "",
            "peak_reserved_bytes": str(measured.peak_reserved_bytes) if ok else "",
            "nvml_used_bytes": str(measured.nvml_used_bytes) if ok else "",
            "seconds": f"{measured.seconds:.2f}" if ok else "", "status": measured.status,
            "trainable": str(measured.trainable) if measured.trainable is not None else "",
            "checkpointing": "1" if case.checkpointing else "", "image": str(case.image) if case.image else ""}


def write_rows(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """Append rows to a CSV, with the header when the file is new; a file with another header is refused."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="") as file:
            header = next(csv.reader(file), [])
        if header != HEADER:
            raise ValueError(f"{path}:1: header {','.join(header)} is not the measured rows' "
                             f"({','.join(HEADER)}); write to a new file")
    with open(path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=HEADER)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None, gpu: Gpu | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--steps", type=int, default=3, help="training steps per case (the peak is over all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "measured_memory.csv")
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases.split(",") if c not in CASES]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}; valid: {', '.join(CASES)}")
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if gpu is None:
        problem = gpu_problem()
        if problem is not None:
            print(f"measure_memory needs an NVIDIA GPU with PyTorch and NVML: {problem}. Nothing was measured.",
                  file=sys.stderr)
            return NO_GPU
        gpu = TorchGpu()
    rows = []
    for name in args.cases.split(","):
        case = CASES[name]
        try:
            measured = gpu.measure(case, args.steps)
        except MissingPackage as exc:
            print(f"{name}: skipped, {exc}", file=sys.stderr)
            continue
        rows.append(row_of(case, measured))
        print(f"{name}: {measured.status}, peak allocated {measured.peak_allocated_bytes / 1e9:.2f} GB, reserved "
              f"{measured.peak_reserved_bytes / 1e9:.2f} GB, NVML {measured.nvml_used_bytes / 1e9:.2f} GB "
              f"({measured.seconds:.1f} s)")
    write_rows(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


# --- on the GPU ---------------------------------------------------------------------------------------------

class MissingPackage(RuntimeError):
    """A case needs a package this machine lacks (transformers, torchvision)."""


class TorchGpu:
    """Builds each case's model on the GPU and trains it for a few steps, with NVML sampled meanwhile."""

    def __init__(self) -> None:
        import pynvml
        import torch

        self.torch, self.nvml = torch, pynvml
        pynvml.nvmlInit()
        try:
            uuid = torch.cuda.get_device_properties(torch.cuda.current_device()).uuid
            self.handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except Exception:  # noqa: BLE001 - an older PyTorch without the UUID: the first visible GPU
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)

    def measure(self, case: Case, steps: int) -> Measurement:
        torch = self.torch
        model, batch, loss_of = self._build(case)
        parameters = sum(p.numel() for p in model.parameters())
        trained = [p for p in model.parameters() if p.requires_grad]
        trainable = sum(p.numel() for p in trained) if case.lora_rank else None
        optimizer = (torch.optim.AdamW(trained, lr=1e-4) if case.optimizer == "adamw"
                     else torch.optim.SGD(trained, lr=0.1, momentum=0.9))
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        status = "ok"
        try:
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=case.dtype == "bf16"):
                    loss = loss_of(model, batch)
                loss.backward()
                optimizer.step()
            torch.cuda.synchronize()
        except torch.OutOfMemoryError:
            status = "oom"
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        allocated, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
        del model, optimizer, batch
        torch.cuda.empty_cache()
        return Measurement(parameters, trainable, allocated, reserved, peak[0], seconds, status)

    def _build(self, case: Case) -> tuple[Any, Any, Any]:
        shape = case.architecture
        torch = self.torch
        with torch.device("cuda"):
            if shape.kind == "lm":
                model = self._language_model(case, shape)
                tokens = torch.randint(0, shape.vocab, (case.batch, case.sequence))
                return model, tokens, lambda m, x: m(input_ids=x, labels=x).loss
            model = self._image_model(case)
            images = torch.randn(case.batch, 3, case.image, case.image)
            labels = torch.randint(0, 1000, (case.batch,))
            return model, (images, labels), lambda m, xy: torch.nn.functional.cross_entropy(m(xy[0]), xy[1])

    def _language_model(self, case: Case, shape: Architecture) -> Any:
        try:
            import transformers
        except ImportError:
            raise MissingPackage("transformers is not installed (pip install transformers)") from None
        torch = self.torch
        if shape.name.startswith("gpt2"):
            config = transformers.GPT2Config(n_layer=shape.layers, n_embd=shape.hidden, n_head=shape.heads,
                                             vocab_size=shape.vocab, n_positions=max(1024, case.sequence))
            model_class = transformers.GPT2LMHeadModel
        else:
            config = transformers.LlamaConfig(
                hidden_size=shape.hidden, intermediate_size=shape.ffn, num_hidden_layers=shape.layers,
                num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads or shape.heads,
                vocab_size=shape.vocab, max_position_embeddings=max(8192, case.sequence))
            model_class = transformers.LlamaForCausalLM
        config._attn_implementation = "sdpa"
        dtype = torch.bfloat16 if case.lora_rank else torch.float32  # LoRA: a bf16 base; else AMP's fp32 weights
        model = model_class._from_config(config, torch_dtype=dtype)
        if case.checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if case.lora_rank:
            self._add_lora(model, case.lora_rank)
        return model.train()

    def _add_lora(self, model: Any, rank: int) -> None:
        """Freeze the model and put a LoRA adapter (fp32 A and B, as PEFT keeps them) on every linear layer of its
        blocks (attention and MLP projections; not the head)."""
        torch = self.torch

        class LoRALinear(torch.nn.Module):
            def __init__(self, base: Any) -> None:
                super().__init__()
                self.base = base
                self.a = torch.nn.Parameter(torch.randn(rank, base.in_features, dtype=torch.float32) / rank)
                self.b = torch.nn.Parameter(torch.zeros(base.out_features, rank, dtype=torch.float32))

            def forward(self, x: Any) -> Any:
                return self.base(x) + (x.to(self.a.dtype) @ self.a.T @ self.b.T).to(x.dtype)

        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for layer in model.model.layers:
            for parent in (layer.self_attn, layer.mlp):
                for name, child in list(parent.named_children()):
                    if isinstance(child, torch.nn.Linear):
                        setattr(parent, name, LoRALinear(child))

    def _image_model(self, case: Case) -> Any:
        try:
            import torchvision
        except ImportError:
            raise MissingPackage("torchvision is not installed (pip install torchvision)") from None
        return getattr(torchvision.models, case.model.replace("-", "_"))(weights=None).train()


if __name__ == "__main__":
    sys.exit(main())
