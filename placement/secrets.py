"""Which of a job's environment values are secret, and keeping them secret at rest.

A value is secret when the spec lists it under `secrets:` (SkyPilot's field;
`placement submit --secret NAME` moves an env there), or when its env name
looks like a credential: it contains TOKEN, KEY, SECRET or PASSWORD (any case).
Secret values never go where others can read them: not into a Ray job's
runtime_env or metadata (the dashboard's job API returns both; the job fetches
them itself when it starts, `placement.secret_exec`), not into the store in
plaintext (`Sealer`: Fernet, with a key file of mode 0600 beside the store),
and not into a SkyPilot task's `envs` (its `secrets` field instead).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.IGNORECASE)
SEALED_PREFIX = "fernet:"


class SecretError(RuntimeError):
    """A key file that cannot be made or trusted."""


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def split_env(spec: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain envs, secret values) of a spec; `secrets:` win over `envs:` of the same name, as in SkyPilot."""
    plain, secret = {}, {}
    for name, value in (spec.get("envs") or {}).items():
        if value is not None:
            (secret if is_secret_name(name) else plain)[name] = str(value)
    declared = spec.get("secrets")
    if isinstance(declared, dict):
        for name, value in declared.items():
            plain.pop(name, None)
            if value is not None:
                secret[name] = str(value)
    return plain, secret


def mark_secret(data: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The spec document with those of these envs it has moved to `secrets:` (`submit --secret NAME`)."""
    envs = dict(data.get("envs") or {})
    moved = {name: envs.pop(name) for name in names if name in envs}
    if not moved:
        return data
    declared = data.get("secrets")
    result = {**data, "secrets": {**(declared if isinstance(declared, dict) else {}), **moved}}
    if envs:
        result["envs"] = envs
    else:
        result.pop("envs", None)
    return result


def unknown_names(documents: Iterable[dict[str, Any]], names: Iterable[str]) -> list[str]:
    """The names no document has an env or secret of (a `--secret` that would protect nothing)."""
    known = {name for data in documents for part in ("envs", "secrets") if isinstance(data.get(part), dict)
             for name in data[part]}
    return sorted(set(names) - known)


def sky_env(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every secret value under `secrets:` and none under `envs:` (SkyPilot redacts `secrets`)."""
    plain, secret = split_env(spec)
    result = {k: v for k, v in spec.items() if k not in ("envs", "secrets")}
    if plain:
        result["envs"] = plain
    if secret:
        result["secrets"] = secret
    return result


class Sealer:
    """Encrypts a spec's secret values for the store, with a key kept in a file of mode 0600.

    The key file is created exclusively (a file planted beforehand is never adopted silently: one
    that others can read is refused). Losing it makes the sealed values unreadable, nothing else.
    """

    def __init__(self, key_file: Path):
        from cryptography.fernet import Fernet

        self.key_file = key_file
        self._fernet = Fernet(_load_or_create_key(key_file))

    def seal(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._map(spec, lambda v: v if v.startswith(SEALED_PREFIX) else
                         SEALED_PREFIX + self._fernet.encrypt(v.encode()).decode())

    def unseal(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._map(spec, lambda v: self._fernet.decrypt(v[len(SEALED_PREFIX):].encode()).decode()
                         if v.startswith(SEALED_PREFIX) else v)

    @staticmethod
    def _map(spec: dict[str, Any], change) -> dict[str, Any]:
        envs, declared = spec.get("envs"), spec.get("secrets")
        if not declared and not (isinstance(envs, dict) and any(map(is_secret_name, envs))):
            return spec
        result = dict(spec)
        if isinstance(envs, dict):
            result["envs"] = {k: change(v) if isinstance(v, str) and is_secret_name(k) else v
                              for k, v in envs.items()}
        if isinstance(declared, dict):
            result["secrets"] = {k: change(v) if isinstance(v, str) else v for k, v in declared.items()}
        return result


def _load_or_create_key(path: Path) -> bytes:
    from cryptography.fernet import Fernet

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretError(f"the store's key file {path} can be read by others (mode {mode:o}); "
                              f"run `chmod 600 {path}`") from None
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
