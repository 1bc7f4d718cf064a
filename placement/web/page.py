"""The status page as one HTML document, from the engine's own answers (`Engine.status`, `spend`, `debt`).

Pure: answers in, HTML out; every value from a job spec or the store is escaped. Elements that tests and
scripts may look for carry `data-` attributes (a pending job's reason, a cap's bar).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from placement.debt import UsageSeries
from placement.web.history import RoundPoint, SpendPoint

REFRESH_S = 30

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .4em 0; } td, th { padding: .2em .7em; text-align: left; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; } td.num { text-align: right; }
.reason { color: #8a4b00; } .muted { color: #777; }
.bar { width: 16em; height: 1em; background: #eee; border: 1px solid #bbb; display: inline-block;
       vertical-align: middle; }
.fill { height: 100%; background: #3a7bd5; } .fill.warn { background: #e0a100; } .fill.over { background: #d33; }
svg { max-width: 100%; height: auto; }
"""


@dataclass(frozen=True, slots=True)
class PageData:
    """What one render needs: the engine's answers and the actor's recent history."""

    now: float
    jobs: list[dict[str, Any]]  # Engine.status()
    spend: list[dict[str, Any]]  # Engine.spend()
    debt: dict[str, Any]  # Engine.debt(since_s=..., series=True)
    rounds: list[RoundPoint]
    spend_history: list[SpendPoint]
    history_since: float  # when the actor started keeping history


def render(data: PageData) -> str:
    """The whole page."""
    sections = [_queue(data.jobs), _running(data.jobs), _spend(data.spend, data.spend_history, data.now),
                _debt(data.debt), _rounds(data.rounds)]
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Placement engine</title>"
            f'<meta http-equiv="refresh" content="{REFRESH_S}"><style>{_STYLE}</style></head><body>'
            f"<h1>Placement engine</h1><p class=muted>as of {_when(data.now)}; read-only; refreshes every "
            f"{REFRESH_S} s; charts over time count from {_when(data.history_since)} (service start)</p>"
            + "".join(sections) + "</body></html>")


def _queue(jobs: list[dict[str, Any]]) -> str:
    pending = sorted((j for j in jobs if j["state"] == "pending"), key=lambda j: -j["age_s"])
    rows = "".join(
        f'<tr class=pending data-job="{_e(j["id"])}"><td>{_e(j["id"])}</td><td>{_e(j["name"])}</td>'
        f"<td>{_e(j['team'])}</td><td>{_e(j['priority'])}</td><td class=num>{_age(j['age_s'])}</td>"
        f'<td class=reason data-reason="{_e(j["reason_code"] or "")}">{_e(j["reason_code"] or "deciding")}</td>'
        f"<td>{_e(j['reason'] or '')}</td></tr>" for j in pending)
    return (f"<h2 id=queue>Queue: {len(pending)} pending</h2>"
            + (_table(("job", "name", "team", "priority", "waiting", "reason", "why"), rows) if pending
               else "<p class=muted>nothing is waiting</p>"))


def _running(jobs: list[dict[str, Any]]) -> str:
    running = [j for j in jobs if j["state"] in ("running", "launching", "planned")]
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for j in running:
        total = totals[(j["tier"] or "-", j["team"])]
        total[0] += 1
        total[1] += j["gpus"] or 0.0
        total[2] += j["usd_per_hour"] or 0.0
    summary = "".join(f'<tr data-tier="{_e(tier)}" data-team="{_e(team)}"><td>{_e(tier)}</td><td>{_e(team)}</td>'
                      f"<td class=num>{n:g}</td><td class=num>{gpus:g}</td><td class=num>{_usd(rate)}/h</td></tr>"
                      for (tier, team), (n, gpus, rate) in sorted(totals.items()))
    detail = "".join(f"<tr><td>{_e(j['id'])}</td><td>{_e(j['name'])}</td><td>{_e(j['state'])}</td>"
                     f"<td>{_e(j['tier'])}</td><td>{_e(j['target'])}</td><td>{_e(j['team'])}</td>"
                     f"<td class=num>{(j['gpus'] or 0):g}</td><td class=num>{_usd(j['usd_per_hour'] or 0)}/h</td>"
                     f"<td class=num>{_usd(j['spent_usd'])}</td></tr>" for j in running)
    if not running:
        return "<h2 id=running>Running work</h2><p class=muted>nothing is running or planned</p>"
    return ("<h2 id=running>Running and planned work by tier and team</h2>"
            + _table(("tier", "team", "jobs", "GPUs", "$/h"), summary)
            + _table(("job", "name", "state", "tier", "target", "team", "GPUs", "$/h", "spent"), detail))


