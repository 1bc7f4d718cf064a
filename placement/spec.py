"""Job specs: a SkyPilot task YAML, plus the engine's own `placement:` block.

A task file a SkyPilot user already has loads unchanged. Every field of SkyPilot
0.14's task and resources schemas is accepted, checked and kept as written, so
`JobSpec.sky_config()` gives SkyPilot back what the user wrote (less
`placement:`; `$VAR`s already substituted where SkyPilot substitutes them). `to_job`
reads what placement needs into the core's `Job`. A file is read as `sky launch` reads
it: several documents are a pipeline, or a job group (`_load_file`).

Two readings differ from SkyPilot on purpose:
- `cpus: 8` and `cpus: 8+` both ask for at least 8 vCPUs (likewise `memory`).
  SkyPilot picks instance types with exactly 8 for a bare number; a job placed on a
  shared on-prem node only needs 8 free, so the engine treats every number as a request.
- GPU names are made canonical (`clouds.gpus`): `a100-40gb` and `A100` are one GPU.

`placement.max_wait` is a duration: a bare number is minutes (as in SkyPilot's
`autostop`), or a number with units s, m, h, d, w, combinable (`1h30m`). It is
stored in hours.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeFloat,
                      NonNegativeInt, PositiveFloat, PositiveInt, ValidationInfo, WithJsonSchema, field_validator,
                      model_validator)

from clouds.catalog import instance_accelerators
from clouds.gpus import GPU_MODELS, canonical_gpu, gpu_sellers, suggest_gpu
from placement.memory_estimate import BadFact, ModelFacts, estimate
from placement.model import Demand, Job, Tier
from placement.sources import check_sources
from placement.yamlio import (ConfigError, Document, FieldError, Invalid, check_data_limits, closest,
                              load_documents, parse_model, show)

DEFAULT_PRIORITY_CLASSES: tuple[str, ...] = ("low", "normal", "high", "critical")

# sky.skylet.constants.ALL_CLOUDS in SkyPilot 0.14.1 (copied: `sky` is slow to import).
SKY_CLOUDS: tuple[str, ...] = (
    "aws", "azure", "gcp", "ibm", "lambda", "scp", "oci", "kubernetes", "runpod", "vast", "vsphere",
    "cudo", "fluidstack", "paperspace", "primeintellect", "do", "nebius", "ssh", "slurm", "hyperbolic",
    "seeweb", "shadeform", "yotta", "mithril", "verda")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _one_of(*choices: str) -> AfterValidator:
    """A string SkyPilot matches case-insensitively against `choices`; kept as written."""
    def check(value: str) -> str:
        if value.lower() not in {c.lower() for c in choices}:
            raise Invalid("not one of the allowed values", given=show(value), valid="one of " + ", ".join(choices),
                          suggestion=closest(value.lower(), choices))
        return value
    return AfterValidator(check)


# --- amounts: cpus, memory, disk, durations, parameter counts -------------------------------

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_CPUS_VALID = 'a positive number of vCPUs, or "<number>+" for at least that many (e.g. 8 or "8+")'
_MEMORY_VALID = ('a positive number of GB, optionally with a unit (KB, MB, GB, TB, PB or KiB-style Ki, Mi, Gi, '
                 'Ti, Pi) and "+" for at least (e.g. 32, "64GB", "128+")')
_MEMORY_UNITS_GB = {"kb": 2**-20, "ki": 2**-20, "mb": 2**-10, "mi": 2**-10, "gb": 1, "gi": 1,
                    "tb": 2**10, "ti": 2**10, "pb": 2**20, "pi": 2**20}
_DURATION_HOURS = {"s": 1 / 3600, "m": 1 / 60, "h": 1, "d": 24, "w": 168}
_DURATION_VALID = "a number of minutes, or a duration such as 90s, 30m, 2h, 1d or 1h30m"
_PARAMETER_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def cpus_minimum(value: Any) -> float:
    """The vCPUs a `cpus:` value asks for at least (`8` and `"8+"` both give 8)."""
    match = None if isinstance(value, bool) else re.fullmatch(rf"\s*{_NUMBER}\s*\+?\s*", str(value))
    if match is None or float(match[1]) <= 0:
        raise Invalid("not a CPU count", given=show(value), valid=_CPUS_VALID)
    return float(match[1])


def memory_minimum_gb(value: Any) -> float:
    """The host memory in GB a `memory:` value asks for at least (`64`, `"64GB+"`, `"1TB"`)."""
    match = None if isinstance(value, bool) else re.fullmatch(
        rf"\s*{_NUMBER}\s*([kmgtp][bi])?\s*\+?\s*", str(value), re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise Invalid("not a memory size", given=show(value), valid=_MEMORY_VALID)
    return float(match[1]) * _MEMORY_UNITS_GB[(match[2] or "gb").lower()]


def _check_disk_size(value: Any) -> Any:
    units = "|".join(_MEMORY_UNITS_GB)
    if (isinstance(value, int) and not isinstance(value, bool) and value > 0) or (
            isinstance(value, str) and re.fullmatch(rf"[1-9]\d*({units})?", value, re.IGNORECASE)):
        return value
    raise Invalid("not a disk size", given=show(value), valid='a positive whole number of GB, or one with a unit '
                  '(e.g. 256, "512GB", "1TB")')


def duration_hours(value: Any) -> float:
    """A duration in hours: a number is minutes; strings combine s, m, h, d, w (`1h30m`)."""
    if _is_number(value):
        minutes = float(value)
    elif isinstance(value, str) and re.fullmatch(_NUMBER, value.strip()):
        minutes = float(value)
    elif isinstance(value, str) and re.fullmatch(rf"({_NUMBER}[smhdw])+", text := re.sub(r"\s+", "", value.lower())):
        return sum(float(n) * _DURATION_HOURS[u] for n, u in re.findall(rf"{_NUMBER}([smhdw])", text))
    else:
        raise Invalid("not a duration", given=show(value), valid=_DURATION_VALID)
    if minutes < 0:
        raise Invalid("a duration cannot be negative", given=show(value), valid=_DURATION_VALID)
    return minutes / 60


def parameter_count(value: Any) -> float:
    """A model size: a number, or one with K, M, B or T (`124M`, `7B`, `1.5B`)."""
    match = None if isinstance(value, bool) else re.fullmatch(
        rf"\s*{_NUMBER}\s*([kmbt]?)\s*", str(value), re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise Invalid("not a parameter count", given=show(value),
                      valid="a positive number, optionally with K, M, B or T (e.g. 124M, 7B, 1.5B)")
    return float(match[1]) * _PARAMETER_SCALE[match[2].lower()]


def _check_idle_time(value: str) -> str:
    if not re.fullmatch(r"\d+[mhdwMHDW]?", value):
        raise Invalid("not an idle time", given=show(value), valid="true/false, minutes as a number, a time such "
                      "as 10m, 2h or 1d, or a mapping with idle_minutes/down/wait_for")
    return value


# --- accelerators ---------------------------------------------------------------------------

_ACCEL_VALID = ("a GPU name such as A100, A100-80GB, H100, L4, T4 with an optional :count (A100:8), "
                "a mapping {A100: 8, H100: 8} (any of), a list ['H100:8', 'A100:8'] (in order of preference) "
                "or a memory size such as 80GB+:8")
_COUNT_VALID = "a whole number of GPUs (1, 2, 8, ...) or a fraction below 1 to share one GPU (e.g. T4:0.5)"
_GPU_MEMORY = re.compile(r"(\d+)([GgMmTt])[Bb](\+?)")


@dataclass(frozen=True, slots=True)
class GpuChoice:
    name: str  # canonical (clouds.gpus)
    count: float  # per node


def gpu_choices(value: Any) -> tuple[tuple[GpuChoice, ...], bool]:
    """Every accelerator a SkyPilot `accelerators:` value accepts, and whether a list gave them in order
    of preference. Strings and mappings name alternatives (any of); `!!set` too."""
    if isinstance(value, str):
        items: list[tuple[tuple, Any, Any]] = [((), value, None)]
    elif isinstance(value, Mapping):
        items = [((key,), key, count) for key, count in value.items()]
    elif isinstance(value, list):
        items = [((i,), item, None) for i, item in enumerate(value)]
    elif isinstance(value, (set, frozenset)):
        items = [((), item, None) for item in sorted(value, key=str)]
    else:
        raise Invalid("wrong type", given=show(value), valid=_ACCEL_VALID)
    if not items:
        raise Invalid("no accelerator given", given=show(value), valid=_ACCEL_VALID)
    choices: dict[GpuChoice, None] = {}  # every (GPU, count): {A100:4, A100:8} is two alternatives
    for path, text, count in items:
        for choice in _parse_accelerator(text, count, path):
            choices.setdefault(choice)
    return tuple(choices), isinstance(value, list)


def _parse_accelerator(text: Any, count: Any, path: tuple) -> list[GpuChoice]:
    given = show(text if count is None else {text: count})
    if not isinstance(text, str) or not text.strip():
        raise Invalid("not an accelerator", given=given, valid=_ACCEL_VALID, path=path)
    parts = [p.strip() for p in text.split(":")]
    if any(_GPU_MEMORY.fullmatch(p) for p in parts):
        names, count_text = _gpus_by_memory(parts, given, path)
    elif len(parts) <= 2:
        names, count_text = [parts[0]], parts[1] if len(parts) == 2 else None
    else:
        raise Invalid("not an accelerator", given=given, valid=_ACCEL_VALID, path=path)

    if count_text is not None and count is not None:
        raise Invalid("the GPU count is given twice", given=given, valid="either A100:8 or {A100: 8}", path=path)
    if count_text is not None:
        try:
            count = float(count_text)
        except ValueError:
            raise Invalid("the GPU count is not a number", given=given, valid=_COUNT_VALID, path=path) from None
    count = 1 if count is None else count
    if not _is_number(count) or count <= 0 or (count > 1 and count != int(count)):
        raise Invalid("not a valid GPU count", given=given, valid=_COUNT_VALID, path=path)

    choices = []
    for name in names:
        canonical = canonical_gpu(name)
        if canonical is None:
            suggestions = suggest_gpu(name)
            raise Invalid(f"unknown GPU {name!r}", given=given, valid=_ACCEL_VALID,
                          suggestion=suggestions[0] if suggestions else None, path=path)
        choices.append(GpuChoice(canonical, float(count)))
    return choices


def _gpus_by_memory(parts: list[str], given: str, path: tuple) -> tuple[list[str], str | None]:
    """SkyPilot's `[vendor:]<memory>[+][:count]`: every GPU with that much memory (or more, with +)."""
    if len(parts) <= 2 and _GPU_MEMORY.fullmatch(parts[0]):
        vendor, memory, count = None, parts[0], parts[1] if len(parts) == 2 else None
    elif len(parts) in (2, 3) and _GPU_MEMORY.fullmatch(parts[1]):
        vendor, memory, count = parts[0], parts[1], parts[2] if len(parts) == 3 else None
    else:
        raise Invalid("not an accelerator", given=given, valid=_ACCEL_VALID, path=path)
    match = _GPU_MEMORY.fullmatch(memory)
    gb = int(match[1]) * {"m": 2**-10, "g": 1, "t": 2**10}[match[2].lower()]
    names = [gpu.name for gpu in GPU_MODELS.values()
             if (gpu.memory_gb >= gb if match[3] else gpu.memory_gb == gb)
             and (vendor is None or gpu.vendor.lower() == vendor.lower())]
    if not names:
        raise Invalid(f"no known GPU has {memory} of memory", given=given, valid=_ACCEL_VALID, path=path)
    return names, count


