"""The commands that work on spec files alone, without the service: validate, schema, offers, estimate, plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from placement.cli.common import (CatalogOpt, EnvFileOpt, EnvOpt, Files, InventoryOpt, JsonOpt, PolicyOpt, app,
                                  env_values, guarded, handled, out, tier_list)
from placement.model import Job


@app.command()
def validate(files: Files, policy: PolicyOpt = "balanced", env: EnvOpt = None, env_file: EnvFileOpt = None) -> None:
    """Check job specs as the service would take them under this policy (its priority classes, the files of
    the host it lets jobs upload): a one-line summary per job, or every error with its file and line."""
    from placement.spec import load_specs, to_jobs, unset_envs
    from policies import load_policy

    def body() -> None:
        chosen = load_policy(policy)
        loaded = load_specs(files, priority_classes=list(chosen.priorities),
                            allowed_roots=chosen.files.allowed_roots, env=env_values(env, env_file))
        jobs = iter(to_jobs(loaded))
        for spec in loaded:
            for job in [next(jobs) for _ in to_jobs([spec])]:
                _summarise(job, spec.file)
            if unset := unset_envs(spec.spec):
                out.print(f"  [yellow]note[/yellow]: envs without a value: {', '.join(unset)}; submit needs "
                          "--env or --env-file for each", soft_wrap=True)
    guarded(body)


def _summarise(job: Job, file: str) -> None:
    from rich.markup import escape

    shape = " or ".join(f"{d.accelerator}:{d.accelerator_count:g}" if d.accelerator else "CPU" for d in job.demands)
    nodes = f" x{job.num_nodes} nodes" if job.num_nodes > 1 else ""
    tiers = "/".join(sorted(t.value for t in job.tiers))
    out.print(f"[green]ok[/green] {job.id}: {shape}{nodes}, team {job.team}, {job.priority}, "
              f"~{job.expected_hours:g} h, tiers {tiers} [dim]({escape(file)})[/dim]")


@app.command()
@handled
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
                            spot=spot, tiers=tier_list(tier))[:limit]
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
    guarded(body)


@app.command("estimate")
def estimate_command(
    files: Files,
    policy: Annotated[str, typer.Option(help="Built-in policy name or policy file: its memory margin applies.")]
    = "balanced",
    inventory: InventoryOpt = None,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The GPU memory each job needs, term by term, and the GPUs it fits with the policy's margin."""
    from clouds.offers import collect_offers
    from placement.memory_estimate import estimate
    from placement.memory_report import as_json as report_json, breakdown, gpu_fits
    from placement.spec import load_specs, to_job
    from policies import load_policy

    def body() -> None:
        margin = load_policy(policy).memory.margin
        loaded = load_specs(files)
        offer_list = collect_offers(inventory, catalog).offers
        answers = []
        for spec in loaded:
            job, hint = to_job(spec, spec.spec.name or Path(spec.file).stem), spec.spec.placement.gpu_memory
            facts = hint.model_facts() if hint is not None else None
            if job.gpu_memory_gb is None:
                answers.append({"job": job.id, "needed_gb": None})
                if not as_json:
                    out.print(f"{job.id}: no gpu_memory hint (give the model's facts, or per_gpu_gb) "
                              f"[dim]({spec.file})[/dim]")
                continue
            figures = estimate(facts) if facts is not None else None
            needed = job.gpu_memory_needed(margin)
            fits = gpu_fits(offer_list, needed, job)
            answers.append(report_json(job, figures, margin, needed, fits))
            if as_json:
                continue
            table = Table(title=f"{job.id} [dim]({spec.file})[/dim]")
            table.add_column("GPU memory per GPU")
            table.add_column("GB", justify="right")
            if figures is not None:
                for name, value in breakdown(figures):
                    table.add_row(name, f"{value:.2f}")
                table.add_row("estimate (the larger phase, + reserve, + context)", f"{figures.total_gb:.2f}")
                table.add_row(f"with the policy's {margin:.0%} margin", f"{needed:g}")
            else:
                table.add_row("given outright (per_gpu_gb), no margin", f"{needed:g}")
            out.print(table)
            for assumption in figures.assumptions if figures is not None else ():
                out.print(f"  assumed: {assumption}")
            fitting = [f"{f.gpu} ({f.memory_gb:g} GB){' *' if f.asked else ''}" for f in fits if f.fits]
            out.print(f"  fits: {', '.join(fitting) or 'no GPU of the catalogs and inventory'}"
                      + ("  [dim](* asked for)[/dim]" if any(f.asked and f.fits for f in fits) else ""))
            if not any(f.fits and f.asked for f in fits) and any(f.asked for f in fits):
                out.print(f"  [yellow]none of the GPUs it asks for has {needed:g} GB[/yellow]")
        if as_json:
            sys.stdout.write(json.dumps(answers, indent=2) + "\n")
    guarded(body)


@app.command()
def plan(
    files: Files,
    policy: Annotated[str, typer.Option(help="Built-in policy name or a policy file.")] = "balanced",
    inventory: InventoryOpt = None,
    catalog: CatalogOpt = None,
    explain: Annotated[Optional[str], typer.Option(help="Explain one job's placement or wait.")] = None,
    as_json: JsonOpt = False,
    env: EnvOpt = None,
    env_file: EnvFileOpt = None,
) -> None:
    """Offline what-if: run one placement round on these jobs against the inventory and catalogs.

    The round is the service's: `decide` on a State with nothing running and nothing spent yet, so day and
    month budgets are rate limits here too."""
    import time

    from clouds.offers import collect_offers
    from placement.solve.decide import decide
    from placement.spec import load_specs, to_jobs
    from placement.state_builder import offline_state
    from policies import load_policy

    def body() -> None:
        chosen = load_policy(policy)
        jobs = to_jobs(load_specs(files, priority_classes=list(chosen.priorities), env=env_values(env, env_file)))
        offer_set = collect_offers(inventory, catalog)
        decisions = decide(offline_state(jobs, offer_set.offers, offer_set.pool_quotas, time.time()), chosen)
        snapshot, result = decisions.snapshot, decisions.result
        if explain is not None:
            from placement.report import explain_job
            explain_job(out, explain, snapshot, decisions.policy, result)
        elif as_json:
            from placement.report import plan_json
            sys.stdout.write(json.dumps(plan_json(snapshot, result), indent=2) + "\n")
        else:
            from placement.report import print_plan
            print_plan(out, snapshot, decisions.policy, result)
    guarded(body)


