"""The `placement` command line: validate specs, list offers, print the spec schema, plan what-ifs.

Every command answers a failure with one line (or the file:line lines of
`placement.yamlio`) on stderr and a non-zero exit status, never a traceback:
1 for what the user gave or the service refused, 3 for a service or cluster that
cannot be reached, 130 when interrupted. PLACEMENT_DEBUG=1 shows tracebacks of
unexpected errors.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional, TypeVar

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from placement.errors import ServiceError, ServiceUnavailable
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


UNAVAILABLE_EXIT = 3


def _error(message: str) -> None:
    """`error: <message>` on stderr, the message as plain text (brackets in it are not markup)."""
    err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    _error(message)
    raise typer.Exit(code)


R = TypeVar("R")


def _guarded(fn: Callable[[], R]) -> R:
    """Run a command body; every failure becomes its error line(s) and an exit status."""
    from placement.yamlio import ConfigError

    try:
        return fn()
    except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
        raise
    except ConfigError as exc:
        for error in exc.errors:
            _error(str(error))
        err.print(f"{len(exc.errors)} error(s); nothing was accepted.")
        raise typer.Exit(1) from None
    except ServiceUnavailable as exc:
        _fail(str(exc), UNAVAILABLE_EXIT)
    except ServiceError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except sqlite3.Error as exc:
        _fail(f"the store: {exc}")
    except (OSError, ValueError) as exc:
        _fail(str(exc) or type(exc).__name__)
    except Exception as exc:
        if os.environ.get("PLACEMENT_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[:1]
        _fail(f"unexpected {type(exc).__name__}{': ' + first[0] if first else ''} (PLACEMENT_DEBUG=1 shows "
              "the traceback)")


def _handled(command: Callable[..., R]) -> Callable[..., R]:
    """A command whose failures `_guarded` answers (for commands without a `_guarded` body)."""
    @functools.wraps(command)
    def run(*args, **kwargs) -> R:
        return _guarded(lambda: command(*args, **kwargs))
    return run


def _tier_list(tiers: list[str] | None) -> list[Tier] | None:
    if not tiers:
        return None
    try:
        return [Tier(t) for t in tiers]
    except ValueError:
        raise ValueError(f"unknown tier in {tiers}; valid: {', '.join(t.value for t in Tier)}") from None


PolicyOpt = Annotated[str, typer.Option(help="Built-in policy name or a policy file.")]
EnvOpt = Annotated[Optional[list[str]], typer.Option("--env", help="KEY=VALUE for every task's envs (as `sky launch "
                                                     "--env`); KEY alone takes this shell's value. Repeatable.")]
EnvFileOpt = Annotated[Optional[Path], typer.Option("--env-file", help="A dotenv file of KEY=VALUE lines for every "
                                                    "task's envs; --env wins over it.")]


def _env(env: list[str] | None, env_file: Path | None) -> dict[str, str]:
    """`--env-file` then `--env` values, as SkyPilot merges them (`--env` wins)."""
    values: dict[str, str] = {}
    if env_file is not None:
        from dotenv import dotenv_values

        if not env_file.is_file():
            raise ValueError(f"--env-file {env_file}: no such file")
        values |= {k: v or "" for k, v in dotenv_values(env_file).items()}
    for item in env or ():
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                raise ValueError(f"--env {key}: no value given and none in this shell's environment; valid: "
                                 "KEY=VALUE, or KEY with KEY set in the shell")
            value = os.environ[key]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"--env {item}: {key!r} is not an environment variable name; valid: letters, digits "
                             "and _, not starting with a digit (e.g. HF_TOKEN=...)")
        values[key] = value
    return values


@app.command()
def validate(files: Files, policy: PolicyOpt = "balanced", env: EnvOpt = None, env_file: EnvFileOpt = None) -> None:
    """Check job specs as the service would take them under this policy (its priority classes, the files of
    the host it lets jobs upload): a one-line summary per job, or every error with its file and line."""
    from placement.spec import load_specs, to_jobs, unset_envs
    from policies import load_policy

    def body() -> None:
        chosen = load_policy(policy)
        loaded = load_specs(files, priority_classes=list(chosen.priorities),
                            allowed_roots=chosen.files.allowed_roots, env=_env(env, env_file))
        jobs = iter(to_jobs(loaded))
        for spec in loaded:
            for job in [next(jobs) for _ in to_jobs([spec])]:
                _summarise(job, spec.file)
            if unset := unset_envs(spec.spec):
                out.print(f"  [yellow]note[/yellow]: envs without a value: {', '.join(unset)}; submit needs "
                          "--env or --env-file for each", soft_wrap=True)
    _guarded(body)


def _summarise(job: Job, file: str) -> None:
    from rich.markup import escape

    shape = " or ".join(f"{d.accelerator}:{d.accelerator_count:g}" if d.accelerator else "CPU" for d in job.demands)
    nodes = f" x{job.num_nodes} nodes" if job.num_nodes > 1 else ""
    tiers = "/".join(sorted(t.value for t in job.tiers))
    out.print(f"[green]ok[/green] {job.id}: {shape}{nodes}, team {job.team}, {job.priority}, "
              f"~{job.expected_hours:g} h, tiers {tiers} [dim]({escape(file)})[/dim]")


@app.command()
@_handled
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
    _guarded(body)


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
        jobs = to_jobs(load_specs(files, priority_classes=list(chosen.priorities), env=_env(env, env_file)))
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
    _guarded(body)


# --- the service ------------------------------------------------------------------------------------------

AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: RAY_ADDRESS, "
                                                   "else the cluster `placement up` started).")]


def _service(address: str | None):
    from placement.client import service

    return service(address)


def _ask(method, *args):
    """Call the service; what it cannot or will not answer raises ServiceUnavailable / ServiceError."""
    from placement.client import call

    return call(method, *args)


@app.command()
def up(
    address: AddressOpt = None,
    simulate_inventory: Annotated[bool, typer.Option(
        "--simulate-inventory", help="When starting a local Ray, also start one Ray node per inventory node, "
                                     "declaring its GPUs (to try the example inventory on one machine).")] = False,
    policy: Annotated[str, typer.Option(help="Built-in policy name or policy file.")] = "balanced",
    inventory: InventoryOpt = None,
    catalog: CatalogOpt = None,
    store: Annotated[Optional[Path], typer.Option(help="SQLite store (default: under ~/.local/state).")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between placement rounds.")] = 10.0,
    clouds: Annotated[bool, typer.Option(
        "--clouds/--no-clouds", help="Launch public and private placements through SkyPilot (run `sky check` and "
                                     "`placement sky-setup` first). Without it they are planned, not launched.")] = False,
    sky_api_server: Annotated[Optional[str], typer.Option(
        help="SkyPilot API server endpoint (default: SkyPilot's own choice, a local server).")] = None,
    grafana: Annotated[Optional[str], typer.Option(
        help="A Grafana's URL, for the Ray dashboard's charts (RAY_GRAFANA_HOST of a Ray that `up` starts).")] = None,
    listen: Annotated[Optional[str], typer.Option(
        help="When starting a local Ray, listen on this address (this host's address on the network other nodes "
             "join from) rather than on 127.0.0.1 only.")] = None,
) -> None:
    """Start the placement service: attach to a Ray cluster, or start a local one (token authentication on,
    127.0.0.1 only unless --listen), then the service actor; then Prometheus, if installed, and the status
    page's link."""
    from placement import observability
    from placement.lifecycle import UpError
    from placement.lifecycle import up as start
    from placement.service import ServiceConfig, default_store_path

    config = ServiceConfig(store_path=str((store or default_store_path()).expanduser().absolute()), policy=policy,
                           inventory=str(inventory) if inventory else None,
                           catalogs=tuple(map(str, catalog)) if catalog else None, round_interval_s=interval,
                           clouds=clouds, sky_api_server=sky_api_server)

    def body() -> None:
        from placement.auth import AuthError
        from placement.cluster import join_instructions
        from placement.secrets import SecretError

        observability.prepare_ray_env(grafana)
        with err.status("Starting Ray and the placement service..."):
            try:
                done = start(address=address, simulate_inventory=simulate_inventory, config=config,
                             store_given=store is not None, listen=listen)
            except (UpError, AuthError, SecretError) as exc:
                _fail(str(exc))
        for note in done["notes"]:
            err.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True, markup=False)
        ray_note = "started a local Ray" if done["started_ray"] else f"attached to Ray at {done['address']}"
        service_note = "started the service" if done["started_service"] else "the service was already running"
        out.print(f"{ray_note}; {service_note}. Dashboard: http://{done['dashboard']}", soft_wrap=True)
        if done["started_ray"]:
            out.print(join_instructions(done["address"], listen), soft_wrap=True, markup=False)
        for line in observability.after_up(_service(address)):
            out.print(line, soft_wrap=True)
    _guarded(body)


