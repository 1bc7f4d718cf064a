"""The estimator's free constants fitted on measured peaks (the shipped H100 rows), read from a CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from placement.memory_estimate.estimate import estimate
from placement.memory_estimate.facts import DEFAULT_MARGIN, GB, UNDER_WEIGHT, Calibration, ModelFacts
from placement.model_shapes import architecture

CALIBRATION_IMAGE_SIZE = 224  # the CSV leaves `seq` empty for image models: ImageNet's 224 x 224 crops
CALIBRATION_OPTIMIZERS = {"adamw": "adamw", "adam": "adam", "sgd": "sgd_momentum"}  # the CSV's SGD has momentum
CALIBRATION_CSV = Path(__file__).resolve().parents[2] / "configs" / "telemetry" / \
    "h100_training_memory_calibration.csv"  # a copy of the project's shared telemetry data, shipped with it


@dataclass(frozen=True, slots=True)


class MeasuredPeak:
    """One calibration row: a real training step's facts and the memory it took on the GPU."""

    model: str
    facts: ModelFacts
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    nvml_used_bytes: int  # what must fit: includes the CUDA context


def read_calibration(path: str | Path = CALIBRATION_CSV) -> list[MeasuredPeak]:
    """The rows of a calibration CSV that ran (`status` ok), with the facts a spec naming the model would give.

    Optional columns (`trainable`, `checkpointing`, `image`) carry what rows of LoRA, activation checkpointing
    and other resolutions measured (benchmarks/measure_memory.py writes them)."""
    rows = []
    with open(path, newline="") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            if row["status"] != "ok":
                continue
            try:
                known = architecture(row["model"])
                image = row.get("image") or None
                facts = ModelFacts(
                    parameters=float(row["params"]), precision=row["dtype"],
                    optimizer=CALIBRATION_OPTIMIZERS.get(row["optimizer"], row["optimizer"]),
                    batch_size=int(row["batch"]), sequence_length=int(row["seq"]) if row["seq"] else None,
                    image_size=None if row["seq"] else int(image or CALIBRATION_IMAGE_SIZE),
                    trainable_parameters=float(row["trainable"]) if row.get("trainable") else None,
                    activation_checkpointing=row.get("checkpointing", "") in ("1", "true", "True"),
                    model=known.name if known is not None else None)
                rows.append(MeasuredPeak(row["model"], facts, int(row["peak_allocated_bytes"]),
                                         int(row["peak_reserved_bytes"]), int(row["nvml_used_bytes"])))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return rows


def calibrate(rows: Iterable[MeasuredPeak], margin: float = DEFAULT_MARGIN) -> Calibration:
    """The constants closest to the rows' NVML peaks that keep every row within the margin (estimate x (1 + margin)
    >= measured). Closest counts an under-estimate UNDER_WEIGHT times an over-estimate (an under-estimate costs a
    run that runs out of memory, an over-estimate a larger GPU): the central figure is the rows' 75th percentile.

    The CUDA context is the largest gap between NVML's count and the allocator's reservation; the reserve
    share comes from a linear program over the rows.
    """
    from placement.solve import milp  # the solver is needed to calibrate, never to estimate

    rows = list(rows)
    if not rows:
        raise ValueError("calibrate: no calibration rows")
    context_gb = max(r.nvml_used_bytes - r.peak_reserved_bytes for r in rows) / GB
    zero = Calibration(context_gb, 0.0)
    lp = milp.LinearProgram()
    share = lp.add_var(cost=0.0, upper=10.0)
    for row in rows:
        measured = row.nvml_used_bytes / GB
        base = estimate(row.facts, calibration=zero)
        slope = estimate(row.facts, calibration=replace(zero, reserve_share=1.0)).total_gb - base.total_gb
        over, under = lp.add_var(cost=1.0, upper=1e6), lp.add_var(cost=UNDER_WEIGHT, upper=1e6)
        # (estimate - measured) / measured = over - under
        lp.add_row([share, over, under], [slope / measured, -1.0, 1.0], 1.0 - base.total_gb / measured)
        lp.add_row([share, over, under], [-slope / measured, 1.0, -1.0], base.total_gb / measured - 1.0)
        lp.add_row([share], [-slope * (1 + margin)], base.total_gb * (1 + margin) - measured)
    solution = milp.solve(lp, integer=False)
    if solution.values is None:
        raise ValueError(f"calibrate: no constants fit these rows within a {margin:.0%} margin ({solution.status})")
    return Calibration(context_gb, round(solution.values[share], 6))
