"""The `placement replay` command (registered by placement/cli/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from placement.replay.traces import DEFAULTS_HELP, FORMATS


def replay(
    trace: Annotated[Path, typer.Argument(help="The trace file (configs/traces/ ships openb, Philly and DLRM).")],
    format: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "openb",
    window: Annotated[Optional[str], typer.Option(
        help="START:END from the trace's start (119d:126d, 0:36h; a bare number is seconds). Default: all.")] = None,
    inventory: Annotated[Optional[Path], typer.Option(
        help="On-prem nodes and private pools. Default for openb: the trace's own nodes scaled by --onprem-scale, "
             "with the pools of configs/inventory.yaml; other formats: configs/inventory.yaml.")] = None,
    onprem_scale: Annotated[float, typer.Option(
        help="openb: on-prem GPUs as a fraction of the window's peak GPU demand.")] = 0.33,
    policy: Annotated[Optional[list[str]], typer.Option(
        help="Built-in policy name or policy file; repeatable. Default: balanced.")] = None,
    baseline: Annotated[Optional[list[str]], typer.Option(
        help="sky-k8s, onprem-fifo, burst-after-wait or all; repeatable.")] = None,
    sweep: Annotated[Optional[str], typer.Option(
        help="FIELD=V1,V2,...: the first policy once per value of a dotted policy field "
             "(weights.latency=0.25,0.5,1,2,4); prints the front of $ vs p95 wait.")] = None,
    estimate_noise: Annotated[float, typer.Option(
        help="expected_hours = true duration x exp(N(0, SIGMA)), seeded; the jobs still run their true "
             "duration.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seeds estimates, on-prem node draw and spot reclaims.")] = 0,
    interval: Annotated[float, typer.Option(help="Control interval, simulated seconds.")] = 60.0,
    drain: Annotated[float, typer.Option(help="Hours simulated after the window's end (no new arrivals).")] = 24.0,
    preemptions: Annotated[float, typer.Option(help="Spot reclaims per hour of public spot work.")] = 0.0,
    json_out: Annotated[bool, typer.Option("--json", help="All figures and each job's, as JSON.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Write PNGs into this directory.")] = None,
) -> None:
    """Replay a real trace through the real engine on a simulated clock, beside the baselines."""
    from placement.replay.compare import Setup, prepare, run_all
    from placement.replay.report import print_results, to_json
    from placement.yamlio import ConfigError

    setup = Setup(trace, format, window, inventory, onprem_scale, policy or ["balanced"], baseline or [], sweep,
                  estimate_noise, seed, interval, drain, preemptions)
    err = Console(stderr=True, highlight=False)
    try:
        prepared = prepare(setup)
        from placement.replay.compare import baselines_to_run, policies_to_run

        policies_to_run(setup), baselines_to_run(setup.baselines)  # bad names fail before anything runs
    except ConfigError as exc:
        for error in exc.errors:
            err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    horizon = prepared.world.horizon_s
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("day {task.fields[day]:>6.2f}"),
                  TimeRemainingColumn(), console=err, transient=not sys.stderr.isatty()) as bar:
        def progress(name: str):
            task = bar.add_task(name, total=horizon, day=0.0)
            return lambda t: bar.update(task, completed=t, day=t / 86400)

        results = run_all(setup, prepared, progress)
    if plot is not None:
        from placement.replay.plot import write_plots

        for path in write_plots(results, plot):
            err.print(f"plot: {path}")
    if json_out:
        sys.stdout.write(to_json(results) + "\n")
    else:
        print_results(results, Console(highlight=False, width=None if sys.stdout.isatty() else 220))
    prepared.tmp.cleanup()


replay.__doc__ = (replay.__doc__ or "") + "\n\n" + DEFAULTS_HELP
