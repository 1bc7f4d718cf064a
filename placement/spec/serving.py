"""`service:` of a SkyPilot task (SkyServe): readiness probe, replica policy, load balancer, pool, TLS.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from placement.spec.values import StrictModel, one_of
from placement.yamlio import Invalid, show


class ReadinessProbe(StrictModel):
    path: str
    initial_delay_seconds: float | None = None
    timeout_seconds: float | None = None
    endpoint_probe_interval_seconds: float | None = None
    consecutive_failure_threshold_timeout: float | None = None
    post_data: str | dict[str, Any] | None = None
    headers: dict[str, str] | None = None


class ReplicaPolicy(StrictModel):
    min_replicas: NonNegativeInt
    max_replicas: NonNegativeInt | None = None
    num_overprovision: NonNegativeInt | None = None
    target_qps_per_replica: Annotated[float, Field(ge=0)] | dict[str, Annotated[float, Field(ge=0)]] | None = None
    dynamic_ondemand_fallback: bool | None = None
    base_ondemand_fallback_replicas: NonNegativeInt | None = None
    spot_placer: Annotated[str, one_of("dynamic_fallback")] | None = None
    upscale_delay_seconds: float | None = None
    downscale_delay_seconds: float | None = None

    @model_validator(mode="after")
    def _range(self) -> ReplicaPolicy:
        """SkyServe's checks (sky/serve/service_spec.py): autoscaling between two counts needs a target load."""
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise Invalid("max_replicas is below min_replicas", given=str(self.max_replicas),
                          valid=f"at least min_replicas ({self.min_replicas})", path=("max_replicas",))
        if self.target_qps_per_replica is not None and self.max_replicas is None:
            raise Invalid("target_qps_per_replica autoscales up to max_replicas, which is not set", given="no "
                          "max_replicas", valid="max_replicas: <n> beside target_qps_per_replica",
                          path=("target_qps_per_replica",))
        if self.target_qps_per_replica is None and self.max_replicas not in (None, self.min_replicas):
            raise Invalid("different min_replicas and max_replicas autoscale on a target load, which is not set",
                          given=f"min_replicas: {self.min_replicas}, max_replicas: {self.max_replicas}",
                          valid="target_qps_per_replica: <requests/s per replica>, or max_replicas equal to "
                                "min_replicas", path=("max_replicas",))
        return self


class LoadBalancer(StrictModel):
    stream_timeout_seconds: float | None = None


class ServicePool(StrictModel):
    workers: NonNegativeInt | None = None
    min_workers: NonNegativeInt | None = None
    max_workers: NonNegativeInt | None = None
    queue_length_threshold: PositiveInt | None = None
    upscale_delay_seconds: Annotated[float, Field(ge=0)] | None = None
    downscale_delay_seconds: Annotated[float, Field(ge=0)] | None = None


class ServiceTls(StrictModel):
    keyfile: str
    certfile: str


class Service(StrictModel):
    """SkyServe's `service:` block."""

    readiness_probe: str | ReadinessProbe | None = None
    load_balancer: LoadBalancer | None = None
    pool: ServicePool | None = None
    replica_policy: ReplicaPolicy | None = None
    ports: int | None = None
    replicas: NonNegativeInt | None = None
    workers: NonNegativeInt | None = None
    load_balancing_policy: Annotated[str, one_of("round_robin", "least_load",
                                                  "instance_aware_least_load")] | None = None
    tls: ServiceTls | None = None

    @model_validator(mode="after")
    def _probe_path(self) -> Service:
        probe = self.readiness_probe
        path = probe if isinstance(probe, str) else probe.path if probe is not None else "/"
        if not path.startswith("/"):
            raise Invalid("the readiness path must start with /", given=show(path), valid="a path such as /health",
                          path=("readiness_probe",) if isinstance(probe, str) else ("readiness_probe", "path"))
        return self

    @model_validator(mode="after")
    def _one_count(self) -> Service:
        if self.replicas is not None and self.replica_policy is not None:
            raise Invalid("give either replicas or replica_policy, not both", given=f"replicas: {self.replicas}",
                          valid="replicas: <n> (fixed), or replica_policy with min_replicas (autoscaled)",
                          path=("replicas",))
        return self

    @property
    def replicas_now(self) -> int:
        """Replicas to place now: the autoscaler's minimum, the fixed count, or 1."""
        if self.replica_policy is not None:
            return self.replica_policy.min_replicas
        return self.replicas if self.replicas is not None else 1