def _check_accelerators(value: Any) -> Any:
    gpu_choices(value)
    return value


# --- infra ------------------------------------------------------------------------------

_INFRA_VALID = ("cloud[/region[/zone]] such as aws, aws/us-east-1, aws/us-east-1/us-east-1a, gcp/*, */us-east-1, "
                "or k8s/<context>, ssh/<pool>")


def infra_pin(value: str) -> tuple[str | None, str | None, str | None]:
    """(cloud, region, zone) of a SkyPilot `infra:` string; `*` means any. `k8s` is `kubernetes`,
    whose region is the context (which may itself contain slashes)."""
    parts = [p.strip() for p in value.strip().strip("/").split("/")]
    if "" in parts:
        raise Invalid("not an infra", given=show(value), valid=_INFRA_VALID)
    cloud = parts[0].lower()
    if cloud in ("k8s", "kubernetes", "ssh"):
        return "kubernetes" if cloud == "k8s" else cloud, "/".join(parts[1:]) or None, None
    if cloud != "*" and cloud not in SKY_CLOUDS:
        raise Invalid(f"unknown cloud {parts[0]!r}", given=show(value), valid=_INFRA_VALID,
                      suggestion=closest(cloud, SKY_CLOUDS))
    if len(parts) > 3:
        raise Invalid("too many parts", given=show(value), valid=_INFRA_VALID)
    region = parts[1] if len(parts) > 1 else None
    zone = parts[2] if len(parts) > 2 else None
    return (None if cloud == "*" else cloud), (None if region == "*" else region), (None if zone == "*" else zone)


