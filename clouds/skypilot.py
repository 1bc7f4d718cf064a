"""Launch, watch and stop work through SkyPilot's SDK: the public clouds and the private pool.

On-demand work becomes a SkyPilot cluster (`sky.launch` with autostop and autodown, so an
instance the engine forgets still stops itself); spot work becomes a managed job
(`sky.jobs.launch`), which SkyPilot recovers after preemption. Either is named after the
launch handle (`sky_name`), and SkyPilot's API server is asked for that name before anything is
launched: an existing cluster, a managed job or a launch request still in flight means the
launch already happened, so a restarted service never launches twice.

The SDK is client-server: every call returns a request id and `sky.get` waits for its result.
A launch is not waited for (provisioning takes minutes): its request id is kept, and `observe`
asks the API server how it went. A failed launch comes back as `WorkStatus.LAUNCH_FAILED` with
a `LaunchError` that says what to avoid for a while (`Block`), from SkyPilot's own exception.

Everything that reaches SkyPilot goes through the `sdk` object (the `sky` module by default);
tests pass a double with the same calls.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from clouds.base import LaunchError, LaunchRequest, Observation, Scope, WorkStatus
from clouds.sky_tasks import build_task, sky_name
from clouds.telemetry import HANDLE_ENV
from placement.model import Offer, Tier

log = logging.getLogger(__name__)

# SkyPilot's cluster job statuses (sky.skylet.job_lib.JobStatus) and managed job statuses
# (sky.jobs.state.ManagedJobStatus), by name.
_CLUSTER_JOB_STATUS = {
    "INIT": WorkStatus.STARTING, "PENDING": WorkStatus.STARTING, "SETTING_UP": WorkStatus.STARTING,
    "RUNNING": WorkStatus.RUNNING, "SUCCEEDED": WorkStatus.SUCCEEDED, "FAILED": WorkStatus.FAILED,
    "FAILED_SETUP": WorkStatus.FAILED, "FAILED_DRIVER": WorkStatus.FAILED, "CANCELLED": WorkStatus.STOPPED,
}
_MANAGED_JOB_STATUS = {
    "PENDING": WorkStatus.STARTING, "SUBMITTED": WorkStatus.STARTING, "STARTING": WorkStatus.STARTING,
    "RUNNING": WorkStatus.RUNNING, "RECOVERING": WorkStatus.RUNNING, "WINDING_DOWN": WorkStatus.RUNNING,
    "CANCELLING": WorkStatus.STOPPED, "CANCELLED": WorkStatus.STOPPED, "SUCCEEDED": WorkStatus.SUCCEEDED,
    "FAILED": WorkStatus.FAILED, "FAILED_SETUP": WorkStatus.FAILED, "FAILED_PRECHECKS": WorkStatus.FAILED,
    "FAILED_CONTROLLER": WorkStatus.FAILED,
}
_LAUNCH_REQUESTS = ("launch", "jobs.launch")  # sky.server.requests.request_names
_IN_FLIGHT = ("PENDING", "WAITING", "RUNNING")  # sky.server.requests.requests.RequestStatus
# Exceptions that say the cloud account cannot be used at all (sky.exceptions), by class name.
_ACCOUNT_ERRORS = frozenset({"NoCloudAccessError", "InvalidCloudCredentials", "CloudUserIdentityError",
                             "InvalidCloudConfigs", "PermissionDeniedError", "NoWorkspaceAccessError",
                             "ClusterOwnerIdentityMismatchError"})
_SERVER_ERRORS = frozenset({"ApiServerConnectionError", "ApiServerAuthenticationError",
                            "APIVersionMismatchError", "ServerTemporarilyUnavailableError"})
_QUOTA_WORDS = ("quota", "limitexceeded", "vcpulimit", "insufficient_quota")


def _name(value: Any) -> str:
    """An enum's name, or the string itself (the SDK returns enums; JSON round trips give strings)."""
    return str(getattr(value, "value", value)).split(".")[-1]


def _get(record: Any, field: str) -> Any:
    return record.get(field) if isinstance(record, dict) else getattr(record, field, None)


