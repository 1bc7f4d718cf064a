"""`accelerators:` as SkyPilot reads it (`A100:8`, `{A100: 8, H100: 8}`, `[L4, T4]`, `80GB+`), its GPU
names made canonical (`clouds.gpus`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

from clouds.gpus import GPU_MODELS, canonical_gpu, suggest_gpu
from placement.spec.values import is_number
from placement.yamlio import Invalid, show

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
    if not is_number(count) or count <= 0 or (count > 1 and count != int(count)):
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


Accelerators = Annotated[Any, AfterValidator(_check_accelerators), WithJsonSchema({
    "anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
              {"type": "array", "items": {"type": "string"}}], "description": _ACCEL_VALID})]