def _check_infra(value: str) -> str:
    infra_pin(value)
    return value


# --- SkyPilot's resources -------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cpus(value: Any) -> Any:
    cpus_minimum(value)
    return value


def _check_memory(value: Any) -> Any:
    memory_minimum_gb(value)
    return value


# Kept as written (SkyPilot reads them again); checked here, so errors name the file and line.
Cpus = Annotated[Any, AfterValidator(_check_cpus),
                 WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "description": _CPUS_VALID})]
Memory = Annotated[Any, AfterValidator(_check_memory),
                   WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "description": _MEMORY_VALID})]
DiskSize = Annotated[Any, AfterValidator(_check_disk_size),
                     WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}]})]
Accelerators = Annotated[Any, AfterValidator(_check_accelerators), WithJsonSchema({
    "anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
              {"type": "array", "items": {"type": "string"}}], "description": _ACCEL_VALID})]
Infra = Annotated[str, AfterValidator(_check_infra)]
ExitCode = Annotated[int, Field(ge=0, le=255)]


class JobRecovery(_Strict):
    strategy: str | None = None
    max_restarts_on_errors: NonNegativeInt | None = None
    recover_on_exit_codes: ExitCode | list[ExitCode] | None = None


class Autostop(_Strict):
    idle_minutes: NonNegativeInt | None = None
    down: bool | None = None
    wait_for: Annotated[str, _one_of("jobs_and_ssh", "jobs", "none")] | None = None
    hook: str | None = None
    hook_timeout: PositiveInt | None = None


class AcceleratorArgs(_Strict):
    runtime_version: str | None = None
    tpu_name: str | None = None
    tpu_vm: bool | None = None
    gcp_queued_resource: bool | None = None


class ResourceVolume(_Strict):
    disk_size: DiskSize | None = None
    disk_tier: str | None = None
    path: str | None = None
    auto_delete: bool | None = None
    storage_type: str | None = None
    name: str | None = None
    attach_mode: str | None = None


class _ResourceFields(_Strict):
    """The fields of one SkyPilot `Resources`, as a task YAML spells them."""

    infra: Infra | None = None
    cloud: Annotated[str, _one_of(*SKY_CLOUDS)] | None = None  # older than infra, still accepted
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
    disk_tier: Annotated[str, _one_of("low", "medium", "high", "ultra", "best", "none")] | None = None
    network_tier: Annotated[str, _one_of("standard", "best")] | None = None
    local_disk: str | None = None
    max_hourly_cost: PositiveFloat | None = None
    ports: int | str | list[int | str] | None = None
    labels: dict[str, str] | None = None
    accelerator_args: AcceleratorArgs | None = None
    image_id: str | dict[str, str] | None = None
    autostop: bool | int | Annotated[str, AfterValidator(_check_idle_time)] | Autostop | None = None
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


# --- the rest of a SkyPilot task ------------------------------------------------------------

class GitWorkdir(_Strict):
    url: str
    ref: str | None = None


class StorageMount(_Strict):
    """A bucket or volume in `file_mounts` (SkyPilot's storage schema)."""

    name: str | None = None
    source: str | Annotated[list[str], Field(min_length=1)] | None = None
    store: Annotated[str, _one_of("s3", "gcs", "azure", "r2", "ibm", "oci", "nebius", "coreweave", "vastdata",
                                  "hf", "volume")] | None = None
    persistent: bool | None = None
    mode: Annotated[str, _one_of("MOUNT", "COPY", "MOUNT_CACHED")] | None = None
    type: Annotated[str, _one_of("MODEL_CHECKPOINT_RO", "MODEL_CHECKPOINT_RW", "DATASET_RO",
                                 "DATASET_RW")] | None = None
    config: dict[str, Any] | None = None