class SkyPilotProvider:
    """A provider whose work SkyPilot launches. `tier` says which offers it launches (public or private)."""

    def __init__(self, tier: Tier, name: str, offers: list[Offer], *, sdk: Any = None,
                 autostop_minutes: int = 10):
        if sdk is None:
            import sky as sdk
        self.tier = tier
        self.name = name
        self._sdk = sdk
        self._offers = [o for o in offers if o.tier is tier]
        self._autostop_minutes = autostop_minutes
        self._requests: dict[str, str] = {}  # sky name -> launch request id, while this process waits on it

    # --- offers -------------------------------------------------------------------------------------------

    def offers(self, reserved: dict[str, tuple[float, float, float]]) -> list[Offer]:
        del reserved  # public instances are dedicated; a pool's quota is a model constraint
        return list(self._offers)

    # --- launching ----------------------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> None:
        offer = request.offer
        if offer is None:
            raise LaunchError(f"offer {request.placement.offer_id} is not in this service's catalog any more")
        name = sky_name(request.handle)
        try:
            if self._known(name):
                return
            task = build_task(request.spec, request.placement, offer)
            task.name = name
            task.update_envs({"PLACEMENT_JOB_ID": request.job_id, "PLACEMENT_ATTEMPT": str(request.attempt),
                              HANDLE_ENV: request.handle})
            if request.placement.spot:
                request_id = self._sdk.jobs.launch(task, name=name)
            else:
                request_id = self._sdk.launch(task, cluster_name=name, idle_minutes_to_autostop=self._autostop_minutes,
                                              down=True)
        except LaunchError:
            raise
        except Exception as exc:
            raise classify(exc) from exc
        self._requests[name] = request_id

    def _known(self, name: str) -> bool:
        """Whether SkyPilot already has this launch: a cluster, a managed job, or a request in flight."""
        if name in self._requests:
            return True
        if self._sdk.get(self._sdk.status(cluster_names=[name])):
            return True
        if any(_get(job, "job_name") == name for job in self._managed_jobs()):
            return True
        return self._request_in_flight(name) is not None

    def _managed_jobs(self) -> list[Any]:
        return list(self._sdk.get(self._sdk.jobs.queue(refresh=False, skip_finished=False)) or [])

    def _request_in_flight(self, name: str) -> Any | None:
        """A launch request for this name that the API server has not finished (after our restart)."""
        for request in self._sdk.api_status():
            if _get(request, "name") in _LAUNCH_REQUESTS and _name(_get(request, "status")) in _IN_FLIGHT \
                    and name in _request_names(request):
                return request
        return None

    # --- watching -----------------------------------------------------------------------------------------

    def observe(self, handles: list[str]) -> dict[str, Observation]:
        names = {handle: sky_name(handle) for handle in handles}
        clusters = {_get(c, "name"): c for c in self._sdk.get(self._sdk.status(cluster_names=list(names.values())))}
        managed: dict[str, Any] = {}
        for job in self._managed_jobs():  # newest last: a recovered job keeps its name
            if _get(job, "job_name") in names.values():
                managed[_get(job, "job_name")] = job
        result = {}
        for handle, name in names.items():
            if name in managed:
                result[handle] = self._managed_observation(managed[name])
            elif name in clusters:
                result[handle] = self._cluster_observation(name, clusters[name])
            else:
                result[handle] = self._request_observation(name)
        return result

    def _managed_observation(self, job: Any) -> Observation:
        status = _name(_get(job, "status"))
        detail = _get(job, "failure_reason") or _get(job, "details") or status
        if status == "FAILED_NO_RESOURCE":
            return Observation(WorkStatus.LAUNCH_FAILED, detail, LaunchError(f"no spot capacity: {detail}",
                                                                             scope=Scope.INSTANCE))
        return Observation(_MANAGED_JOB_STATUS.get(status, WorkStatus.RUNNING), detail)

    def _cluster_observation(self, name: str, cluster: Any) -> Observation:
        status = _name(_get(cluster, "status"))
        if status == "INIT":
            return Observation(WorkStatus.STARTING, _get(cluster, "init_status_reason") or "provisioning")
        if status == "STOPPED":
            return Observation(WorkStatus.STOPPED, "the cluster was stopped")
        self._requests.pop(name, None)  # provisioned: the launch request is no longer the news
        jobs = self._sdk.get(self._sdk.queue(name, skip_finished=False)) or []
        if not jobs:
            return Observation(WorkStatus.STARTING, "cluster up, task not submitted yet")
        latest = max(jobs, key=lambda j: _get(j, "job_id") or 0)
        status = _name(_get(latest, "status"))
        return Observation(_CLUSTER_JOB_STATUS.get(status, WorkStatus.RUNNING), f"task {status.lower()}")

    def _request_observation(self, name: str) -> Observation:
        """No cluster and no managed job yet: how is the launch request doing?"""
        request_id = self._requests.get(name)
        if request_id is None:
            request = self._request_in_flight(name)
            if request is not None:
                return Observation(WorkStatus.STARTING, "launch in progress (found on the API server)")
            return Observation(WorkStatus.MISSING, "SkyPilot knows no cluster, managed job or launch by this name")
        payloads = self._sdk.api_status(request_ids=[request_id])
        status = _name(_get(payloads[0], "status")) if payloads else "MISSING"
        if status in _IN_FLIGHT:
            return Observation(WorkStatus.STARTING, "launching")
        if status == "SUCCEEDED":  # launched and already gone (autodown), or a managed job submitted
            return Observation(WorkStatus.STARTING, "launch finished; waiting for SkyPilot's records")
        self._requests.pop(name, None)
        try:
            self._sdk.get(request_id)
        except Exception as exc:  # the launch's own exception, re-raised by the SDK
            error = classify(exc)
            return Observation(WorkStatus.LAUNCH_FAILED, str(error), error)
        return Observation(WorkStatus.LAUNCH_FAILED, f"launch request {status.lower()}",
                           LaunchError(f"launch request {status.lower()}"))

    # --- stopping -----------------------------------------------------------------------------------------

    def terminate(self, handle: str, grace_seconds: float = 0.0) -> None:
        """Tear down the cluster or cancel the managed job; nothing there is not an error.

        With `grace_seconds`, SkyPilot's graceful stop: the task is cancelled first and the teardown
        waits up to that long (for MOUNT_CACHED checkpoints to upload).
        """
        name = sky_name(handle)
        graceful = {"graceful": True, "graceful_timeout": int(grace_seconds)} if grace_seconds > 0 else {}
        self._requests.pop(name, None)
        if self._sdk.get(self._sdk.status(cluster_names=[name])):
            self._sdk.get(self._sdk.down(name, **graceful))
        if any(_get(job, "job_name") == name and _MANAGED_JOB_STATUS.get(_name(_get(job, "status")))
               in (WorkStatus.STARTING, WorkStatus.RUNNING) for job in self._managed_jobs()):
            self._sdk.get(self._sdk.jobs.cancel(name=name, **graceful))

    def logs(self, handle: str) -> str:
        raise ValueError(f"logs of SkyPilot work: `sky logs {sky_name(handle)}` "
                         f"(or `sky jobs logs --name {sky_name(handle)}` for spot work)")