def _spend(rows: list[dict[str, Any]], history: list[SpendPoint], now: float) -> str:
    body = []
    for row in rows:
        cap = row.get("cap") or {}
        bars = []
        if row.get("limit_usd_per_hour") is not None:
            bars.append(_bar(row["scope"], "rate", row["usd_per_hour"], row["limit_usd_per_hour"],
                             f"{_usd(row['usd_per_hour'])}/h of {_usd(row['limit_usd_per_hour'])}/h allowed now"
                             + (f" ({_e(row['binding'])})" if row.get("binding") else "")))
        for period, spent, projected in (("day", "today_usd", "projected_day_usd"),
                                         ("month", "month_usd", "projected_month_usd")):
            budget = cap.get(f"usd_per_{period}")
            if budget is not None:
                bars.append(_bar(row["scope"], period, row[spent], budget, f"{_usd(row[spent])} of {_usd(budget)} "
                                 f"this {period}; projected {_usd(row[projected])}"))
        if not bars:
            bars.append(f"<span class=muted>no cap; {_usd(row['usd_per_hour'])}/h, "
                        f"{_usd(row['today_usd'])} today</span>")
        body.append(f"<tr><td>{_e(row['scope'])}</td><td>{'<br>'.join(bars)}</td></tr>")
    table = _table(("scope", "against its caps"), "".join(body)) if rows else "<p class=muted>no spend scopes</p>"
    if history:
        from placement.web.charts import spend_svg  # matplotlib: only when there is something to draw

        chart = f"<figure id=spend-chart>{_svg_body(spend_svg(history, now))}<figcaption>$/h per scope and its cap " \
                f"(dashed), last day</figcaption></figure>"
    else:
        chart = "<p class=muted>no round has run yet</p>"
    return "<h2 id=spend>Spend against caps</h2>" + table + chart


def _bar(scope: str, kind: str, value: float, cap: float, label: str) -> str:
    share = value / cap if cap > 0 else (0.0 if value <= 0 else float("inf"))
    level = "over" if share >= 1 else "warn" if share >= 0.8 else ""
    width = min(share, 1.0) * 100
    return (f'<span class=bar data-scope="{_e(scope)}" data-kind="{kind}" data-share="{share:.4f}" '
            f'title="{_e(label)}"><span class="fill {level}" style="display:block;width:{width:.1f}%"></span></span> '
            f"{_e(label)}")


def _debt(answer: Mapping[str, Any]) -> str:
    teams = "".join(f'<tr data-team="{_e(t["team"])}">' + "".join(
        f"<td class=num>{_e(t.get(k))}</td>" if k != "team" else f"<td>{_e(t[k])}</td>"
        for k in ("team", "allocated_gpu_hours", "utilized_gpu_hours", "debt_gpu_hours", "debt_usd", "energy_kwh",
                  "carbon_kg")) + "</tr>" for t in answer.get("teams", []))
    table = _table(("team", "allocated GPU-h", "utilized GPU-h", "debt GPU-h", "debt $", "kWh", "kg CO2e"), teams) \
        if teams else "<p class=muted>no GPU work in the last day</p>"
    series = answer.get("series") or {}
    chart = ""
    if series.get("t") and any(series["allocated_gpus"]):
        from placement.debt_plot import allocation_vs_utilization_svg

        points = UsageSeries(tuple(series["t"]), tuple(series["allocated_gpus"]), tuple(series["utilized_gpus"]))
        svg = allocation_vs_utilization_svg(points, "GPUs allocated vs utilized, last day")
        chart = (f"<figure id=debt-chart>{_svg_body(svg)}"
                 "<figcaption>the gap is computational debt</figcaption></figure>")
    note = "" if (answer.get("telemetry") or {}).get("available") else \
        "<p class=muted>no GPU telemetry (no NVML on these nodes): allocation only, no debt claimed</p>"
    return "<h2 id=debt>Computational debt per team, last day</h2>" + table + note + chart


def _rounds(rounds: list[RoundPoint]) -> str:
    rows = "".join(f"<tr><td>{_when(r.at)}</td><td class=num>{r.seconds:.3f}</td><td class=num>{r.solve_seconds:.3f}"
                   f"</td><td>{_e(r.method)}</td><td class=num>{r.placed}</td><td class=num>{r.queued}</td></tr>"
                   for r in reversed(rounds[-20:]))
    return "<h2 id=rounds>Last rounds</h2>" + (
        _table(("at", "round s", "solve s", "method", "placed", "queued"), rows) if rounds
        else "<p class=muted>no round yet</p>")


def _table(headers: tuple[str, ...], rows: str) -> str:
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + f"</tr>{rows}</table>"


def _svg_body(document: str) -> str:
    """matplotlib writes a standalone document: drop its XML prolog and doctype to inline it."""
    return document[document.index("<svg"):]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _age(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
