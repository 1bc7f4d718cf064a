"""The commands that start and stop the service and what runs beside it: up, sky-setup, down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from placement.cli import common
from placement.cli.common import AddressOpt, CatalogOpt, InventoryOpt, app, err, fail, guarded, handled, out


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
    from placement.wiring import ServiceConfig, default_store_path

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
                fail(str(exc))
        for note in done["notes"]:
            err.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True, markup=False)
        ray_note = "started a local Ray" if done["started_ray"] else f"attached to Ray at {done['address']}"
        service_note = "started the service" if done["started_service"] else "the service was already running"
        out.print(f"{ray_note}; {service_note}. Dashboard: http://{done['dashboard']}", soft_wrap=True)
        if done["started_ray"]:
            out.print(join_instructions(done["address"], listen), soft_wrap=True, markup=False)
        for line in observability.after_up(common.service_handle(address)):
            out.print(line, soft_wrap=True)
    guarded(body)


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
    guarded(body)


@app.command()
@handled
def down() -> None:
    """Stop the service, and the local Ray if `placement up` started it (its processes, nothing else)."""
    from placement import observability
    from placement.lifecycle import down as stop

    done = stop()
    out.print(("stopped the service" if done["stopped_service"] else "no service was running")
              + ("; stopped the local Ray" if done["stopped_ray"] else ""))
    if stopped := observability.stop():
        out.print(stopped)


