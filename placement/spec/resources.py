"""`resources:` of a SkyPilot task: the fields placement reads, `any_of` and `ordered` alternatives, and
the ones it launches as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from placement.spec.accelerators import Accelerators, gpu_choices
from placement.spec.values import (SKY_CLOUDS, Cpus, DiskSize, ExitCode, Infra, Memory, StrictModel, check_idle_time,
                                   infra_pin, one_of)
from placement.yamlio import Invalid, show


class JobRecovery(StrictModel):
    strategy: str | None = None
    max_restarts_on_errors: NonNegativeInt | None = None
    recover_on_exit_codes: ExitCode | list[ExitCode] | None = None


class Autostop(StrictModel):
    idle_minutes: NonNegativeInt | None = None
    down: bool | None = None
    wait_for: Annotated[str, one_of("jobs_and_ssh", "jobs", "none")] | None = None
    hook: str | None = None
    hook_timeout: PositiveInt | None = None


class AcceleratorArgs(StrictModel):
    runtime_version: str | None = None
    tpu_name: str | None = None
    tpu_vm: bool | None = None
    gcp_queued_resource: bool | None = None


class ResourceVolume(StrictModel):
    disk_size: DiskSize | None = None
    disk_tier: str | None = None
    path: str | None = None
    auto_delete: bool | None = None
    storage_type: str | None = None
    name: str | None = None
    attach_mode: str | None = None


class _ResourceFields(StrictModel):
    """The fields of one SkyPilot `Resources`, as a task YAML spells them."""

    infra: Infra | None = None
    cloud: Annotated[str, one_of(*SKY_CLOUDS)] | None = None  # older than infra, still accepted
    region: str | None = None
    zone: str | None = None
    cpus: Cpus | None = None
    memory: Memory | None = None
    accelerators: Accelerators | None = None
    gpus: Accelerators | None = None  # SkyPilot's alias of accelerators
    instance_type: str | None = None
    use_spot: bool | None = None
    job_recovery: str | JobRecovery | None = None
    volumes: list[ResourceVolume] | None = None
    disk_size: DiskSize | None = None
    ephemeral_storage: DiskSize | None = None  # deprecated by SkyPilot for disk_size
    disk_tier: Annotated[str, one_of("low", "medium", "high", "ultra", "best", "none")] | None = None
    network_tier: Annotated[str, one_of("standard", "best")] | None = None
    local_disk: str | None = None
    max_hourly_cost: PositiveFloat | None = None
    ports: int | str | list[int | str] | None = None
    labels: dict[str, str] | None = None
    accelerator_args: AcceleratorArgs | None = None
    image_id: str | dict[str, str] | None = None
    autostop: bool | int | Annotated[str, AfterValidator(check_idle_time)] | Autostop | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] | None = None  # SkyPilot's own job priority
    priority_class: str | None = None

    @model_validator(mode="after")
    def _no_double_spelling(self) -> _ResourceFields:
        if self.accelerators is not None and self.gpus is not None:
            raise Invalid("gpus is another name for accelerators: give only one", given="both",
                          valid="accelerators: or gpus:", path=("gpus",))
        legacy = [f for f in ("cloud", "region", "zone") if getattr(self, f) is not None]
        if self.infra is not None and legacy:
            raise Invalid(f"give either infra or {'/'.join(legacy)}, not both",
                          given=f"infra: {self.infra}, {legacy[0]}: {getattr(self, legacy[0])}",
                          valid="infra alone, e.g. infra: aws/us-east-1", path=(legacy[0],))
        return self

    @property
    def accelerator_value(self) -> Any:
        return self.accelerators if self.accelerators is not None else self.gpus

    @property
    def accelerator_key(self) -> str:
        return "gpus" if self.gpus is not None else "accelerators"

    @property
    def pin(self) -> tuple[str | None, str | None, str | None]:
        """(cloud, region, zone) this resource is pinned to; None where it is free."""
        if self.infra is not None:
            return infra_pin(self.infra)
        return (self.cloud.lower() if self.cloud else None), self.region, self.zone


class ResourceOption(_ResourceFields):
    """One entry of `any_of` / `ordered`: it overrides the fields it sets, and names one accelerator."""

    @model_validator(mode="after")
    def _one_accelerator(self) -> ResourceOption:
        value = self.accelerator_value
        if isinstance(value, (list, set, frozenset)) or (isinstance(value, Mapping) and len(value) > 1):
            raise Invalid("an any_of/ordered entry names one accelerator", given=show(value),
                          valid="one accelerator such as A100:8 or {A100: 8}; put each alternative in its own entry",
                          path=(self.accelerator_key,))
        return self


class Resources(_ResourceFields):
    """SkyPilot's `resources:`: one shape, alternatives (`any_of`), or preferences (`ordered`)."""

    any_of: list[ResourceOption] | None = None
    ordered: list[ResourceOption] | None = None

    @model_validator(mode="after")
    def _alternatives(self) -> Resources:
        if self.any_of is not None and self.ordered is not None:
            raise Invalid("give either any_of or ordered, not both", given="both",
                          valid="any_of: (any will do) or ordered: (first choice first)", path=("ordered",))
        value = self.accelerator_value
        several = value is not None and len(gpu_choices(value)[0]) > 1
        if several and self.ordered is not None:
            raise Invalid("several accelerators cannot go with ordered", given=show(value),
                          valid="one accelerator here, the alternatives as ordered entries",
                          path=(self.accelerator_key,))
        if several and self.any_of is not None and isinstance(value, list):
            raise Invalid("a list of accelerators (an order of preference) cannot go with any_of", given=show(value),
                          valid="a mapping {A100: 8, H100: 8} (any of), or the alternatives as any_of entries",
                          path=(self.accelerator_key,))
        return self
