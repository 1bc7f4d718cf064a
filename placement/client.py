"""What the CLI asks of the running service: submit, query, cancel (`placement.lifecycle` starts and stops it).

Every remote call has a time-out: a service that is restarting answers late,
a dead cluster should say so rather than hang.
"""

from __future__ import annotations

import uuid
from typing import Any

import ray

from placement.actor import find_service
from placement.cluster import read_state, try_connect
from placement.spec import LoadedSpec

CALL_TIMEOUT_S = 60.0


class ServiceUnavailable(RuntimeError):
    pass


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
