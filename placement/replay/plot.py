"""`--plot DIR`: spend rate against caps, queue length and on-prem allocation over time, and $ vs p95 wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _steps(ax, run, values, label: str) -> None:
    hours = [r.t / 3600.0 for r in run.rounds]
    ax.step(hours, values, where="post", label=label, linewidth=1)


def write_plots(results: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    runs = results["_runs"]
    onprem = results["setup"]["onprem_gpus"] or 1.0
    written = []

    fig, ax = plt.subplots(figsize=(10, 4))
    for run in runs:
        _steps(ax, run, [r.spend.get("global", 0.0) for r in run.rounds], run.name)
    caps = {scope for run in runs for r in run.rounds for scope in r.limits if scope == "global"}
    for run in runs:
        if caps and run.kind == "policy":
            _steps(ax, run, [r.limits.get("global", float("nan")) for r in run.rounds], f"{run.name}: global cap")
    ax.set(xlabel="simulated hours", ylabel="private + public $/h", title="Spend rate (and the global cap, if any)")
    ax.legend(fontsize=7)
    written.append(_save(fig, directory / "spend_rate.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for run in runs:
        _steps(ax, run, [r.pending for r in run.rounds], run.name)
    ax.set(xlabel="simulated hours", ylabel="jobs waiting", title="Queue length")
    ax.legend(fontsize=7)
    written.append(_save(fig, directory / "queue.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for run in runs:
        _steps(ax, run, [100.0 * r.onprem_gpus / onprem for r in run.rounds], run.name)
    ax.set(xlabel="simulated hours", ylabel="% of on-prem GPUs allocated", title="On-prem allocation", ylim=(0, 105))
    ax.legend(fontsize=7)
    written.append(_save(fig, directory / "onprem_allocation.png"))

    fig, ax = plt.subplots(figsize=(7, 5))
    by_name = {r["name"]: r for r in results["runs"]}
    for r in results["runs"]:
        if r["p95_wait_high_min"] is None:
            continue
        marker = "s" if r["kind"] == "baseline" else "o"
        ax.scatter(r["usd_cloud"], r["p95_wait_high_min"], marker=marker)
        ax.annotate(r["name"], (r["usd_cloud"], r["p95_wait_high_min"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    front = [by_name[n] for n in results.get("front") or []]
    if len(front) > 1:
        ax.plot([r["usd_cloud"] for r in front], [r["p95_wait_high_min"] for r in front], "k--", linewidth=1,
                label="sweep front")
        ax.legend(fontsize=7)
    ax.set(xlabel="$ public + private", ylabel="p95 wait of high + critical jobs (min)",
           title="Cost versus wait (circles: policies, squares: baselines)")
    written.append(_save(fig, directory / "cost_vs_wait.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
