"""A PNG of allocated against utilized GPUs over time (kept apart so `placement.debt` stays free of I/O)."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from placement.debt import UsageSeries  # noqa: E402


def plot_allocation_vs_utilization(series: UsageSeries, path: str | Path, title: str = "GPU allocation vs utilization"
                                   ) -> Path:
    """Write the chart to `path` (PNG); the gap between the two lines is the computational debt."""
    path = Path(path)
    _save(series, title, path, "png")
    return path


def allocation_vs_utilization_svg(series: UsageSeries, title: str = "GPU allocation vs utilization") -> str:
    """The same chart as an SVG document (text kept as text), for the status page."""
    buffer = io.StringIO()
    _save(series, title, buffer, "svg")
    return buffer.getvalue()


def _save(series: UsageSeries, title: str, target: Path | io.StringIO, fmt: str) -> None:
    if not series.t:
        raise ValueError("the series is empty: nothing to plot")
    when = [datetime.fromtimestamp(t, tz=timezone.utc) for t in series.t]
    figure, axes = plt.subplots(figsize=(10, 4), dpi=100)
    try:
        axes.step(when, series.allocated_gpus, where="post", label="allocated GPUs", color="tab:red")
        axes.step(when, series.utilized_gpus, where="post", label="utilized GPUs", color="tab:green")
        axes.fill_between(when, series.utilized_gpus, series.allocated_gpus, step="post", alpha=0.2,
                          color="tab:red", label="debt (allocated, unused)")
        axes.set_ylabel("GPUs")
        axes.set_xlabel("time (UTC)")
        axes.set_ylim(bottom=0)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes.xaxis.get_major_locator()))
        axes.set_title(title)
        axes.legend(loc="upper right")
        figure.tight_layout()
        with plt.rc_context({"svg.fonttype": "none"}):
            figure.savefig(target, format=fmt)
    finally:
        plt.close(figure)
