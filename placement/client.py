"""What the CLI asks of the running service: start it, stop it, submit, query, cancel.

Every remote call has a time-out: a service that is restarting answers late,
a dead cluster should say so rather than hang.
"""

from __future__ import annotations

import uuid
from typing import Any

import ray

from placement.actor import find_service, start_service
from placement.cluster import connect, read_state, start_local, stop_local, try_connect, write_state
from placement.service import ServiceConfig
from placement.spec import LoadedSpec

CALL_TIMEOUT_S = 60.0


class ServiceUnavailable(RuntimeError):
    pass


def up(*, address: str | None, simulate_inventory: bool, config: ServiceConfig) -> dict[str, Any]:
    """Attach to (or start) Ray, then start the service if it is not running. Returns what was done."""
    started_ray = False
    context = try_connect(address)
    if context is None:
        if address:
            raise ServiceUnavailable(f"no Ray cluster answers at {address}")
        inventory = None
        if simulate_inventory:
            from clouds.inventory import load_inventory
            from clouds.offers import DEFAULT_INVENTORY

            inventory = load_inventory(config.inventory or DEFAULT_INVENTORY)
        start_local(inventory)
        started_ray = True
        context = connect(None)
    service = find_service()
    started_service = service is None
    if started_service:
        from dataclasses import replace

        service = start_service(replace(config, dashboard_url=context.dashboard_url))
        ray.get(service.status.remote("-"), timeout=CALL_TIMEOUT_S)  # wait until it answers
    state = read_state()
    write_state({"started_ray": started_ray or state.get("started_ray", False),
                 "address": context.address_info.get("gcs_address"), "store": config.store_path})
    return {"started_ray": started_ray, "started_service": started_service,
            "dashboard": context.dashboard_url, "address": context.address_info.get("gcs_address")}


def down() -> dict[str, bool]:
    """Stop the service, and Ray if `up` started it."""
    state = read_state()
    stopped_service = False
    if try_connect(state.get("address")) is not None:
        service = find_service()
        if service is not None:
            ray.kill(service, no_restart=True)
            stopped_service = True
        ray.shutdown()
    if state.get("started_ray"):
        stop_local()
    write_state({})
    return {"stopped_service": stopped_service, "stopped_ray": bool(state.get("started_ray"))}


def service(address: str | None = None) -> Any:
    if try_connect(address or read_state().get("address")) is None:
        raise ServiceUnavailable("no Ray cluster is running here; start one with `placement up`")
    handle = find_service()
    if handle is None:
        raise ServiceUnavailable("the placement service is not running; start it with `placement up`")
    return handle


def call(method: Any, *args: Any) -> Any:
    return ray.get(method.remote(*args), timeout=CALL_TIMEOUT_S)


def submit(handle: Any, loaded: list[LoadedSpec]) -> list[str]:
    documents = [{"source": item.source, "data": item.data} for item in loaded]
    return call(handle.submit, documents, uuid.uuid4().hex)
