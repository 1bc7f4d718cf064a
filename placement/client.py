"""What the CLI asks of the running service: submit, query, cancel (`placement.lifecycle` starts and stops it).

Every remote call has a time-out: a service that is restarting answers late,
a dead cluster should say so rather than hang. Failures come back as two
exceptions the CLI prints as one line each: `ServiceUnavailable` (no Ray, no
service, or no answer in time) and `ServiceError` (the service refused the request).
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import ray

from placement.actor import find_service
from placement.cluster import read_state, try_connect
from placement.errors import ServiceError, ServiceUnavailable
from placement.spec import LoadedSpec

CALL_TIMEOUT_S = 30.0  # the longest one call waits; the service is back within seconds of a crash
PROBE_TIMEOUT_S = 3.0  # Ray itself waits minutes for a GCS that is gone; a TCP probe first answers in seconds

__all__ = ["ServiceError", "ServiceUnavailable", "call", "service", "submit"]


def service(address: str | None = None) -> Any:
    """The running service's handle, once this process is attached to its Ray cluster."""
    address = address or read_state().get("address")
    if not ray.is_initialized():
        _probe(address)
    if try_connect(address) is None:
        raise ServiceUnavailable("no Ray cluster is running here; start one with `placement up`")
    handle = find_service()
    if handle is None:
        raise ServiceUnavailable("the placement service is not running; start it with `placement up`")
    return handle


def _probe(address: str | None) -> None:
    """Fail in seconds where the named cluster's GCS does not accept connections (a stopped cluster, a stale
    address in `placement up`'s file): `ray.init` would wait minutes. Only an address given as host:port is
    probed, as written (Ray's own resolution would turn 127.0.0.1 into the machine's address); where none is
    given, `try_connect` checks Ray's address file itself."""
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ServiceUnavailable(f"Ray is not reachable at {host}:{port} ({reason.lower()}): the cluster is stopped "
                                 "or the address is stale; start one with `placement up`, or pass --address") from None


def call(method: Any, *args: Any, timeout_s: float | None = None) -> Any:
    """One call to the service, waiting at most `timeout_s` (default CALL_TIMEOUT_S)."""
    wait = CALL_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        return ray.get(method.remote(*args), timeout=wait)
    except ray.exceptions.RayTaskError as exc:  # the service raised: unknown job, an invalid spec, a store error
        from placement.reconciler import brief

        raise ServiceError(brief(str(exc.cause) if exc.cause is not None else str(exc))) from None
    except ray.exceptions.GetTimeoutError:
        raise ServiceUnavailable(f"the placement service is not answering (restarting?) after {wait:g} s; try "
                                 "again in a moment, and see `placement status`") from None
    except ray.exceptions.ActorDiedError:
        raise ServiceUnavailable("the placement service has stopped; start it with `placement up`") from None
    except ray.exceptions.RayActorError:  # ActorUnavailableError: it is restarting
        raise ServiceUnavailable("the placement service is not answering (restarting?); try again in a "
                                 "moment") from None


def documents_of(loaded: list[LoadedSpec]) -> list[dict[str, Any]]:
    """What `submit` sends for these specs: each document, and a pipeline's order and a job group by source."""
    return [{"source": item.source, "data": item.data,
             "after": f"{item.file}#{item.after}" if item.after is not None else None,
             "group": f"{item.file}#{item.group}" if item.group else None}
            for item in loaded]


def submit(handle: Any, loaded: list[LoadedSpec]) -> list[str]:
    """Store the jobs; the reply is their ids. Ray delivers the call again if the service restarts meanwhile,
    and the batch token makes a second delivery return the first one's ids."""
    documents = documents_of(loaded)
    try:
        return call(handle.submit, documents, uuid.uuid4().hex)
    except ServiceUnavailable as exc:
        raise ServiceUnavailable(f"{exc} (the jobs may still be stored once it answers: check `placement status` "
                                 "before submitting again)") from None
