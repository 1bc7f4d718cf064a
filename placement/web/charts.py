"""The status page's time charts, drawn with matplotlib as inline SVG (text stays text, so it can be read)."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")  # no display in the service

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from placement.web.history import DAY_S, SpendPoint  # noqa: E402


def spend_svg(points: list[SpendPoint], now: float, window_s: float = DAY_S) -> str:
    """$/h of each scope over the `window_s` before `now`, with its cap (the $/h it may spend) dashed in the
    same colour; the latest values hold until `now`."""
    if not points:
        raise ValueError("no spend recorded yet: nothing to plot")
    points = [*points, SpendPoint(max(now, points[-1].at), points[-1].rate_by_scope, points[-1].limit_by_scope)]
    when = [datetime.fromtimestamp(p.at, tz=timezone.utc) for p in points]
    scopes = sorted({s for p in points for s in (*p.rate_by_scope, *p.limit_by_scope)})
    figure, axes = plt.subplots(figsize=(10, 3.5), dpi=100)
    try:
        for i, scope in enumerate(scopes):
            colour = f"C{i % 10}"
            axes.step(when, [p.rate_by_scope.get(scope, 0.0) for p in points], where="post", color=colour,
                      label=f"{scope} $/h")
            if any(scope in p.limit_by_scope for p in points):
                axes.step(when, [p.limit_by_scope.get(scope, float("nan")) for p in points], where="post",
                          color=colour, linestyle="--", label=f"{scope} cap")
        axes.set_ylabel("$ per hour")
        axes.set_xlabel("time (UTC)")
        axes.set_ylim(bottom=0)
        axes.set_xlim(datetime.fromtimestamp(now - window_s, tz=timezone.utc), when[-1])
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes.xaxis.get_major_locator()))
        axes.legend(loc="upper left", fontsize="small", ncols=max(1, min(len(scopes), 4)))
        figure.tight_layout()
        buffer = io.StringIO()
        with plt.rc_context({"svg.fonttype": "none"}):
            figure.savefig(buffer, format="svg")
        return buffer.getvalue()
    finally:
        plt.close(figure)
