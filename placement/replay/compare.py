"""Set up a replay from the command's arguments and run every policy, sweep value and baseline on it."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clouds.inventory import load_inventory
from clouds.offers import DEFAULT_INVENTORY
from placement.replay.baselines import BASELINES, replay_baseline
from placement.replay.figures import figures
from placement.replay.runner import replay_policy, with_estimates
from placement.replay.sweep import front, parse_sweep, variant
from placement.replay.traces import Trace, load_trace
from placement.replay.world import World, peak_gpu_demand, scaled_nodes, write_inventory
from placement.spec import duration_hours
from policies import load_policy
from policies.model import Policy

DEFAULT_ONPREM_SCALE = 0.33
DEFAULT_DRAIN_H = 24.0


@dataclass
class Setup:
    trace: Path
    format: str = "openb"
    window: str | None = None
    inventory: Path | None = None
    onprem_scale: float = DEFAULT_ONPREM_SCALE
    policies: list[str] = field(default_factory=lambda: ["balanced"])
    baselines: list[str] = field(default_factory=list)
    sweep: str | None = None
    estimate_noise: float = 0.0
    seed: int = 0
    interval_s: float = 60.0
    drain_h: float = DEFAULT_DRAIN_H
    preemptions_per_hour: float = 0.0


def parse_window(text: str | None) -> tuple[float, float] | None:
    """`START:END` from the trace's start (119d:126d, 0:36h; a bare number is seconds) -> seconds."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"--window {text!r}: valid: START:END, e.g. 119d:126d or 0:86400")

    def seconds(part: str) -> float:
        part = part.strip()
        if re.fullmatch(r"\d+(\.\d+)?", part):
            return float(part)
        return duration_hours(part) * 3600.0

    try:
        start, end = seconds(parts[0]), seconds(parts[1])
    except ValueError as exc:
        raise ValueError(f"--window {text!r}: {exc}; valid: START:END, e.g. 119d:126d or 0:86400") from None
    if end <= start:
        raise ValueError(f"--window {text!r}: END must be after START")
    return start, end


def _nodes_file(trace: Path) -> Path | None:
    sibling = trace.with_name(trace.name.replace("_jobs", "_nodes_raw"))
    return sibling if sibling != trace and sibling.exists() else None


@dataclass
class Prepared:
    world: World
    jobs: list
    trace: Trace
    info: dict[str, Any]
    tmp: tempfile.TemporaryDirectory


def prepare(setup: Setup) -> Prepared:
    nodes_file = _nodes_file(setup.trace) if setup.format == "openb" and setup.inventory is None else None
    trace = load_trace(setup.trace, setup.format, nodes_file)
    window = parse_window(setup.window)
    if window is not None:
        trace = trace.window(*window)
    else:
        window = (0.0, max((j.submit_s for j in trace.jobs), default=0.0) + 1.0)
    jobs = with_estimates(trace.jobs, setup.estimate_noise, setup.seed)
    peak = peak_gpu_demand(jobs)
    tmp = tempfile.TemporaryDirectory(prefix="placement-replay-inventory-")
    path = Path(setup.inventory or DEFAULT_INVENTORY)
    base = load_inventory(path)
    if setup.inventory is None and trace.nodes:
        if not setup.onprem_scale > 0:
            raise ValueError(f"--onprem-scale must be > 0, got {setup.onprem_scale}")
        path = Path(tmp.name) / "inventory.yaml"
        inventory = write_inventory(scaled_nodes(trace.nodes, setup.onprem_scale * peak, setup.seed), base, path)
        source = f"{nodes_file.name}, GPU nodes drawn (seed {setup.seed}) to {setup.onprem_scale:g} x peak demand"
    else:
        inventory = base
        source = str(setup.inventory or "configs/inventory.yaml (the example)")
    horizon = window[1] - window[0] + setup.drain_h * 3600.0
    world = World(inventory, path, preemptions_per_hour=setup.preemptions_per_hour, interval_s=setup.interval_s,
                  horizon_s=horizon)
    info = {"trace": str(setup.trace), "format": setup.format, "window_s": list(window), "jobs": len(jobs),
            "skipped_rows": trace.skipped.count, "skipped_reasons": trace.skipped.reasons,
            "peak_gpu_demand": round(peak, 2), "onprem_gpus": world.onprem_gpus,
            "onprem_nodes": len(world.onprem_nodes), "inventory": source, "horizon_h": round(horizon / 3600, 2),
            "interval_s": setup.interval_s, "estimate_noise": setup.estimate_noise, "seed": setup.seed,
            "preemptions_per_hour": setup.preemptions_per_hour,
            "solver": "work-limited (solver.work_limit: repack steps and HiGHS nodes, not wall-clock time)"}
    return Prepared(world, jobs, trace, info, tmp)


def policies_to_run(setup: Setup) -> list[Policy]:
    policies = [load_policy(p) for p in setup.policies]
    if setup.sweep:
        field_, values = parse_sweep(setup.sweep)
        policies += [variant(policies[0], field_, v) for v in values]
    return policies


def baselines_to_run(names: list[str]) -> list[str]:
    chosen: list[str] = []
    for name in names:
        for one in (BASELINES if name == "all" else (name,)):
            if one not in BASELINES:
                raise ValueError(f"unknown baseline {one!r}; valid: {', '.join(BASELINES)} or all")
            if one not in chosen:
                chosen.append(one)
    return chosen


def run_all(setup: Setup, prepared: Prepared,
            progress: Callable[[str], Callable[[float], None]] | None = None) -> dict[str, Any]:
    """Every policy (and sweep value), then every baseline; the figures of each, and the sweep's front."""
    world, jobs = prepared.world, prepared.jobs
    policies = policies_to_run(setup)
    baselines = baselines_to_run(setup.baselines)
    reference = policies[0]
    results, runs = [], []
    for policy in policies:
        run = replay_policy(world, jobs, policy, setup.seed, progress=progress(policy.name) if progress else None)
        runs.append(run)
        results.append(figures(run, world.epoch, world.horizon_s, world.onprem_gpus, reference.caps))
    for name in baselines:
        run = replay_baseline(world, jobs, name, reference, setup.seed, progress=progress(name) if progress else None)
        runs.append(run)
        results.append(figures(run, world.epoch, world.horizon_s, world.onprem_gpus, reference.caps))
    points = [(r["name"], r["usd_cloud"], r["p95_wait_high_min"]) for r in results
              if r["p95_wait_high_min"] is not None and r["kind"] == "policy"]
    return {"setup": prepared.info, "runs": results, "front": front(points) if setup.sweep else [],
            "_runs": runs}
