"""`placement up` and `placement down`: attach to (or start) Ray, start the service, and undo exactly that.

`up` records what it started before it starts the service, so a failing
service start (a corrupt or unwritable store) is cleaned up here and `down`
can always find what is left. The store is checked where the service will run
(a task on the head node) before the service starts, so its problem comes
back as one line naming the path, not as an actor's death.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import replace
from typing import Any

import ray

from placement.actor import find_service, start_service
from placement.cluster import (ClusterError, connect, find_address, read_state, start_local, stop_local,
                               try_connect, write_state)
from placement.wiring import ServiceConfig

START_TIMEOUT_S = 120.0  # a new service loads its inventory, catalogs and store before it first answers


class UpError(RuntimeError):
    """`up` could not finish; what it started is stopped again and the message is one line."""


@ray.remote(num_cpus=0, max_retries=0, resources={"node:__internal_head__": 0.001})
def _check_store(path: str) -> None:
    from placement.store import Store

    Store(path).close()


def up(*, address: str | None, simulate_inventory: bool, config: ServiceConfig, store_given: bool,
       listen: str | None = None) -> dict[str, Any]:
    """Attach to (or start) Ray, then start the service if it is not running. Returns what was done and notes."""
    notes: list[str] = []
    try:
        found, stale = find_address(address)
    except ClusterError as exc:
        raise UpError(str(exc)) from None
    if stale:
        notes.append(stale)
    started: dict[str, Any] | None = None
    if found is None:
        _check_local_store(config.store_path)  # the service will run here: a bad store starts nothing
        inventory = None
        if simulate_inventory:
            from clouds.inventory import load_inventory
            from clouds.offers import DEFAULT_INVENTORY

            inventory = load_inventory(config.inventory or DEFAULT_INVENTORY)
        try:
            started = start_local(inventory, listen)
        except ClusterError as exc:
            raise UpError(str(exc)) from None
        write_state({"started_ray": True, **started, "store": config.store_path})
        found = started["address"]
    try:
        context = connect(found)
        # Ray's error listener prints the traceback of a service that fails to start to stdout, on its own
        # thread; the cause is said once, in one line, by the caller.
        with contextlib.redirect_stdout(io.StringIO()):
            started_service = _ensure_service(context, config, store_given, store_checked=started is not None)
    except BaseException as exc:
        if started is not None:
            ray.shutdown()
            stop_local(started, grace_s=0.0)  # nothing of it is worth keeping
            write_state({})
        if isinstance(exc, UpError):
            raise
        if isinstance(exc, (ConnectionError, RuntimeError, ray.exceptions.RayError)):
            raise UpError(f"the service did not start: {_one_line(exc)}") from None
        raise
    state = read_state()
    gcs = context.address_info.get("gcs_address")
    write_state({**state, "started_ray": bool(state.get("started_ray")), "address": gcs,
                 "store": config.store_path if started_service else state.get("store", config.store_path)})
    return {"started_ray": started is not None, "started_service": started_service,
            "dashboard": context.dashboard_url, "address": gcs, "notes": notes}


def _check_local_store(path: str) -> None:
    from placement.secrets import SecretError
    from placement.store import Store, StoreError

    try:
        Store(path).close()
    except (StoreError, SecretError) as exc:
        raise UpError(str(exc)) from None


def _ensure_service(context: Any, config: ServiceConfig, store_given: bool, store_checked: bool) -> bool:
    service = find_service()
    if service is not None:
        running = ray.get(service.store_path.remote(), timeout=START_TIMEOUT_S)
        if store_given and running != config.store_path:
            raise UpError(f"the service is already running with the store {running}; `placement down` first "
                          f"to use {config.store_path}")
        return False
    if not store_checked:  # checked where the service will run: the cluster's head node may be another machine
        try:
            ray.get(_check_store.remote(config.store_path), timeout=START_TIMEOUT_S)
        except ray.exceptions.RayTaskError as exc:
            raise UpError(_one_line(exc.cause if exc.cause is not None else exc)) from None
    handle = start_service(replace(config, dashboard_url=context.dashboard_url))
    ray.get(handle.status.remote("-"), timeout=START_TIMEOUT_S)  # wait until it answers
    return True


def _one_line(exc: BaseException) -> str:
    """Ray's errors carry whole tracebacks: the exception that ended one says what happened, else the first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", line)]
    text = raised[-1] if raised else lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def down() -> dict[str, bool]:
    """Stop the service, and Ray if `up` started it (by the process sessions it recorded, nothing else)."""
    state = read_state()
    stopped_service = False
    if state.get("address") and try_connect(state["address"]) is not None:
        service = find_service()
        if service is not None:
            try:  # its telemetry agents are detached: they would outlive it on a cluster that stays up
                ray.get(service.stop_agents.remote(), timeout=START_TIMEOUT_S)
            except ray.exceptions.RayError:
                pass
            ray.kill(service, no_restart=True)
            stopped_service = True
        ray.shutdown()
    stopped_ray = bool(state.get("started_ray")) and stop_local(state)
    write_state({})
    return {"stopped_service": stopped_service, "stopped_ray": stopped_ray}

