"""`$VAR`s: `envs:` filled in from `--env` and the environment, and expanded where SkyPilot expands them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from placement.spec.job import JobSpec, LoadedSpec
from placement.yamlio import ConfigError, FieldError

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
