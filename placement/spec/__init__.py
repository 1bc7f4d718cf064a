"""Job specs: a SkyPilot task YAML, plus the engine's own `placement:` block.

A task file a SkyPilot user already has loads unchanged. Every field of SkyPilot
0.14's task and resources schemas is accepted, checked and kept as written, so
`JobSpec.sky_config()` gives SkyPilot back what the user wrote (less
`placement:`; `$VAR`s already substituted where SkyPilot substitutes them). `to_job`
reads what placement needs into the core's `Job`. A file is read as `sky launch` reads
it: several documents are a pipeline, or a job group (`placement.spec.loading`).

Two readings differ from SkyPilot on purpose:
- `cpus: 8` and `cpus: 8+` both ask for at least 8 vCPUs (likewise `memory`).
  SkyPilot picks instance types with exactly 8 for a bare number; a job placed on a
  shared on-prem node only needs 8 free, so the engine treats every number as a request.
- GPU names are made canonical (`clouds.gpus`): `a100-40gb` and `A100` are one GPU.

`placement.max_wait` is a duration: a bare number is minutes (as in SkyPilot's
`autostop`), or a number with units s, m, h, d, w, combinable (`1h30m`). It is
stored in hours.

The package: `values` (scalars: vCPUs, memory, durations, infra, names), `accelerators`, `resources`,
`serving` (SkyServe's `service:`), `job` (the spec model), `envs` (`$VAR`s), `loading` (files), `jobs` (to `Job`).
"""

from placement.spec.accelerators import GpuChoice, gpu_choices
from placement.spec.envs import check_envs_set, unset_envs
from placement.spec.job import GpuMemoryHint, JobSpec, LoadedSpec, PlacementSpec, spec_json_schema
from placement.spec.jobs import to_job, to_jobs
from placement.spec.loading import load_specs, spec_from_data
from placement.spec.resources import Resources
from placement.spec.serving import Service
from placement.spec.values import (DEFAULT_PRIORITY_CLASSES, LAUNCH_NAME_PATTERN, NAME_MAX_LENGTH, SKY_CLOUDS,
                                   SKY_NAME_PATTERN, duration_hours, launch_name)

__all__ = ["DEFAULT_PRIORITY_CLASSES", "LAUNCH_NAME_PATTERN", "NAME_MAX_LENGTH", "SKY_CLOUDS", "SKY_NAME_PATTERN",
           "GpuChoice", "GpuMemoryHint", "JobSpec", "LoadedSpec", "PlacementSpec", "Resources", "Service",
           "check_envs_set", "duration_hours", "gpu_choices", "launch_name", "load_specs", "spec_from_data",
           "spec_json_schema", "to_job", "to_jobs", "unset_envs"]
