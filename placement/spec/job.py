"""The job spec: a SkyPilot task with a `placement:` block (team, priority, hours, tiers, a GPU-memory
hint), its JSON Schema, and a loaded spec with where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BeforeValidator, Field, NonNegativeFloat, PositiveFloat, PositiveInt,
                      ValidationInfo, WithJsonSchema, field_validator, model_validator)

from placement.memory_estimate import BadFact, ModelFacts
from placement.model import Tier
from placement.sources import check_sources
from placement.spec.resources import Resources
from placement.spec.serving import Service
from placement.spec.values import (DEFAULT_PRIORITY_CLASSES, DURATION_VALID, NAME_MAX_LENGTH, SKY_NAME_PATTERN,
                                   StrictModel, check_name, duration_hours, one_of, parameter_count)
from placement.yamlio import Invalid, closest, show


class GitWorkdir(StrictModel):
    url: str
    ref: str | None = None


class StorageMount(StrictModel):
    """A bucket or volume in `file_mounts` (SkyPilot's storage schema)."""

    name: str | None = None
    source: str | Annotated[list[str], Field(min_length=1)] | None = None
    store: Annotated[str, one_of("s3", "gcs", "azure", "r2", "ibm", "oci", "nebius", "coreweave", "vastdata",
                                  "hf", "volume")] | None = None
    persistent: bool | None = None
    mode: Annotated[str, one_of("MOUNT", "COPY", "MOUNT_CACHED")] | None = None
    type: Annotated[str, one_of("MODEL_CHECKPOINT_RO", "MODEL_CHECKPOINT_RW", "DATASET_RO",
                                 "DATASET_RW")] | None = None
    config: dict[str, Any] | None = None


class ManagedSecretOptions(StrictModel):
    mount_path: str | None = None


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


_ParameterCount = Annotated[float, BeforeValidator(parameter_count), WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string"}], "description": "a count: 124M, 7B, 1.5B or a number"})]


class GpuMemoryHint(StrictModel):
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


class PlacementSpec(StrictModel):
    """The engine's `placement:` block: who owns the job, how urgent it is, where it may run."""

    team: Annotated[str, Field(min_length=1)] = "default"
    priority: str = Field("normal", description="a priority class of the policy (default: low, normal, high, "
                                                "critical)")
    expected_hours: PositiveFloat = Field(1.0, description="expected run time, for cost estimates")
    max_wait: Annotated[float, BeforeValidator(duration_hours), WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string"}], "description": DURATION_VALID + "; stored in hours"}
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


class JobSpec(StrictModel):
    """A job: a SkyPilot task (every field of SkyPilot 0.14's task YAML) plus `placement:`."""

    name: Annotated[str, AfterValidator(check_name), WithJsonSchema(
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
