"""`FakeSky`: a test double at SkyPilot's SDK calls (`sky.launch`, `sky.status`, `sky.jobs.*`, ...).

There is no cloud here, so the double stands exactly where the engine's code would reach a
SkyPilot API server: it takes the real `sky.Task` objects the engine builds, records every call,
answers with SkyPilot's own record shapes (`StatusResponse`, `ClusterJobRecord`,
`ManagedJobRecord`, `RequestPayload` fields) and fails on demand with SkyPilot's own exceptions.
The test moves the simulated world on: `provision`, `finish`, `fail_launch`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


@dataclass
class Call:
    name: str
    args: tuple
    kwargs: dict[str, Any]


@dataclass
class _Request:
    name: str  # "launch" or "jobs.launch" (SkyPilot's request names)
    cluster: str
    status: str = "RUNNING"
    error: BaseException | None = None


@dataclass
class FakeSky:
    calls: list[Call] = field(default_factory=list)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"status", "jobs": [..]}
    managed: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"status", "failure_reason"}
    requests: dict[str, _Request] = field(default_factory=dict)
    fail_next: list[BaseException] = field(default_factory=list)  # raised by the next launch call itself
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.jobs = SimpleNamespace(launch=self._jobs_launch, queue=self._jobs_queue, cancel=self._jobs_cancel)

    # --- what the test asks -------------------------------------------------------------------------------

    def launches(self) -> list[Call]:
        return [c for c in self.calls if c.name in ("launch", "jobs.launch")]

    def called(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    # --- what the test makes happen -----------------------------------------------------------------------

    def provision(self, name: str, job_status: str = "RUNNING") -> None:
        """The launch of `name` succeeded: a cluster UP running its task, or a managed job running."""
        request = next(r for r in self.requests.values() if r.cluster == name)
        request.status = "SUCCEEDED"
        if request.name == "launch":
            self.clusters[name] = {"status": "UP", "jobs": [{"job_id": 1, "status": job_status}]}
        else:
            self.managed[name] = {"status": job_status, "failure_reason": None}

    def finish(self, name: str, status: str = "SUCCEEDED") -> None:
        if name in self.clusters:
            self.clusters[name]["jobs"][-1]["status"] = status
        else:
            self.managed[name]["status"] = status

    def fail_launch(self, name: str, error: BaseException) -> None:
        """The launch request of `name` fails on the API server with `error` (as `sky.get` re-raises it)."""
        request = next(r for r in self.requests.values() if r.cluster == name)
        request.status, request.error = "FAILED", error

    # --- the SDK surface ----------------------------------------------------------------------------------

    def _record(self, call: str, /, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(call, args, kwargs))

    def _request(self, name: str, cluster: str) -> str:
        if self.fail_next:
            raise self.fail_next.pop(0)
        request_id = f"req-{next(self._ids)}"
        self.requests[request_id] = _Request(name, cluster)
        return request_id

    def launch(self, task: Any, cluster_name: str | None = None, **kwargs: Any) -> str:
        self._record("launch", task, cluster_name=cluster_name, **kwargs)
        return self._request("launch", cluster_name or "")

    def _jobs_launch(self, task: Any, name: str | None = None, **kwargs: Any) -> str:
        self._record("jobs.launch", task, name=name, **kwargs)
        return self._request("jobs.launch", name or "")

    def get(self, request_id: Any) -> Any:
        if isinstance(request_id, tuple) and request_id[0] == "result":
            return request_id[1]
        request = self.requests[request_id]
        if request.error is not None:
            raise request.error
        return None

    def status(self, cluster_names: list[str] | None = None, **kwargs: Any) -> tuple:
        self._record("status", cluster_names=cluster_names, **kwargs)
        names = cluster_names if cluster_names is not None else list(self.clusters)
        return ("result", [SimpleNamespace(name=n, status=self.clusters[n]["status"], init_status_reason=None)
                           for n in names if n in self.clusters])

    def queue(self, cluster_name: str, skip_finished: bool = False, **kwargs: Any) -> tuple:
        self._record("queue", cluster_name, skip_finished=skip_finished)
        return ("result", [SimpleNamespace(**job) for job in self.clusters[cluster_name]["jobs"]])

    def down(self, cluster_name: str, **kwargs: Any) -> tuple:
        self._record("down", cluster_name, **kwargs)
        self.clusters.pop(cluster_name, None)
        return ("result", None)

    def _jobs_queue(self, refresh: bool = False, skip_finished: bool = False, **kwargs: Any) -> tuple:
        self._record("jobs.queue", refresh=refresh, skip_finished=skip_finished)
        return ("result", [SimpleNamespace(job_name=n, details=None, **m) for n, m in self.managed.items()])

    def _jobs_cancel(self, name: str | None = None, **kwargs: Any) -> tuple:
        self._record("jobs.cancel", name=name, **kwargs)
        self.managed[name]["status"] = "CANCELLED"
        return ("result", None)

    def api_status(self, request_ids: list[str] | None = None, **kwargs: Any) -> list[SimpleNamespace]:
        self._record("api_status", request_ids=request_ids, **kwargs)
        chosen = {k: v for k, v in self.requests.items() if request_ids is None or k in request_ids}
        if request_ids is None:  # SkyPilot lists unfinished requests unless asked for all
            chosen = {k: v for k, v in chosen.items() if v.status in ("PENDING", "RUNNING")}
        return [SimpleNamespace(request_id=k, name=v.name, status=v.status,
                                cluster_name=v.cluster if v.name == "launch" else None,
                                request_body=json.dumps({"cluster_name" if v.name == "launch" else "name": v.cluster}))
                for k, v in chosen.items()]