def _request_names(request: Any) -> set[str]:
    names = {_get(request, "cluster_name")}
    try:
        body = json.loads(_get(request, "request_body") or "{}")
    except (TypeError, ValueError):
        body = {}
    names.update({body.get("cluster_name"), body.get("name")})
    return {n for n in names if n}


def classify(exc: BaseException) -> LaunchError:
    """What a SkyPilot exception means for the engine: retry elsewhere (and what to avoid), or give up.

    - no capacity or quota (`ResourcesUnavailableError`, after SkyPilot's own failover across the
      zones of the pinned region): the instance type in that region, for a cool-down.
    - the cloud account (no credentials, no access): the whole cloud, loudly.
    - SkyPilot's API server unreachable: every offer of the provider, loudly.
    - anything else (a task SkyPilot rejects): not retryable; the job fails with SkyPilot's words.
    """
    kind = type(exc).__name__
    text = str(exc).strip()
    message = f"{kind}: {text.splitlines()[0]}" if text else kind
    if kind in _SERVER_ERRORS:
        return LaunchError(f"SkyPilot's API server cannot be used: {message}", scope=Scope.PROVIDER, loud=True)
    if kind in _ACCOUNT_ERRORS:
        return LaunchError(f"the cloud account cannot be used ({message}); run `sky check`", scope=Scope.CLOUD,
                           loud=True)
    if isinstance(exc, _resources_unavailable()):
        history = " ".join(str(e) for e in getattr(exc, "failover_history", []) or [])
        what = "quota" if any(w in (text + history).lower() for w in _QUOTA_WORDS) else "capacity"
        return LaunchError(f"no {what}: {message}", scope=Scope.INSTANCE)
    return LaunchError(f"SkyPilot refused the launch: {message}", retryable=False)


def _resources_unavailable() -> type[BaseException]:
    from sky import exceptions

    return exceptions.ResourcesUnavailableError
