"""benchmarks/measure_memory.py on the CPU path: it refuses clearly without a GPU, and the rows it writes are
calibration rows the estimator reads back with the facts of each case. `GpuDouble` is a test double at the CUDA
boundary (the object that runs a case's training steps on the GPU): a GPU cannot be reached here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from placement.memory_estimate import estimate, read_calibration

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("measure_memory", ROOT / "benchmarks" / "measure_memory.py")
measure = importlib.util.module_from_spec(_spec)
sys.modules["measure_memory"] = measure
_spec.loader.exec_module(measure)


class GpuDouble:
    """Test double of the CUDA boundary: answers each case with the figures it is given, in the order asked."""

    def __init__(self, answers: dict[str, object]):
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    def measure(self, case, steps):
        self.asked.append((case.name, steps))
        answer = self.answers[case.name]
        if isinstance(answer, Exception):
            raise answer
        return answer


def measured(params: int, gb: float, trainable: int | None = None, status: str = "ok"):
    return measure.Measurement(params, trainable, int(gb * 1e9), int((gb + 0.5) * 1e9), int((gb + 1.8) * 1e9), 2.5,
                               status)


def test_without_a_gpu_it_says_why_and_measures_nothing(tmp_path, capsys):
    if measure.gpu_problem() is None:
        pytest.skip("this machine has a usable NVIDIA GPU")
    out = tmp_path / "rows.csv"
    assert measure.main(["--out", str(out)]) == measure.NO_GPU
    message = capsys.readouterr().err
    assert message.startswith("measure_memory needs an NVIDIA GPU with PyTorch and NVML: ")
    assert "Nothing was measured." in message and not out.exists()


def test_measured_rows_are_calibration_rows_with_each_cases_facts(tmp_path, capsys):
    gpu = GpuDouble({"llama-3-8b-lora": measured(8_072_204_288, 40.0, trainable=41_943_040),
                     "vit-l-16": measured(304_326_632, 20.0),
                     "gpt2-xl-ckpt": measured(1_557_611_200, 30.0),
                     "resnet101": measured(44_549_160, 0.0, status="oom")})
    out = tmp_path / "rows.csv"
    cases = "llama-3-8b-lora,vit-l-16,gpt2-xl-ckpt,resnet101"
    assert measure.main(["--cases", cases, "--steps", "4", "--out", str(out)], gpu=gpu) == 0
    assert gpu.asked == [(name, 4) for name in cases.split(",")]
    header, *lines = out.read_text().splitlines()
    assert header.split(",")[:11] == ["model", "params", "batch", "seq", "dtype", "optimizer", "peak_allocated_bytes",
                                      "peak_reserved_bytes", "nvml_used_bytes", "seconds", "status"]
    assert lines[-1].startswith("resnet101,44549160,64,,bf16,sgd,,,,,oom")
    llama, vit, gpt2 = read_calibration(out)  # the out-of-memory row is not a calibration point
    assert (llama.model, llama.facts.trainable_parameters, llama.facts.activation_checkpointing,
            llama.facts.sequence_length, llama.facts.batch_size) == ("llama-3-8b", 41_943_040, True, 2048, 4)
    assert llama.nvml_used_bytes == int(41.8e9) and llama.peak_reserved_bytes == int(40.5e9)
    assert (vit.facts.kind, vit.facts.image_size, vit.facts.model, vit.facts.optimizer) == ("vit", 224, "vit-l-16",
                                                                                             "adamw")
    assert gpt2.facts.activation_checkpointing and gpt2.facts.precision == "bf16"
    for row in (llama, vit, gpt2):
        estimate(row.facts)  # every row is one the estimator can work out
    assert f"wrote 4 rows to {out}" in capsys.readouterr().out
    # A second run appends under the same header.
    assert measure.main(["--cases", "vit-l-16", "--out", str(out)], gpu=gpu) == 0
    assert out.read_text().count("model,params") == 1 and len(read_calibration(out)) == 4


def test_a_case_whose_package_is_missing_is_skipped_and_said(tmp_path, capsys):
    gpu = GpuDouble({"vit-l-16": measure.MissingPackage("torchvision is not installed (pip install torchvision)"),
                     "gpt2-xl-ckpt": measured(1_557_611_200, 30.0)})
    out = tmp_path / "rows.csv"
    assert measure.main(["--cases", "vit-l-16,gpt2-xl-ckpt", "--out", str(out)], gpu=gpu) == 0
    assert "vit-l-16: skipped, torchvision is not installed" in capsys.readouterr().err
    assert [r.model for r in read_calibration(out)] == ["gpt2-xl"]


def test_bad_arguments_and_a_foreign_file_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        measure.main(["--cases", "llama-9"], gpu=GpuDouble({}))
    assert exit_info.value.code == 2 and "unknown case llama-9; valid: llama-3-8b-lora" in capsys.readouterr().err
    shipped = tmp_path / "shipped.csv"
    shipped.write_text((ROOT / "configs" / "telemetry" / "h100_training_memory_calibration.csv").read_text())
    with pytest.raises(ValueError, match=r"shipped\.csv:1: header model,params,.*,status is not the measured rows'"):
        measure.main(["--cases", "vit-l-16", "--out", str(shipped)], gpu=GpuDouble({"vit-l-16": measured(1, 1.0)}))


def test_every_case_names_a_model_of_the_shape_table():
    for case in measure.CASES.values():
        assert case.architecture.kind == ("lm" if case.sequence else "vit" if case.model.startswith("vit") else "cnn")
    kinds = {(c.lora_rank > 0, c.checkpointing, c.architecture.kind) for c in measure.CASES.values()}
    assert {(True, True, "lm"), (False, False, "vit"), (False, True, "lm")} <= kinds  # LoRA, ViT-L, AMP + checkpointing
