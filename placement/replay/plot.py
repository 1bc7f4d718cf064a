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

    written.append(cost_vs_wait(results["runs"], results.get("front") or [], directory / "cost_vs_wait.png"))
    return written


def cost_vs_wait(runs: list[dict[str, Any]], front_names: list[str], path: Path) -> Path:
    """$ public + private against the p95 wait of high + critical jobs, a point per run (runs at the same point
    share a label), the front as a dashed line; a log scale for the wait when the waits span decades."""
    fig, ax = plt.subplots(figsize=(8, 5))
    points = [r for r in runs if r["p95_wait_high_min"] is not None]
    xs = [r["usd_cloud"] for r in points]
    near = 0.03 * (max(xs) - min(xs) + 1.0) if xs else 1.0
    labels: list[tuple[float, float, list[str]]] = []  # points closer than the eye can tell share one label
    for r in points:
        x, y = r["usd_cloud"], r["p95_wait_high_min"]
        ax.scatter(x, y, marker="s" if r["kind"] == "baseline" else "o",
                   color="tab:orange" if r["kind"] == "baseline" else "tab:blue", zorder=3)
        cluster = next((c for c in labels if abs(c[0] - x) <= near and abs(c[1] - y) <= 0.15 * max(c[1], y, 1.0)),
                       None)
        if cluster is None:
            labels.append((x, y, [r["name"]]))
        else:
            cluster[2].append(r["name"])
    for x, y, names in labels:
        ax.annotate("\n".join(names), (x, y), fontsize=7, xytext=(5, 3), textcoords="offset points",
                    verticalalignment="bottom")
    by_name = {r["name"]: r for r in points}
    front = [by_name[n] for n in front_names if n in by_name]
    if len(front) > 1:
        ax.plot([r["usd_cloud"] for r in front], [r["p95_wait_high_min"] for r in front], "k--", linewidth=1,
                label="sweep front")
        ax.legend(fontsize=7)
    waits = [r["p95_wait_high_min"] for r in points if r["p95_wait_high_min"] > 0]
    if waits and max(waits) / min(waits) > 20:
        ax.set_yscale("log")
    ax.set(xlabel="$ public + private", ylabel="p95 wait of high + critical jobs (min)",
           title="Cost versus wait (circles: engine policies, squares: baselines)")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
