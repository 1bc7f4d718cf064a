"""The replay's table (rich) and its JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from placement.replay.figures import PRIORITIES


def _waits(run: dict[str, Any], priority: str) -> str:
    w = run["wait_min"].get(priority)
    if not w:
        return "-"
    return "/".join(f"{w[q]:.0f}" if w[q] is not None else "-" for q in ("p50", "p95", "p99"))


def table(results: dict[str, Any]) -> Table:
    setup = results["setup"]
    title = (f"{setup['format']} {setup['jobs']} jobs, window {setup['window_s'][0] / 86400:g}-"
             f"{setup['window_s'][1] / 86400:g} d, on-prem {setup['onprem_gpus']:g} GPUs "
             f"(peak demand {setup['peak_gpu_demand']:g}), noise {setup['estimate_noise']:g}, seed {setup['seed']}")
    t = Table(title=title, title_justify="left")
    t.add_column("run")
    for name in ("$ public", "$ private", "$ on-prem", "on-prem alloc"):
        t.add_column(name, justify="right")
    classes = [p for p in PRIORITIES if any(p in r["wait_min"] for r in results["runs"])]
    for p in classes:
        t.add_column(f"wait {p} p50/95/99 min", justify="right")
    for name in ("fin/unfin", "h above cap", "down-scale", "kWh", "kg CO2e", "rounds", "solve s p50/p99"):
        t.add_column(name, justify="right")
    front = set(results.get("front") or [])
    for run in results["runs"]:
        above = run["hours_above_cap"]
        label = run["name"] + (" *" if run["name"] in front else "") + (" (baseline)" if run["kind"] == "baseline"
                                                                         else "")
        alloc = run["onprem_allocation"]
        t.add_row(label, f"{run['usd_public']:,.2f}", f"{run['usd_private']:,.2f}", f"{run['usd_onprem']:,.2f}",
                  f"{alloc:.0%}" if alloc is not None else "-", *[_waits(run, p) for p in classes],
                  f"{run['finished']}/{run['unfinished']}",
                  ", ".join(f"{s}: {h:g}" for s, h in above.items()) if above else "-",
                  str(run["downscale_actions"]), f"{run['kwh']:,.0f}", f"{run['kg_co2e']:,.0f}", str(run["rounds"]),
                  f"{run['solve_s']['p50']:.3f}/{run['solve_s']['p99']:.3f}" if run["kind"] == "policy" else "-")
    return t


def print_results(results: dict[str, Any], console: Console) -> None:
    setup = results["setup"]
    if setup["skipped_rows"]:
        console.print(f"{setup['skipped_rows']} trace rows skipped; first reasons:")
        for reason in setup["skipped_reasons"]:
            console.print(f"  {reason}")
    console.print(table(results))
    if results.get("front"):
        console.print("front ($ public + private vs p95 wait of high + critical jobs; * in the table): " +
                      ", ".join(results["front"]))
    console.print(f"on-prem: {setup['inventory']}; solver {setup['solver']}")


def to_json(results: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in results.items() if not k.startswith("_")}, indent=1)
