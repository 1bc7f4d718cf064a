"""How far the GPU memory estimator is from real peaks on an H100.

Recalibrates the estimator's constants on the calibration CSV (real training steps on an
H100 80GB HBM3: GPT-2 124M with AdamW, ResNet-50 with SGD+momentum, fp32 and bf16) and
compares them with the shipped ones. For every row it prints the measured NVML peak (what
must fit in the GPU, CUDA context included) against two estimates with the shipped constants:

- `hint`: from the facts a spec gives (parameters, precision, optimizer, batch, sequence
  or image size), the model's shape derived from its size: what placement uses;
- `shape`: with the measured model's true layers, hidden size and vocabulary: how well the
  model itself fits.

Then, for each: how many rows are under-estimated, the mean and max relative error. Last, the
estimate of every example spec in configs/jobs that gives the model's facts, against the largest
GPU it asks for (no measurement: what placement will require of those jobs). Writes JSON.

    python benchmarks/memory_estimator.py [--csv FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clouds.gpus import gpu_memory_gb  # noqa: E402
from placement.memory_estimate import (CALIBRATED, CALIBRATION_CSV, Estimate, MeasuredPeak, calibrate,  # noqa: E402
                                       estimate, read_calibration)
from placement.spec import load_specs, to_job  # noqa: E402

EXAMPLES = ROOT / "configs" / "jobs"


def relative_error(estimate_gb: float, row: MeasuredPeak) -> float:
    return estimate_gb * 1e9 / row.nvml_used_bytes - 1


def parts(figures: Estimate) -> str:
    return "+".join(f"{v:.2f}" for v in (figures.weights_gb, figures.gradients_gb, figures.optimizer_gb,
                                         figures.activations_gb, figures.cuda_context_gb))


def examples() -> list[dict]:
    """The estimate of each example spec with model facts, against the largest GPU it asks for."""
    print(f"\n{'example':<22} {'estimate':>8} {'largest GPU asked':>18}   weights+grads+optim+activ+ctx GB")
    found = []
    for loaded in load_specs([EXAMPLES]):
        hint = loaded.spec.placement.gpu_memory
        facts = None if hint is None else hint.model_facts()
        if facts is None:
            continue
        job = to_job(loaded, loaded.source)
        figures = estimate(facts)
        largest = max({d.accelerator for d in job.demands if d.accelerator}, key=gpu_memory_gb)
        print(f"{job.name:<22} {figures.peak_gb:>8.1f} {f'{largest} {gpu_memory_gb(largest):g} GB':>18}   "
              f"{parts(figures)}")
        found.append({"example": job.name, "facts": asdict(facts), "peak_gb": figures.peak_gb,
                      "estimate": asdict(figures), "largest_gpu": largest,
                      "largest_gpu_gb": gpu_memory_gb(largest)})
    return found


def summary(errors: list[float]) -> dict:
    return {"rows": len(errors), "under_estimated": sum(e < 0 for e in errors),
            "mean_relative_error": round(sum(errors) / len(errors), 4),
            "mean_abs_relative_error": round(sum(map(abs, errors)) / len(errors), 4),
            "max_relative_error": round(max(errors), 4), "min_relative_error": round(min(errors), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", default=str(CALIBRATION_CSV))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory_estimator.json"))
    args = parser.parse_args()

    rows = read_calibration(args.csv)
    fitted = calibrate(rows)
    print(f"{len(rows)} rows from {args.csv}")
    print(f"{'constant':<20} {'recalibrated':>13} {'shipped':>10}")
    for name, value in asdict(fitted).items():
        print(f"{name:<20} {value:>13.4f} {getattr(CALIBRATED, name):>10.4f}")

    print(f"\n{'model':<10} {'prec':<5} {'optimizer':<13} {'batch':>5} {'seq/img':>7} {'measured':>9} "
          f"{'hint':>7} {'err':>7} {'shape':>7} {'err':>7}   hint: weights+grads+optim+activ+ctx GB")
    records, hint_errors, shape_errors = [], [], []
    for row in rows:
        facts = row.facts
        from_hint = estimate(facts)
        with_shape = estimate(facts, shape=row.shape)
        hint_errors.append(relative_error(from_hint.total_gb, row))
        shape_errors.append(relative_error(with_shape.total_gb, row))
        size = f"{facts.sequence_length}" if facts.sequence_length else f"{facts.image_size}px"
        print(f"{row.model:<10} {facts.precision:<5} {facts.optimizer:<13} {facts.batch_size:>5} {size:>7} "
              f"{row.nvml_used_bytes / 1e9:>9.2f} {from_hint.total_gb:>7.2f} {hint_errors[-1]:>+7.1%} "
              f"{with_shape.total_gb:>7.2f} {shape_errors[-1]:>+7.1%}   {parts(from_hint)}")
        records.append({"model": row.model, "facts": asdict(facts), "measured_nvml_gb": row.nvml_used_bytes / 1e9,
                        "measured_reserved_gb": row.peak_reserved_bytes / 1e9,
                        "estimate_from_hint": {**asdict(from_hint), "total_gb": from_hint.total_gb},
                        "relative_error_from_hint": round(hint_errors[-1], 4),
                        "estimate_with_true_shape_gb": with_shape.total_gb,
                        "relative_error_with_true_shape": round(shape_errors[-1], 4)})

    results = {"from_hint": summary(hint_errors), "with_true_shape": summary(shape_errors)}
    for name, figures in results.items():
        print(f"\n{name}: {figures['under_estimated']} of {figures['rows']} rows under-estimated; relative error "
              f"mean {figures['mean_relative_error']:+.1%}, max {figures['max_relative_error']:+.1%}, "
              f"min {figures['min_relative_error']:+.1%}")

    estimated_examples = examples()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(args.csv), "recalibrated": asdict(fitted), "shipped": asdict(CALIBRATED),
                               "summary": results, "rows": records, "examples": estimated_examples}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
