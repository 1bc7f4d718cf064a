"""A spec's scalar values as SkyPilot reads them: vCPUs and memory (`8+`, `32GB`), durations, parameter
counts, `infra` pins and names; each checked with what was given and what is valid.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from placement.yamlio import Invalid, closest, show

DEFAULT_PRIORITY_CLASSES: tuple[str, ...] = ("low", "normal", "high", "critical")

# sky.skylet.constants.ALL_CLOUDS in SkyPilot 0.14.1 (copied: `sky` is slow to import).
SKY_CLOUDS: tuple[str, ...] = (
    "aws", "azure", "gcp", "ibm", "lambda", "scp", "oci", "kubernetes", "runpod", "vast", "vsphere",
    "cudo", "fluidstack", "paperspace", "primeintellect", "do", "nebius", "ssh", "slurm", "hyperbolic",
    "seeweb", "shadeform", "yotta", "mithril", "verda")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def one_of(*choices: str) -> AfterValidator:
    """A string SkyPilot matches case-insensitively against `choices`; kept as written."""
    def check(value: str) -> str:
        if value.lower() not in {c.lower() for c in choices}:
            raise Invalid("not one of the allowed values", given=show(value), valid="one of " + ", ".join(choices),
                          suggestion=closest(value.lower(), choices))
        return value
    return AfterValidator(check)


_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_CPUS_VALID = 'a positive number of vCPUs, or "<number>+" for at least that many (e.g. 8 or "8+")'
_MEMORY_VALID = ('a positive number of GB, optionally with a unit (KB, MB, GB, TB, PB or KiB-style Ki, Mi, Gi, '
                 'Ti, Pi) and "+" for at least (e.g. 32, "64GB", "128+")')
_MEMORY_UNITS_GB = {"kb": 2**-20, "ki": 2**-20, "mb": 2**-10, "mi": 2**-10, "gb": 1, "gi": 1,
                    "tb": 2**10, "ti": 2**10, "pb": 2**20, "pi": 2**20}
_DURATION_HOURS = {"s": 1 / 3600, "m": 1 / 60, "h": 1, "d": 24, "w": 168}
DURATION_VALID = "a number of minutes, or a duration such as 90s, 30m, 2h, 1d or 1h30m"
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
    if is_number(value):
        minutes = float(value)
    elif isinstance(value, str) and re.fullmatch(_NUMBER, value.strip()):
        minutes = float(value)
    elif isinstance(value, str) and re.fullmatch(rf"({_NUMBER}[smhdw])+", text := re.sub(r"\s+", "", value.lower())):
        return sum(float(n) * _DURATION_HOURS[u] for n, u in re.findall(rf"{_NUMBER}([smhdw])", text))
    else:
        raise Invalid("not a duration", given=show(value), valid=DURATION_VALID)
    if minutes < 0:
        raise Invalid("a duration cannot be negative", given=show(value), valid=DURATION_VALID)
    return minutes / 60


def parameter_count(value: Any) -> float:
    """A model size: a number, or one with K, M, B or T (`124M`, `7B`, `1.5B`)."""
    match = None if isinstance(value, bool) else re.fullmatch(
        rf"\s*{_NUMBER}\s*([kmbt]?)\s*", str(value), re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise Invalid("not a parameter count", given=show(value),
                      valid="a positive number, optionally with K, M, B or T (e.g. 124M, 7B, 1.5B)")
    return float(match[1]) * _PARAMETER_SCALE[match[2].lower()]


def check_idle_time(value: str) -> str:
    if not re.fullmatch(r"\d+[mhdwMHDW]?", value):
        raise Invalid("not an idle time", given=show(value), valid="true/false, minutes as a number, a time such "
                      "as 10m, 2h or 1d, or a mapping with idle_minutes/down/wait_for")
    return value


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


class StrictModel(BaseModel):
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
Infra = Annotated[str, AfterValidator(_check_infra)]
ExitCode = Annotated[int, Field(ge=0, le=255)]


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


def check_name(value: str) -> str:
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
