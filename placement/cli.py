"""The `placement` command line: validate specs, list offers, print the spec schema, plan what-ifs.

Every command turns configuration problems into the file:line messages of
`placement.yamlio` and exits 1; nothing the user typed ends in a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from placement.model import Job, Tier

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Place ML jobs on on-prem nodes, a private pool or public clouds, under spend caps.")
# Piped output (CI logs, `| less`) gets a wide table rather than Rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 180
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)

Files = Annotated[list[Path], typer.Argument(help="Job spec files or directories (YAML, multi-document allowed).")]
InventoryOpt = Annotated[Optional[Path], typer.Option("--inventory", help="On-prem inventory and private pools "
                                                      "(default: configs/inventory.yaml).")]
CatalogOpt = Annotated[Optional[list[Path]], typer.Option("--catalog", help="SkyPilot catalog directory "
                                                          "(<cloud>/vms.csv); repeatable. Default: SkyPilot's own "
                                                          "catalogs where present, then the shipped snapshot.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(1)


def _guarded(fn):
    """Run a command body, turning configuration and input errors into messages and exit status 1."""
    from placement.yamlio import ConfigError

    try:
        return fn()
    except ConfigError as exc:
        for error in exc.errors:
            err.print(f"[red]error:[/red] {error}", soft_wrap=True, markup=False)
        err.print(f"{len(exc.errors)} error(s); nothing was accepted.")
        raise typer.Exit(1) from None
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


def _tier_list(tiers: list[str] | None) -> list[Tier] | None:
    if not tiers:
        return None
    try:
        return [Tier(t) for t in tiers]
    except ValueError:
        raise ValueError(f"unknown tier in {tiers}; valid: {', '.join(t.value for t in Tier)}") from None


@app.command()
def validate(files: Files) -> None:
    """Check job specs: a one-line summary per job, or every error with its file and line."""
    from placement.spec import load_specs, to_jobs

    def body() -> None:
        loaded = load_specs(files)
        jobs = iter(to_jobs(loaded))
        for spec in loaded:
            for job in [next(jobs) for _ in to_jobs([spec])]:
                _summarise(job, spec.file)
    _guarded(body)


def _summarise(job: Job, file: str) -> None:
    shape = " or ".join(f"{d.accelerator}:{d.accelerator_count:g}" if d.accelerator else "CPU" for d in job.demands)
    nodes = f" x{job.num_nodes} nodes" if job.num_nodes > 1 else ""
    out.print(f"[green]ok[/green] {job.id}: {shape}{nodes}, team {job.team}, {job.priority}, "
              f"~{job.expected_hours:g} h, tiers {'/'.join(sorted(t.value for t in job.tiers))} [dim]({file})[/dim]")


@app.command()
def schema() -> None:
    """Print the JSON Schema of a job spec (for editors' YAML language servers)."""
    from placement.spec import spec_json_schema

    sys.stdout.write(json.dumps(spec_json_schema(), indent=2) + "\n")


@app.command()
def offers(
    gpu: Annotated[Optional[str], typer.Option(help="GPU and count, SkyPilot style: A100:8, H100, L4:1.")] = None,
    cpus: Annotated[Optional[str], typer.Option(help="Minimum vCPUs, e.g. 8 or 8+.")] = None,
    memory: Annotated[Optional[str], typer.Option(help="Minimum memory in GB, e.g. 64+.")] = None,
    spot: Annotated[Optional[bool], typer.Option("--spot/--on-demand", help="Only spot or only on-demand.")] = None,
    tier: Annotated[Optional[list[str]], typer.Option(help="onprem, private or public; repeatable.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
    inventory: InventoryOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The cheapest offers that fit a request, across on-prem, private and public capacity."""
    from clouds.offers import collect_offers, find_offers, parse_amount, parse_gpu_arg

    def body() -> None:
        gpu_arg = parse_gpu_arg(gpu) if gpu else None
        offer_set = collect_offers(inventory, catalog)
        found = find_offers(offer_set.offers, gpu=gpu_arg.name if gpu_arg else None,
                            gpu_count=gpu_arg.count if gpu_arg else None,
                            cpus=parse_amount(cpus) if cpus else None,
                            memory_gb=parse_amount(memory) if memory else None,
                            spot=spot, tiers=_tier_list(tier))[:limit]
        if as_json:
            rows = [{"tier": o.tier.value, "provider": o.provider, "name": o.name, "region": o.region,
                     "zone": o.zone, "gpu": o.gpu, "gpu_count": o.gpu_count, "gpu_memory_gb": o.gpu_memory_gb,
                     "vcpus": o.vcpus, "memory_gb": o.memory_gb, "spot": o.spot, "usd_per_hour": round(price, 4)}
                    for o, price in found]
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        table = Table(title=f"{len(found)} cheapest offers" + (f" for {gpu}" if gpu else ""))
        for column in ("tier", "provider", "name", "region/zone", "GPU", "GPU mem", "vCPUs", "mem GB", "spot",
                       "$/h"):
            table.add_column(column, justify="right" if column in ("GPU mem", "vCPUs", "mem GB", "$/h") else "left")
        for o, price in found:
            gpus = f"{o.gpu}:{o.gpu_count:g}" if o.gpu else "-"
            table.add_row(o.tier.value, o.provider, o.name, "/".join(x for x in (o.region, o.zone) if x) or "-",
                          gpus, f"{o.gpu_memory_gb:g}" if o.gpu else "-", f"{o.vcpus:g}", f"{o.memory_gb:g}",
                          "yes" if o.spot else "", f"{price:,.3f}")
        out.print(table)
        if not found:
            out.print("No offer fits. Try fewer GPUs, another GPU type (`--gpu`), or more tiers.")
    _guarded(body)


@app.command()
def plan(
    files: Files,
    policy: Annotated[str, typer.Option(help="Built-in policy name or a policy file.")] = "balanced",
    inventory: InventoryOpt = None,
    catalog: CatalogOpt = None,
    explain: Annotated[Optional[str], typer.Option(help="Explain one job's placement or wait.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Offline what-if: run one placement round on these jobs against the inventory and catalogs."""
    from clouds.offers import collect_offers
    from placement.model import Snapshot
    from placement.solve import solve_round
    from placement.spec import load_specs, to_jobs
    from policies import load_policy

    def body() -> None:
        chosen = load_policy(policy)
        jobs = to_jobs(load_specs(files, priority_classes=list(chosen.priorities)))
        offer_set = collect_offers(inventory, catalog)
        snapshot = Snapshot(jobs=tuple(jobs), offers=tuple(offer_set.offers),
                            pool_quotas=tuple(sorted(offer_set.pool_quotas.items())))
        result = solve_round(snapshot, chosen)
        if explain is not None:
            from placement.report import explain_job
            explain_job(out, explain, snapshot, chosen, result)
        elif as_json:
            from placement.report import plan_json
            sys.stdout.write(json.dumps(plan_json(snapshot, result), indent=2) + "\n")
        else:
            from placement.report import print_plan
            print_plan(out, snapshot, chosen, result)
    _guarded(body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
