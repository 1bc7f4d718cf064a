"""The commands that ask the running service: submit, status, spend, load, explain, debt, cancel, logs.

The service answers in JSON-ready dicts (`placement.answers`, turned into JSON by the engine); these print them
as tables, or as they are with `--json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from placement.cli import common
from placement.cli.common import (AddressOpt, EnvFileOpt, EnvOpt, Files, JsonOpt, app, env_values, err, fail,
                                  guarded, handled, out)


@app.command()
def submit(
    files: Files,
    wait: Annotated[bool, typer.Option(help="Wait until every job is running, planned, finished, or says why "
                                            "it waits.")] = False,
    secret: Annotated[Optional[list[str]], typer.Option(
        "--secret", help="An env of the spec whose value is secret (repeatable). Names with TOKEN, KEY, SECRET "
                         "or PASSWORD in them, and `secrets:`, are secret anyway.")] = None,
    address: AddressOpt = None,
    env: EnvOpt = None,
    env_file: EnvFileOpt = None,
) -> None:
    """Submit job specs; prints their ids once they are stored. An invalid file is rejected whole, and so is
    one that leaves an env without a value (set it with --env or --env-file)."""
    from dataclasses import replace

    from placement.client import call, submit as send
    from placement.secrets import mark_secret, unknown_names
    from placement.spec import check_envs_set, load_specs

    def body() -> None:
        values = env_values(env, env_file)
        check_envs_set(load_specs(files, env=values))  # a bad file is reported before the service is asked
        handle = common.service_handle(address)
        loaded = load_specs(files, allowed_roots=call(handle.file_roots), env=values)  # the roots it allows
        if missing := unknown_names([item.data for item in loaded], secret or []):
            fail(f"--secret {', '.join(missing)}: no env of that name in {', '.join(map(str, files))}")
        loaded = [replace(item, data=mark_secret(item.data, secret or [])) for item in loaded]
        ids = send(handle, loaded)
        for job_id in ids:
            out.print(job_id, soft_wrap=True)  # never wrapped: scripts copy it
        if wait:
            _wait_placed(handle, ids, call)
    guarded(body)


def _wait_placed(handle, ids: list[str], call) -> None:
    import time

    with err.status("Waiting for placement...") as progress:
        deadline = time.time() + 300
        while True:
            rows = [r for job_id in ids for r in call(handle.status, job_id)]
            settled = [r for r in rows if r["state"] not in ("pending", "launching") or r["reason_code"]]
            progress.update(f"Waiting for placement... {len(settled)}/{len(ids)} decided")
            if len(settled) == len(ids) or time.time() > deadline:
                return
            time.sleep(1)


@app.command()
@handled
def status(
    job: Annotated[Optional[str], typer.Argument(help="One job's id.")] = None,
    team: Annotated[Optional[str], typer.Option(help="Only this team's jobs.")] = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Jobs with their state, tier, target, GPUs, $/h, spend, energy and carbon so far, age and, if pending, why;
    then what flagged similar jobs (same team and name) recommend to the jobs not finished."""
    from rich.markup import escape

    rows = common.ask(common.service_handle(address).status, job, team)
    if job and not rows:
        fail(f"no job {job!r}")
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    numbers = ("GPUs", "$/h", "spent $", "kWh", "kg CO2e", "age")
    table = Table(title=f"{len(rows)} jobs")
    for column in ("job", "team", "state", "tier", "target", *numbers, "reason"):
        table.add_column(column, overflow="fold", justify="right" if column in numbers else "left")

    def amount(value: float | None, digits: int = 2) -> str:
        return f"{value:,.{digits}f}" if value is not None else "-"

    for r in rows:
        colour = {"pending": "yellow", "failed": "red", "succeeded": "green", "running": "cyan"}.get(r["state"], "")
        table.add_row(r["id"], r["team"], f"[{colour}]{r['state']}[/{colour}]" if colour else r["state"],
                      r["tier"] or "-", r["target"] or "-", f"{r['gpus']:g}" if r["gpus"] is not None else "-",
                      amount(r["usd_per_hour"]), f"{r['spent_usd']:.2f}", amount(r["energy_kwh"], 3),
                      amount(r["carbon_kg"], 3), _age(r["age_s"]),
                      f"{r['reason_code']}: {r['reason']}" if r["reason_code"] else "")
    out.print(table)
    out.print(f"Total: ${sum(r['spent_usd'] for r in rows):,.2f} spent, "
              f"{sum(r['energy_kwh'] or 0.0 for r in rows):,.3f} kWh, "
              f"{sum(r['carbon_kg'] or 0.0 for r in rows):,.3f} kg CO2e.")
    for r in rows:
        for note in r["rightsizing"]:
            out.print(f"{r['id']}: [magenta]{escape(note)}[/magenta]")
    _print_fair_shares(rows)


def _print_fair_shares(rows: list[dict[str, Any]]) -> None:
    """The fair share of each team the rows carry one for (`--team` with fair sharing on)."""
    shares = {r.get("team", r.get("scope")): r["fair_share"] for r in rows if r.get("fair_share")}
    for share in dict(sorted(shares.items())).values():
        out.print(f"Fair share: {share['summary']} ({share['gpu_hours']:,.1f} decayed GPU-hours; its jobs' value "
                  f"x{share['factor']:.2f})")