@app.command("sky-setup")
def sky_setup(
    inventory: InventoryOpt = None,
    sky_config: Annotated[Path, typer.Option(help="SkyPilot config file to write the private pools' prices into.")]
    = Path("~/.sky/config.yaml"),
) -> None:
    """Make SkyPilot price as the engine does: install the shipped catalogs where SkyPilot has none, and
    write each private pool's internal price into SkyPilot's config (kubernetes.context_configs.<ctx>.pricing)."""
    from clouds.inventory import load_inventory
    from clouds.offers import DEFAULT_INVENTORY
    from clouds.private import write_sky_pricing
    from clouds.sky_catalog import install_catalogs

    def body() -> None:
        done = install_catalogs()
        out.print(f"catalogs in {done.directory}: installed {', '.join(done.installed) or 'nothing'}; "
                  f"kept {', '.join(done.kept) or 'nothing'}")
        pools = load_inventory(inventory or DEFAULT_INVENTORY)
        if pools.pools:
            write_sky_pricing(pools, sky_config)
            out.print(f"prices of {len(pools.pools)} private pool(s) written to {sky_config.expanduser()}")
    _guarded(body)


@app.command()
@_handled
def down() -> None:
    """Stop the service, and the local Ray if `placement up` started it (its processes, nothing else)."""
    from placement import observability
    from placement.lifecycle import down as stop

    done = stop()
    out.print(("stopped the service" if done["stopped_service"] else "no service was running")
              + ("; stopped the local Ray" if done["stopped_ray"] else ""))
    if stopped := observability.stop():
        out.print(stopped)


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
        values = _env(env, env_file)
        check_envs_set(load_specs(files, env=values))  # a bad file is reported before the service is asked
        handle = _service(address)
        loaded = load_specs(files, allowed_roots=call(handle.file_roots), env=values)  # the roots it allows
        if missing := unknown_names([item.data for item in loaded], secret or []):
            _fail(f"--secret {', '.join(missing)}: no env of that name in {', '.join(map(str, files))}")
        loaded = [replace(item, data=mark_secret(item.data, secret or [])) for item in loaded]
        ids = send(handle, loaded)
        for job_id in ids:
            out.print(job_id, soft_wrap=True)  # never wrapped: scripts copy it
        if wait:
            _wait_placed(handle, ids, call)
    _guarded(body)


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
@_handled
def status(
    job: Annotated[Optional[str], typer.Argument(help="One job's id.")] = None,
    team: Annotated[Optional[str], typer.Option(help="Only this team's jobs.")] = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Jobs with their state, tier, target, GPUs, $/h, spend, energy and carbon so far, age and, if pending, why;
    then what flagged similar jobs (same team and name) recommend to the jobs not finished."""
    from rich.markup import escape

    rows = _ask(_service(address).status, job, team)
    if job and not rows:
        _fail(f"no job {job!r}")
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
@_handled
def spend(
    team: Annotated[Optional[str], typer.Option(help="Only this team (and not the global scope).")] = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Private and public spend per scope against its caps: $/h now, $ today and this month, projections to
    the end of the UTC day and month, and the $/h the scope may spend now (the tightest of its rate cap and
    what its budgets leave)."""
    rows = _ask(_service(address).spend, team)
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
@_handled
def load(
    service: Annotated[str, typer.Argument(help="The service's id (`placement status` shows it on its replicas).")],
    qps: Annotated[float, typer.Argument(help="Requests per second over all its replicas.")],
    address: AddressOpt = None,
) -> None:
    """Report a service's load; the next round scales its replicas to ceil(load / target_qps_per_replica)."""
    _ask(_service(address).report_load, service, qps)
    out.print(f"{service}: {qps:g} requests/s")


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _clock(at: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S")


@app.command("explain")
@_handled
def explain_cmd(job: Annotated[str, typer.Argument(help="The job's id.")], address: AddressOpt = None) -> None:
    """Why a job is where it is, or why it waits: its history, the next best options, and what flagged similar
    jobs recommend."""
    from rich.markup import escape

    answer = _ask(_service(address).explain, job)
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
@_handled
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
        _fail(f"--since: {exc.message}: given {exc.given}; valid: {exc.valid}")
    if not since_s > 0:
        _fail(f"--since: the window must be longer than 0, given {since!r}")
    answer = _ask(_service(address).debt, team, since_s, plot is not None)
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
@_handled
def cancel(jobs: Annotated[list[str], typer.Argument(help="Job ids.")], address: AddressOpt = None) -> None:
    """Cancel jobs: pending ones are dropped, running ones stopped."""
    done = _ask(_service(address).cancel, jobs)
    for job_id in jobs:
        out.print(f"{job_id}: {'cancelled' if job_id in done else 'not found or already finished'}")
    if len(done) < len(jobs):
        raise typer.Exit(1)


@app.command()
@_handled
def logs(job: Annotated[str, typer.Argument(help="The job's id.")], address: AddressOpt = None) -> None:
    """The output of an on-prem job (its Ray job's logs)."""
    sys.stdout.write(_ask(_service(address).logs, job))


from placement.replay.command import replay  # noqa: E402  (the command lives with its package)

app.command("replay")(replay)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
