"""How far the GPU memory estimator is from real peaks, on models it was not fitted to.

For every row of the calibration CSV (real training steps on an H100 80GB HBM3: GPT-2 124M with AdamW,
ResNet-50 with SGD+momentum, fp32 and bf16; rows that benchmarks/measure_memory.py adds), the measured NVML
peak (what must fit, CUDA context included) against three estimates from the facts a spec naming the model
gives:

- `in sample`: the shipped constants (fitted on every row);
- `leave one model out`: the constants fitted on the other models' rows alone: the figure that says whether
  the estimator holds on a model it has not seen (the activation terms are counted per model kind, so
  only the reserve's share and the CUDA context are fitted);
- `leave one row out`: fitted on every other row.

Then, for each, how many rows are under-estimated, the mean and extreme relative errors, and whether the
target holds: every row within +-15% of NVML, and none under by more than the policy's margin. Last, the
estimate of every example spec in configs/jobs that gives the model's facts, with the margin, against the
largest GPU it asks for. Writes JSON.

    python benchmarks/memory_estimator.py [--csv FILE]... [--margin 0.10] [--out FILE]
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
from placement.memory_estimate import (CALIBRATED, CALIBRATION_CSV, DEFAULT_MARGIN, Calibration,  # noqa: E402
                                       Estimate, MeasuredPeak, calibrate, estimate, read_calibration)
from placement.spec import load_specs, to_job  # noqa: E402

EXAMPLES = ROOT / "configs" / "jobs"
WITHIN = 0.15


def relative_error(figures: Estimate, row: MeasuredPeak) -> float:
    return figures.total_gb * 1e9 / row.nvml_used_bytes - 1


def parts(figures: Estimate) -> str:
    return "+".join(f"{v:.2f}" for v in (figures.weights_gb, figures.optimizer_gb,
                                         max(figures.activations_gb, figures.gradients_gb + figures.step_gb),
                                         figures.reserve_gb, figures.cuda_context_gb))


def summary(errors: list[float], margin: float) -> dict:
    floor = -margin / (1 + margin)  # estimate x (1 + margin) still reaches the measured peak
    return {"rows": len(errors), "under_estimated": sum(e < 0 for e in errors),
            "mean_relative_error": round(sum(errors) / len(errors), 4),
            "mean_abs_relative_error": round(sum(map(abs, errors)) / len(errors), 4),
            "max_relative_error": round(max(errors), 4), "min_relative_error": round(min(errors), 4),
            "within_15_percent": all(abs(e) <= WITHIN for e in errors),
            "never_under_by_more_than_margin": all(e >= floor for e in errors)}


def examples(margin: float) -> list[dict]:
    """The estimate of each example spec with model facts, with the margin, against the largest GPU it asks for."""
    print(f"\n{'example':<22} {'estimate':>8} {'+margin':>8} {'largest GPU asked':>18}   "
          "weights+optim+max(activ,grads+step)+reserve+ctx GB")
    found = []
    for loaded in load_specs([EXAMPLES]):
        hint = loaded.spec.placement.gpu_memory
        facts = None if hint is None else hint.model_facts()
        if facts is None:
            continue
        job = to_job(loaded, loaded.source)
        figures = estimate(facts)
        largest = max({d.accelerator for d in job.demands if d.accelerator}, key=gpu_memory_gb)
        print(f"{job.name:<22} {figures.peak_gb:>8.1f} {figures.required_gb(margin):>8.1f} "
              f"{f'{largest} {gpu_memory_gb(largest):g} GB':>18}   {parts(figures)}")
        found.append({"example": job.name, "facts": asdict(facts), "peak_gb": figures.peak_gb,
                      "required_gb": figures.required_gb(margin), "estimate": asdict(figures),
                      "largest_gpu": largest, "largest_gpu_gb": gpu_memory_gb(largest)})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", action="append", help="calibration CSV, repeatable (default: the shipped rows); "
                        "benchmarks/measure_memory.py writes more")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="the policy's memory margin")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory_estimator.json"))
    args = parser.parse_args()

    files = args.csv or [str(CALIBRATION_CSV)]
    rows = [row for path in files for row in read_calibration(path)]
    fitted = calibrate(rows, args.margin)
    models = sorted({r.model for r in rows})
    by_model: dict[str, Calibration] = {m: calibrate([r for r in rows if r.model != m], args.margin) for m in models}
    print(f"{len(rows)} rows of {len(models)} models from {', '.join(files)}; margin {args.margin:.0%}")
    print(f"{'constants':<28} {'context GB':>10} {'reserve share':>14}")
    for name, c in [("shipped", CALIBRATED), ("fitted on all rows", fitted)] + [
            (f"fitted without {m}", by_model[m]) for m in models]:
        print(f"{name:<28} {c.cuda_context_gb:>10.3f} {c.reserve_share:>14.4f}")

    print(f"\n{'model':<10} {'prec':<5} {'optim':<12} {'batch':>5} {'seq/img':>7} {'NVML GB':>8} {'in-sample':>9} "
          f"{'err':>7} {'LOMO':>7} {'err':>7} {'LORO err':>8}   in-sample: weights+optim+max(activ,grads+step)+"
          "reserve+ctx GB")
    records = []
    errors: dict[str, list[float]] = {"in_sample": [], "leave_one_model_out": [], "leave_one_row_out": []}
    for index, row in enumerate(rows):
        facts = row.facts
        own = estimate(facts)
        lomo = estimate(facts, calibration=by_model[row.model])
        loro = estimate(facts, calibration=calibrate(rows[:index] + rows[index + 1:], args.margin))
        for key, figures in (("in_sample", own), ("leave_one_model_out", lomo), ("leave_one_row_out", loro)):
            errors[key].append(relative_error(figures, row))
        size = f"{facts.sequence_length}" if facts.sequence_length else f"{facts.image_size}px"
        print(f"{row.model:<10} {facts.precision:<5} {facts.optimizer:<12} {facts.batch_size:>5} {size:>7} "
              f"{row.nvml_used_bytes / 1e9:>8.2f} {own.total_gb:>9.2f} {errors['in_sample'][-1]:>+7.1%} "
              f"{lomo.total_gb:>7.2f} {errors['leave_one_model_out'][-1]:>+7.1%} "
              f"{errors['leave_one_row_out'][-1]:>+8.1%}   {parts(own)}")
        records.append({"model": row.model, "facts": asdict(facts), "measured_nvml_gb": row.nvml_used_bytes / 1e9,
                        "measured_reserved_gb": row.peak_reserved_bytes / 1e9,
                        "measured_allocated_gb": row.peak_allocated_bytes / 1e9,
                        "in_sample": {**asdict(own), "total_gb": own.total_gb},
                        "leave_one_model_out": {**asdict(lomo), "total_gb": lomo.total_gb},
                        "leave_one_row_out_total_gb": loro.total_gb,
                        **{f"relative_error_{k}": round(v[-1], 4) for k, v in errors.items()}})

    results = {key: summary(values, args.margin) for key, values in errors.items()}
    for name, figures in results.items():
        target = "holds" if figures["within_15_percent"] and figures["never_under_by_more_than_margin"] else "MISSED"
        print(f"\n{name}: {figures['under_estimated']} of {figures['rows']} rows under-estimated; relative error "
              f"mean {figures['mean_relative_error']:+.1%}, max {figures['max_relative_error']:+.1%}, "
              f"min {figures['min_relative_error']:+.1%}; target (within +-15%, never under by more than "
              f"{args.margin:.0%}): {target}")

    estimated_examples = examples(args.margin)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": files, "margin": args.margin, "shipped": asdict(CALIBRATED),
                               "fitted": asdict(fitted), "fitted_without": {m: asdict(c) for m, c in by_model.items()},
                               "summary": results, "rows": records, "examples": estimated_examples}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