class ManagedSecretOptions(_Strict):
    mount_path: str | None = None


class ReadinessProbe(_Strict):
    path: str
    initial_delay_seconds: float | None = None
    timeout_seconds: float | None = None
    endpoint_probe_interval_seconds: float | None = None
    consecutive_failure_threshold_timeout: float | None = None
    post_data: str | dict[str, Any] | None = None
    headers: dict[str, str] | None = None


class ReplicaPolicy(_Strict):
    min_replicas: NonNegativeInt
    max_replicas: NonNegativeInt | None = None
    num_overprovision: NonNegativeInt | None = None
    target_qps_per_replica: Annotated[float, Field(ge=0)] | dict[str, Annotated[float, Field(ge=0)]] | None = None
    dynamic_ondemand_fallback: bool | None = None
    base_ondemand_fallback_replicas: NonNegativeInt | None = None
    spot_placer: Annotated[str, _one_of("dynamic_fallback")] | None = None
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


class LoadBalancer(_Strict):
    stream_timeout_seconds: float | None = None


class ServicePool(_Strict):
    workers: NonNegativeInt | None = None
    min_workers: NonNegativeInt | None = None
    max_workers: NonNegativeInt | None = None
    queue_length_threshold: PositiveInt | None = None
    upscale_delay_seconds: Annotated[float, Field(ge=0)] | None = None
    downscale_delay_seconds: Annotated[float, Field(ge=0)] | None = None


class ServiceTls(_Strict):
    keyfile: str
    certfile: str