@app.command()
@handled
def spend(
    team: Annotated[Optional[str], typer.Option(help="Only this team (and not the global scope).")] = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Private and public spend per scope against its caps: $/h now, $ today and this month, projections to
    the end of the UTC day and month, and the $/h the scope may spend now (the tightest of its rate cap and
    what its budgets leave)."""
    rows = common.ask(common.service_handle(address).spend, team)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="spend (private + public; on-prem never counts)")
    for column in ("scope", "$/h now", "limit $/h", "today $", "month $", "end of day $", "end of month $", "cap"):
        table.add_column(column, justify="left" if column in ("scope", "cap") else "right", overflow="fold")
    for r in rows:
        over = r["over"]
        rate = f"{r['usd_per_hour']:.2f}"
        table.add_row(r["scope"], f"[red]{rate}[/red]" if over else rate,
                      f"{r['limit_usd_per_hour']:.2f}" if r["limit_usd_per_hour"] is not None else "-",
                      f"{r['today_usd']:.2f}", f"{r['month_usd']:.2f}", f"{r['projected_day_usd']:.2f}",
                      f"{r['projected_month_usd']:.2f}", r["binding"] or "-")
    out.print(table)
    _print_fair_shares(rows)


@app.command()
@handled
def load(
    service: Annotated[str, typer.Argument(help="The service's id (`placement status` shows it on its replicas).")],
    qps: Annotated[float, typer.Argument(help="Requests per second over all its replicas.")],
    address: AddressOpt = None,
) -> None:
    """Report a service's load; the next round scales its replicas to ceil(load / target_qps_per_replica)."""
    common.ask(common.service_handle(address).report_load, service, qps)
    out.print(f"{service}: {qps:g} requests/s")


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _clock(at: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S")


@app.command("explain")
@handled
def explain_cmd(job: Annotated[str, typer.Argument(help="The job's id.")], address: AddressOpt = None) -> None:
    """Why a job is where it is, or why it waits: its history, the next best options, and what flagged similar
    jobs recommend."""
    from rich.markup import escape

    answer = common.ask(common.service_handle(address).explain, job)
    row = answer["job"]
    where = f"on {row['tier']} {row['target']}" if row["tier"] else "not placed"
    out.print(f"[bold]{row['id']}[/bold] ({row['team']}, {row['priority']}): {row['state']}, {where}")
    if row["reason_code"]:
        out.print(f"[yellow]{row['reason_code']}[/yellow]: {row['reason']}")
    if answer.get("queue_cost") is not None:
        out.print(f"Waiting costs ${answer['queue_cost']:,.2f} in the last round's objective.")
    forecast = answer.get("forecast")
    if forecast is not None:
        premium = forecast["burst_premium_usd"]
        out.print(f"Forecast: on-prem {forecast['gpu'] or 'CPU'} ({', '.join(forecast['onprem_nodes'])}) has room in "
                  f"{forecast['start_in_min']:g} min; waiting costs ${forecast['delay_usd']:,.2f} of delay, then "
                  f"${forecast['onprem_usd']:,.2f} on-prem"
                  + (f"; bursting now would cost ${premium:,.2f} more" if premium is not None else "")
                  + f" -> {forecast['decision']}")
    reservation = answer.get("reservation")
    if reservation is not None:
        out.print(f"Reservation: {', '.join(reservation['nodes'])} from {_clock(reservation['start_at'])} to "
                  f"{_clock(reservation['until'])}; only work ending before it may run there "
                  f"(bursting would cost ${reservation['premium_usd']:,.2f} more)")
    if answer["alternatives"]:
        table = Table(title="Options in the last round")
        for column in ("tier", "offer", "$ over the job", "objective", "vs chosen", "blocked by", "recommended by"):
            table.add_column(column, overflow="fold")
        for a in answer["alternatives"]:
            table.add_row(a["tier"], a["offer"], f"{a['usd']:,.2f}", f"{a['objective']:,.2f}", f"{a['vs_chosen']:+,.2f}",
                          a["blocked_by"] or "-", a["from_recommendation"] or "-")
        out.print(table)
    for flag in (answer.get("efficiency") or {}).get("flags", []):
        out.print(f"[magenta]{flag['kind']}[/magenta]: {flag['reason']} -> {flag['recommendation']}")
    for item in answer["rightsizing"]:
        out.print(f"[magenta]{escape(item['note'])}[/magenta]")
    events = Table(title="History")
    events.add_column("at")
    events.add_column("event")
    events.add_column("detail", overflow="fold")
    import datetime

    for e in answer["events"]:
        events.add_row(datetime.datetime.fromtimestamp(e["at"]).strftime("%H:%M:%S"), e["kind"], e["detail"][:200])
    out.print(events)


@app.command()
@handled
def debt(
    team: Annotated[Optional[str], typer.Option(help="Only this team's jobs.")] = None,
    since: Annotated[str, typer.Option(help="How far back to look: 30m, 12h, 7d, 2w, 1d12h.")] = "7d",
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG of allocated vs utilized GPUs over time.")] = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Computational debt: GPU-hours allocated against GPU-hours used, and its $, per team and job (worst
    first), with energy, carbon, and the jobs flagged as inefficient with what they should ask for instead.
    Without GPU telemetry (public clouds, nodes without NVML) a job's figures are allocation-only."""
    from placement.spec import duration_hours
    from placement.yamlio import Invalid

    try:
        since_s = duration_hours(since) * 3600
    except Invalid as exc:
        fail(f"--since: {exc.message}: given {exc.given}; valid: {exc.valid}")
    if not since_s > 0:
        fail(f"--since: the window must be longer than 0, given {since!r}")
    answer = common.ask(common.service_handle(address).debt, team, since_s, plot is not None)
    if plot is not None:
        _plot_debt(answer, plot, team, since)
    if as_json:
        answer.pop("series", None)
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
        return
    _print_debt(answer, since, plot)


def _plot_debt(answer: dict, path: Path, team: str | None, since: str) -> None:
    """Drawn here, not by the service: the file belongs on the machine that asked for it."""
    from placement.debt import UsageSeries
    from placement.debt_plot import plot_allocation_vs_utilization

    series = answer["series"]
    plot_allocation_vs_utilization(UsageSeries(tuple(series["t"]), tuple(series["allocated_gpus"]),
                                               tuple(series["utilized_gpus"])), path,
                                   f"GPU allocation vs utilization, {team or 'all teams'}, last {since}")
    answer["plot"] = str(path)


def _print_debt(answer: dict, since: str, plot: Path | None) -> None:
    from rich.markup import escape

    telemetry = answer["telemetry"]
    if not telemetry["available"]:
        reasons = sorted({a["reason"] for a in telemetry["agents"] if a["reason"]})
        out.print("[yellow]No GPU telemetry[/yellow]" + (f" ({'; '.join(reasons)})" if reasons else
                                                          " (no telemetry agent has reported)")
                  + ": figures are allocation-only, debt is not measured.")
    total = answer["total"]
    out.print(f"Last {since}: {total['allocated_gpu_hours']:,.1f} GPU-hours allocated, "
              f"{total['utilized_gpu_hours']:,.1f} utilized, debt {total['debt_gpu_hours']:,.1f} GPU-hours "
              f"(${total['debt_usd']:,.2f}); {total['energy_kwh']:,.1f} kWh, {total['carbon_kg']:,.1f} kg CO2e.")
    numbers = ("alloc GPU-h", "used GPU-h", "debt GPU-h", "debt $", "cost $", "mean util", "kWh", "kg CO2e")

    def figures(row: dict) -> list[str]:
        mean = row["mean_utilization"]
        return [f"{row['allocated_gpu_hours']:,.2f}", f"{row['utilized_gpu_hours']:,.2f}",
                f"{row['debt_gpu_hours']:,.2f}", f"[red]{row['debt_usd']:,.2f}[/red]" if row["debt_usd"] > 0
                else f"{row['debt_usd']:,.2f}", f"{row['cost_usd']:,.2f}", f"{mean:.0%}" if mean is not None else "-",
                f"{row['energy_kwh']:,.2f}", f"{row['carbon_kg']:,.2f}"]

    teams = Table(title="Debt per team, worst first")
    teams.add_column("team")
    for column in numbers:
        teams.add_column(column, justify="right")
    for row in answer["teams"]:
        teams.add_row(row["team"], *figures(row))
    out.print(teams)
    jobs = Table(title="Debt per job, worst first")
    for column in ("job", "team", "GPUs", *numbers, "flags"):
        jobs.add_column(column, justify="right" if column in (*numbers, "GPUs") else "left", overflow="fold")
    for row in answer["jobs"]:
        gpus = f"{row['gpu_type'] or 'CPU'}:{row['gpus']:g}" + ("" if row["telemetry"] else " [dim](no telemetry)[/dim]")
        flags = "\n".join(f"[yellow]{f['kind']}[/yellow]: {escape(f['reason'])} -> {escape(f['recommendation'])}"
                          for f in row["flags"])
        jobs.add_row(row["job"], row["team"], gpus, *figures(row), flags or "-")
    out.print(jobs)
    if plot is not None:
        out.print(f"plot: {answer['plot']}")


@app.command()
@handled
def cancel(jobs: Annotated[list[str], typer.Argument(help="Job ids.")], address: AddressOpt = None) -> None:
    """Cancel jobs: pending ones are dropped, running ones stopped."""
    done = common.ask(common.service_handle(address).cancel, jobs)
    for job_id in jobs:
        out.print(f"{job_id}: {'cancelled' if job_id in done else 'not found or already finished'}")
    if len(done) < len(jobs):
        raise typer.Exit(1)


@app.command()
@handled
def logs(job: Annotated[str, typer.Argument(help="The job's id.")], address: AddressOpt = None) -> None:
    """The output of an on-prem job (its Ray job's logs)."""
    sys.stdout.write(common.ask(common.service_handle(address).logs, job))