class Service(_Strict):
    """SkyServe's `service:` block."""

    readiness_probe: str | ReadinessProbe | None = None
    load_balancer: LoadBalancer | None = None
    pool: ServicePool | None = None
    replica_policy: ReplicaPolicy | None = None
    ports: int | None = None
    replicas: NonNegativeInt | None = None
    workers: NonNegativeInt | None = None
    load_balancing_policy: Annotated[str, _one_of("round_robin", "least_load",
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


def _env_vars(value: Any) -> Any:
    """SkyPilot turns env values into strings (`EPOCHS: 3` is "3"); names must be shell names."""
    if not isinstance(value, Mapping):
        return value
    for key in value:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
            raise Invalid("not an environment variable name", given=show(key),
                          valid="letters, digits and _, not starting with a digit (e.g. HF_TOKEN)", path=(key,))
    return {str(k): str(v) if isinstance(v, (int, float, bool)) else v for k, v in value.items()}


def _secret_values(value: Any) -> Any:
    """Like envs, SkyPilot reads secret names and values as strings."""
    if isinstance(value, Mapping):
        return {str(k): str(v) if isinstance(v, (int, float, bool)) else v for k, v in value.items()}
    return value


# --- names ----------------------------------------------------------------------------------

# A job's id is its name made a launch name, then `-<n>` from the store; its launch handle adds
# `-a<attempt>-<store uid>` (placement.reconciler.handle_for). That handle is the Ray submission id of an
# on-prem launch (a file name in Ray's log directory) and the SkyPilot cluster or managed-job name of a
# cloud launch, so a name may only hold what both take.
NAME_MAX_LENGTH = 63
# sky.skylet.constants.CLUSTER_NAME_VALID_REGEX in SkyPilot 0.14.1, as check_cluster_name_is_valid applies it.
SKY_NAME_PATTERN = r"[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?"
LAUNCH_NAME_PATTERN = r"[a-z]([-a-z0-9]*[a-z0-9])?"  # what ids and handles are made of
_NAME_VALID = (f"a letter, then letters, digits, '-', '_' or '.', ending with a letter or digit, at most "
               f"{NAME_MAX_LENGTH} characters (SkyPilot's rule for cluster names; e.g. train-llama-8b)")


def _check_name(value: str) -> str:
    if len(value) > NAME_MAX_LENGTH:
        raise Invalid(f"the name is longer than {NAME_MAX_LENGTH} characters", given=show(value, 40),
                      valid=_NAME_VALID)
    if not re.fullmatch(SKY_NAME_PATTERN, value):
        raise Invalid("not a valid job name", given=show(value), valid=_NAME_VALID)
    return value


def launch_name(text: str) -> str:
    """A job name, or a file's stem where a spec has none, as ids and launch handles spell it: lowercase
    letters, digits and single '-', starting with a letter, at most NAME_MAX_LENGTH characters
    (`Train_LLaMA.v2` -> `train-llama-v2`). Same text, same name."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"job-{name}" if name else "job"
    return name[:NAME_MAX_LENGTH].rstrip("-")


# --- the engine's own block -------------------------------------------------------------------

_ParameterCount = Annotated[float, BeforeValidator(parameter_count), WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string"}], "description": "a count: 124M, 7B, 1.5B or a number"})]


class GpuMemoryHint(_Strict):
    """The GPU memory each GPU must have: given outright, or the model's facts for the estimator."""

    per_gpu_gb: PositiveFloat | None = Field(None, description="GB of memory each GPU needs")
    parameters: _ParameterCount | None = Field(None, description="model size, all parameters")
    precision: Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"] = "bf16"
    optimizer: Literal["adam", "adamw", "sgd", "sgd_momentum", "adafactor", "none"] = Field(
        "adamw", description="`none` for inference")
    batch_size: PositiveInt | None = Field(None, description="per GPU")
    sequence_length: PositiveInt | None = None
    image_size: PositiveInt | None = Field(None, description="pixels per side")
    trainable_parameters: _ParameterCount | None = Field(
        None, description="LoRA, adapters, a frozen backbone: the parameters trained (default: all)")
    activation_checkpointing: bool = Field(False, description="one checkpoint per layer (gradient checkpointing)")
    vocab_size: PositiveInt | None = Field(None, description="default: 128,256 (Llama 3's)")
    layers: PositiveInt | None = Field(None, description="default: the model's, else derived from parameters")
    hidden_size: PositiveInt | None = Field(None, description="default: the model's, else derived from parameters")
    model: str | None = Field(None, description="a well-known architecture (gpt2-xl, llama-3-8b, vit-b-16, resnet50, "
                                                "...: placement/model_shapes.py) for the facts not given")
    patch_size: PositiveInt | None = Field(None, description="a vision transformer's patch side, in pixels")
    heads: PositiveInt | None = Field(None, description="attention heads (default: the model's, else hidden / 64)")
    attention: Literal["sdpa", "eager"] = Field("sdpa", description="eager attention keeps the scores")

    @model_validator(mode="after")
    def _one_way(self) -> GpuMemoryHint:
        facts = sorted(self.model_fields_set - {"per_gpu_gb"})
        if self.per_gpu_gb is not None and facts:
            raise Invalid("give either per_gpu_gb or the model's facts, not both", given=", ".join(facts),
                          valid="per_gpu_gb alone, or parameters with the model's other facts (precision, "
                                "optimizer, batch_size, ...)", path=(facts[0],))
        if self.per_gpu_gb is None and self.parameters is None and self.model is None:
            raise Invalid("says neither per_gpu_gb nor parameters", given=", ".join(facts) or "nothing",
                          valid="per_gpu_gb: <GB>, or parameters: <count> (or model: <name>) with the model's "
                                "other facts")
        try:
            self.model_facts()
        except BadFact as exc:  # facts in conflict, such as trainable_parameters above parameters
            raise Invalid(exc.problem, given=show(exc.given), valid=exc.valid, path=(exc.field,)) from None
        return self

    def model_facts(self) -> ModelFacts | None:
        """The facts for the estimator; None where per_gpu_gb is given."""
        if self.parameters is None and self.model is None:
            return None
        return ModelFacts(**self.model_dump(exclude={"per_gpu_gb"}))


class PlacementSpec(_Strict):
    """The engine's `placement:` block: who owns the job, how urgent it is, where it may run."""

    team: Annotated[str, Field(min_length=1)] = "default"
    priority: str = Field("normal", description="a priority class of the policy (default: low, normal, high, "
                                                "critical)")
    expected_hours: PositiveFloat = Field(1.0, description="expected run time, for cost estimates")
    max_wait: Annotated[float, BeforeValidator(duration_hours), WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string"}], "description": _DURATION_VALID + "; stored in hours"}
    )] | None = None
    tiers: Annotated[list[Tier], Field(min_length=1)] = Field(default_factory=lambda: list(Tier))
    spot_ok: bool = Field(False, description="may run on spot capacity (resources.use_spot: true means only spot)")
    budget_usd: PositiveFloat | None = None
    migratable: bool = Field(False, description="may be stopped (gracefully, to checkpoint) and restarted on-prem "
                                                "when on-prem capacity frees and the move saves more than the "
                                                "restart costs; spot_ok implies it")
    restart_hours: NonNegativeFloat | None = Field(None, description="work lost and start-up time when the job is "
                                                                     "moved (its checkpoint interval); default: the "
                                                                     "policy's downscale.restart_hours")
    preemptible: bool = Field(True, description="may be stopped (gracefully, to checkpoint) and requeued when "
                                                "higher-priority work needs its on-prem GPUs and the policy's "
                                                "preemption is enabled")
    data_residency: Literal["onprem"] | None = Field(None, description="onprem: the job never leaves on-prem")
    gpu_memory: GpuMemoryHint | None = None

    @field_validator("priority")
    @classmethod
    def _known_priority(cls, value: str, info: ValidationInfo) -> str:
        classes = list((info.context or {}).get("priority_classes", DEFAULT_PRIORITY_CLASSES))
        if value not in classes:
            raise Invalid(f"unknown priority {value!r}", given=show(value), valid="one of " + ", ".join(classes),
                          suggestion=closest(value, classes))
        return value

    @model_validator(mode="after")
    def _residency(self) -> PlacementSpec:
        if self.data_residency == "onprem" and Tier.ONPREM not in self.tiers:
            raise Invalid("data_residency: onprem keeps the job on-prem, but these tiers leave on-prem out",
                          given=show([t.value for t in self.tiers]), valid="tiers that include onprem, or no tiers",
                          path=("tiers",))
        return self


class JobSpec(_Strict):
    """A job: a SkyPilot task (every field of SkyPilot 0.14's task YAML) plus `placement:`."""

    name: Annotated[str, AfterValidator(_check_name), WithJsonSchema(
        {"type": "string", "pattern": f"^{SKY_NAME_PATTERN}$", "maxLength": NAME_MAX_LENGTH})] | None = None
    workdir: str | GitWorkdir | None = None
    event_callback: str | None = None
    num_nodes: PositiveInt = 1
    resources: Resources = Field(default_factory=Resources)
    file_mounts: dict[str, str | StorageMount] | None = None
    service: Service | None = None
    pool: dict[str, Any] | None = None
    setup: str | None = None
    run: str | None = None
    envs: Annotated[dict[str, str | None], BeforeValidator(_env_vars)] | None = None
    secrets: Annotated[dict[str, str | None] | list[str], BeforeValidator(_secret_values)] | None = None
    managed_secrets: list[str | dict[str, ManagedSecretOptions]] | None = None
    inputs: Annotated[dict[str, float], Field(max_length=1)] | None = None
    outputs: Annotated[dict[str, float], Field(max_length=1)] | None = None
    config: dict[str, Any] | None = None
    volumes: dict[str, Any] | None = None
    api_server_access: bool | None = None
    placement: PlacementSpec = Field(default_factory=PlacementSpec)

    @model_validator(mode="after")
    def _spot(self) -> JobSpec:
        if self.resources.use_spot and "spot_ok" in self.placement.model_fields_set and not self.placement.spot_ok:
            raise Invalid("resources.use_spot: true asks for spot capacity, but spot_ok is false", given="false",
                          valid="spot_ok: true, or no resources.use_spot", path=("placement", "spot_ok"))
        if self.resources.use_spot and self.placement.data_residency == "onprem":
            raise Invalid("data_residency: onprem keeps the job on-prem, where there is no spot capacity",
                          given="true", valid="no use_spot, or no data_residency", path=("resources", "use_spot"))
        return self

    @model_validator(mode="after")
    def _host_files(self, info: ValidationInfo) -> JobSpec:
        """Local workdir / file_mounts sources, where the caller says which roots may be read (`allowed_roots`
        in the context; absent: a spec read again after it was accepted)."""
        roots = (info.context or {}).get("allowed_roots")
        if roots is not None:
            check_sources(self.workdir, self.file_mounts, self.envs, roots)
        return self

    def sky_config(self) -> dict[str, Any]:
        """The SkyPilot task config, as the user wrote it (for `sky.Task.from_yaml_config`)."""
        return self.model_dump(exclude_unset=True, exclude={"placement"})


def spec_json_schema() -> dict[str, Any]:
    """The JSON schema of a job spec file (`placement schema`)."""
    return JobSpec.model_json_schema()


# --- envs: overrides and SkyPilot's $VAR substitution ---------------------------------------

# sky/task.py `_fill_in_env_vars` in SkyPilot 0.14.1: `$VAR` and `${VAR}` in these fields are replaced by the
# task's envs (and secrets with a value) before the task is read; a name that is not an env stays as written.
_ENV_VAR = re.compile(r"\$\{?\b([a-zA-Z_][a-zA-Z0-9_]*)\b\}?")
_EXPANDED_FIELDS = ("file_mounts", "service", "workdir", "volumes")


def with_env(data: Any, env: Mapping[str, str] | None) -> Any:
    """The document with `--env` / `--env-file` values set in its `envs` (as `sky launch --env` does)."""
    if not env or not isinstance(data, Mapping):
        return data
    envs = data.get("envs")
    return {**data, "envs": {**(envs if isinstance(envs, Mapping) else {}), **env}}


def expand_env_vars(data: Any) -> Any:
    """The document as SkyPilot reads it: `$VAR` in file_mounts, service, workdir and volumes replaced by the
    task's envs and valued secrets. Only for reading: what is stored and launched stays as written, and
    SkyPilot substitutes again itself."""
    if not isinstance(data, Mapping):
        return data
    values = {str(k): str(v) for k, v in (data.get("envs") or {}).items() if v is not None} if isinstance(
        data.get("envs"), Mapping) else {}
    secrets = data.get("secrets")
    if isinstance(secrets, Mapping):
        values |= {str(k): str(v) for k, v in secrets.items() if v is not None}
    if not values:
        return data
    expanded = dict(data)
    for name in _EXPANDED_FIELDS:
        if expanded.get(name) is not None:
            text = _ENV_VAR.sub(lambda m: values.get(m[1], m[0]), json.dumps(expanded[name]))
            expanded[name] = json.loads(text)
    return expanded


def unset_envs(spec: JobSpec) -> list[str]:
    """The envs the spec leaves without a value (`HF_TOKEN:`): SkyPilot refuses to launch it until each is set."""
    return [name for name, value in (spec.envs or {}).items() if value is None]


def check_envs_set(loaded: Iterable[LoadedSpec]) -> None:
    """Refuse specs that leave an env without a value, naming each (SkyPilot will not launch them)."""
    loaded = list(loaded)
    per_file = Counter(item.file for item in loaded)
    errors = []
    for item in loaded:
        for name in unset_envs(item.spec):
            several = per_file[item.file] > 1 or item.document > 1
            errors.append(FieldError(item.file, item.lines.get(("envs", name)), item.document if several else None,
                                     f"envs.{name}", "has no value", given="null",
                                     valid=f"a value in the file, or --env {name}=VALUE or --env-file FILE"))
    if errors:
        raise ConfigError(errors)


# --- loading ------------------------------------------------------------------------------

class PipelineHeader(_Strict):
    """The first document of a SkyPilot pipeline: its name (`execution: serial` is the default)."""

    name: str
    execution: Literal["serial"] | None = None


_GROUP_NAME = r"[A-Za-z0-9_-]+"  # dag_utils._load_job_group: alphanumerics, '-' and '_'


class JobGroupHeader(BaseModel):
    """The first document of a SkyPilot job group (`execution: parallel`): its tasks run together.
    Fields SkyPilot does not know are ignored, as SkyPilot ignores them (with a warning)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, Field(pattern=f"^{_GROUP_NAME}$")]
    execution: Literal["parallel"]
    primary_tasks: list[str] | None = None
    termination_delay: str | int | dict[str, str | int] | None = None
    inter_connection: Any = None


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    spec: JobSpec
    file: str
    document: int  # 1-based position in its file
    data: dict[str, Any] = field(default_factory=dict)  # the document as written, for the service to store
    pipeline: str | None = None  # the pipeline's or job group's name, from its header document
    after: int | None = None  # in a pipeline: the document that must succeed before this one runs
    group: str | None = None  # in a job group: placed with the group's other tasks, all or none
    lines: Mapping[tuple, int] = field(default_factory=dict, repr=False)  # field path -> line, for later errors

    @property
    def source(self) -> str:
        return f"{self.file}#{self.document}"


def spec_from_data(data: dict[str, Any], source: str, *,
                   priority_classes: Collection[str] = DEFAULT_PRIORITY_CLASSES,
                   allowed_roots: Sequence[str] | None = None) -> LoadedSpec:
    """A spec from an already-parsed document (what the service receives and stores). Raises ValueError.

    The document is held to the limits of a file (`yamlio.check_data_limits`) first: a client need not be
    the CLI, and what it sends is stored as JSON, every shared value written out in full. `allowed_roots`:
    the directories of this host its local workdir / file_mounts sources may name (None: not checked, for
    a spec read again after it was accepted)."""
    check_data_limits(data, source)
    context = {"priority_classes": tuple(priority_classes), "allowed_roots": allowed_roots}
    try:  # the same words as a file's errors, the source for a place (the service has no lines)
        spec = parse_model(JobSpec, Document(expand_env_vars(data), source, 1, False, {}), context=context)
    except ConfigError as exc:
        raise ValueError("; ".join(str(e) for e in exc.errors)) from None
    file, _, document = source.rpartition("#")
    return LoadedSpec(spec, file or source, int(document) if document.isdigit() else 1, data)


def load_specs(paths: Iterable[str | Path], *,
               priority_classes: Collection[str] = DEFAULT_PRIORITY_CLASSES,
               allowed_roots: Sequence[str] | None = None,
               env: Mapping[str, str] | None = None) -> list[LoadedSpec]:
    """Job specs from files, multi-document files and directories (every *.yaml / *.yml below, sorted).

    `priority_classes` are the names `placement.priority` may take (a policy sets them); a
    spec that names none gets `normal`. Raises one ConfigError with every problem of every
    file. A file is taken whole or not at all: one bad document rejects its file, and so does a file
    that holds no job. `allowed_roots`: the directories of this host that local workdir / file_mounts
    sources may name, for a caller that will launch them (None: not checked, as for `plan`). `env`: values
    for every task's envs (`--env`, `--env-file`), kept in each `LoadedSpec.data`.
    """
    context = {"priority_classes": tuple(priority_classes), "allowed_roots": allowed_roots}
    specs: list[LoadedSpec] = []
    errors = []
    for file in _spec_files(paths):
        try:
            specs += _load_file(file, context, env)
        except ConfigError as exc:
            errors += exc.errors
    if errors:
        raise ConfigError(errors)
    return specs


def _spec_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise ConfigError([FieldError(str(path), None, None, "", "the directory holds no job spec file",
                                              valid="a directory with *.yaml or *.yml job specs")])
            files += found
        else:
            files.append(path)  # a missing file is reported by load_documents
    return files


def _load_file(file: Path, context: dict[str, Any], env: Mapping[str, str] | None = None) -> list[LoadedSpec]:
    """The jobs of one file, read as `sky launch` reads it (`sky.utils.dag_utils.load_dag_from_yaml`): one
    document is a task; several are a pipeline, each task after the one before (a first document with only
    `name:` (and `execution: serial`) names it); a first document with `execution: parallel` heads a job group."""
    specs, errors = [], []
    documents = load_documents(file)
    if not documents:
        raise ConfigError([FieldError(str(file), None, None, "", "the file holds no job (it is empty or only "
                                      "comments)", valid="a SkyPilot task YAML, e.g. `run: python train.py`")])
    header, tasks = _header(documents)
    group = header.name if isinstance(header, JobGroupHeader) else None
    previous: int | None = None
    for document in tasks:
        data = with_env(document.data, env)
        try:
            spec = parse_model(JobSpec, dataclasses.replace(document, data=expand_env_vars(data)), context=context)
            specs.append(LoadedSpec(spec, document.file, document.index, data,
                                    pipeline=header.name if header else None, group=group,
                                    after=None if group or len(tasks) == 1 else previous, lines=document.lines))
        except ConfigError as exc:
            errors += exc.errors
        previous = document.index
    if isinstance(header, JobGroupHeader):
        errors += _group_errors(header, documents[0], tasks)
    if errors:
        raise ConfigError(errors)
    return specs


def _header(documents: list[Document]) -> tuple[PipelineHeader | JobGroupHeader | None, list[Document]]:
    """The header document of a pipeline or job group, if the first document is one, and the task documents."""
    first = documents[0]
    keys = set(first.data) if isinstance(first.data, Mapping) else set()
    if isinstance(first.data, Mapping) and first.data.get("execution") == "parallel":
        header: PipelineHeader | JobGroupHeader = parse_model(JobGroupHeader, first)
        if len(documents) < 2:
            raise ConfigError([first.error((), "a job group needs at least one job after its header",
                                           valid="a header document, then one document per job")])
        return header, documents[1:]
    if keys in ({"name"}, {"name", "execution"}) and (len(documents) > 1 or "execution" in keys):
        header = parse_model(PipelineHeader, first)
        return header, documents[1:] or [Document({"name": header.name}, first.file, first.index, False, first.lines)]
    return None, documents


def _group_errors(header: JobGroupHeader, head: Document, tasks: list[Document]) -> list[FieldError]:
    """SkyPilot's checks of a job group: every job named (alphanumerics, '-', '_'), no name twice, and
    `primary_tasks` naming jobs of the group."""
    errors, names = [], []
    for document in tasks:
        name = document.data.get("name") if isinstance(document.data, Mapping) else None
        if not isinstance(name, str) or not re.fullmatch(_GROUP_NAME, name):
            errors.append(document.error(("name",), "a job of a job group needs a name of letters, digits, '-' "
                                         "and '_'", given=show(name), valid="e.g. name: trainer"))
        elif name in names:
            errors.append(document.error(("name",), f"two jobs of the group are named {name!r}", given=show(name),
                                         valid="a different name for each job"))
        names.append(name)
    for i, name in enumerate(header.primary_tasks or ()):
        if name not in names:
            errors.append(head.error(("primary_tasks", i), f"no job of the group is named {name!r}", given=show(name),
                                     valid="one of " + ", ".join(str(n) for n in names),
                                     suggestion=closest(str(name), [str(n) for n in names])))
    return errors


# --- to the core's value objects -----------------------------------------------------------

_PIN_FIELDS = frozenset({"infra", "cloud", "region", "zone"})


def to_job(loaded: LoadedSpec, job_id: str) -> Job:
    """The core's view of a spec: demands per node, owner, urgency, where it may run.

    The GPU memory each GPU needs is `gpu_memory.per_gpu_gb`, or the estimated peak from the model's facts (to
    which placement adds the policy's memory margin).
    """
    spec, placement = loaded.spec, loaded.spec.placement
    onprem_only = placement.data_residency == "onprem"
    hint = placement.gpu_memory
    gpu_memory_gb = None if hint is None else hint.per_gpu_gb
    facts = None if hint is None else hint.model_facts()
    if facts is not None:
        gpu_memory_gb = estimate(facts).peak_gb
    return Job(
        id=job_id,
        name=spec.name or Path(loaded.file).stem,
        team=placement.team,
        priority=placement.priority,
        demands=_demands(spec.resources),
        num_nodes=spec.num_nodes,
        expected_hours=placement.expected_hours,
        max_wait_hours=placement.max_wait,
        tiers=frozenset({Tier.ONPREM}) if onprem_only else frozenset(placement.tiers),
        spot_ok=placement.spot_ok or spec.resources.use_spot is True,
        budget_usd=placement.budget_usd,
        onprem_only=onprem_only,
        gpu_memory_gb=gpu_memory_gb,
        gpu_memory_estimated=facts is not None,
    )


def to_jobs(loaded: Iterable[LoadedSpec]) -> list[Job]:
    """Jobs with ids from the spec name (or file stem), made unique with -2, -3, ...

    A service becomes one job per replica to place now, `<name>-replica-<k>`: its
    `min_replicas` (none while it may scale to zero), its fixed `replicas`, or one.
    A pipeline's task names the job before it (`after`); a job group's jobs share `group`, the id of its
    first job.
    """
    jobs: list[Job] = []
    used: set[str] = set()
    last_of: dict[tuple[str, int], str] = {}  # (file, document) -> its last job's id
    first_of: dict[tuple[str, str], str] = {}  # (file, job group) -> its first job's id
    for item in loaded:
        service = item.spec.service
        base = launch_name(item.spec.name or Path(item.file).stem)

        def ids(name: str) -> list[str]:
            return [name] if service is None else [f"{name}-replica-{k}" for k in range(1, service.replicas_now + 1)]

        name, n = base, 1
        while name in used or used.intersection(ids(name)):
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        used.update(ids(name))
        after = last_of.get((item.file, item.after)) if item.after is not None else None
        group = first_of.setdefault((item.file, item.group), (ids(name) or [name])[0]) if item.group else None
        made = [dataclasses.replace(to_job(item, job_id), after=after, group=group) for job_id in ids(name)]
        if made:
            last_of[(item.file, item.document)] = made[-1].id
        jobs += made
    return jobs


def _demands(resources: Resources) -> tuple[Demand, ...]:
    """One Demand per acceptable (accelerator, shape), as SkyPilot expands `resources:`:
    `any_of` / `ordered` entries override the top-level fields they set; `ordered`
    and accelerator lists rank the alternatives, first choice 0. An `instance_type` without accelerators
    gets the instance's GPUs from the catalog, as SkyPilot does."""
    options: list[ResourceOption | None] = list(resources.any_of or resources.ordered or [None])
    demands: list[Demand] = []
    for position, option in enumerate(options):
        set_here = option.model_fields_set if option is not None else frozenset()

        def pick(field: str) -> Any:
            return getattr(option, field) if field in set_here else getattr(resources, field)

        gpus_from = option if set_here & {"accelerators", "gpus"} else resources
        cloud, region, zone = (option if set_here & _PIN_FIELDS else resources).pin
        cpus, memory = pick("cpus"), pick("memory")
        rank = position if resources.ordered else 0
        shape = dict(cpus=cpus_minimum(cpus) if cpus is not None else 0.0,
                     memory_gb=memory_minimum_gb(memory) if memory is not None else 0.0,
                     cloud=cloud, region=region, zone=zone, use_spot=pick("use_spot"),
                     instance_type=pick("instance_type"))
        if gpus_from.accelerator_value is None:
            # SkyPilot fills a bare instance type's accelerators in from its catalog: p4d.24xlarge is A100:8.
            gpus = instance_accelerators(shape["instance_type"]) if shape["instance_type"] else None
            demands.append(Demand(rank=rank, **shape) if gpus is None else
                           Demand(accelerator=gpus[0], accelerator_count=gpus[1], rank=rank,
                                  sellers=gpu_sellers(gpus[0]), **shape))
            continue
        choices, in_order = gpu_choices(gpus_from.accelerator_value)
        demands += [Demand(accelerator=c.name, accelerator_count=c.count, rank=rank + i if in_order else rank,
                           sellers=gpu_sellers(c.name), **shape)
                    for i, c in enumerate(choices)]
    return tuple(demands)
