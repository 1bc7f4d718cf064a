"""Which files of the launching host a job's `workdir` and `file_mounts` would upload, and whether a policy
allows them.

SkyPilot uploads a local `workdir` or `file_mounts` source from the machine that launches the task,
which for a submitted job is the service host, not the submitter's machine. So a local source is
refused unless it lies under one of the policy's `files.allowed_roots` (none by default). Bucket
URLs and storage mappings whose `source` is a bucket are fine: nothing of the host is read.

A path is judged as SkyPilot would read it: `$VAR` filled in from the task's `envs`, `~` expanded,
relative to the checking process' working directory, `..` and symbolic links resolved.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from placement.yamlio import FieldPath, Invalid, show

# URL schemes of SkyPilot's stores (sky.data.storage.StoreType prefixes): s3 and its S3-compatible
# stores, GCS, Azure blob (https), IBM COS, OCI, Nebius, CoreWeave, VAST Data, Hugging Face.
BUCKET_SCHEMES: tuple[str, ...] = ("s3://", "gs://", "r2://", "https://", "cos://", "oci://", "nebius://",
                                   "cw://", "vastdata://", "hf://")


def local_sources(workdir: Any, file_mounts: Mapping[str, Any] | None) -> Iterator[tuple[FieldPath, str]]:
    """(field path, value) of every source that names a file of the launching host."""
    if isinstance(workdir, str):
        yield ("workdir",), workdir
    for remote, mount in (file_mounts or {}).items():
        if isinstance(mount, str):
            if not is_bucket(mount):
                yield ("file_mounts", remote), mount
            continue
        source = getattr(mount, "source", None)
        sources = [source] if isinstance(source, str) else list(source or [])
        for i, item in enumerate(sources):
            if not is_bucket(item):
                yield ("file_mounts", remote, "source") + ((i,) if not isinstance(source, str) else ()), item


def is_bucket(value: str) -> bool:
    return value.strip().lower().startswith(BUCKET_SCHEMES)


def resolve(value: str, envs: Mapping[str, str | None]) -> Path:
    """The absolute path a source names on this host: envs filled in, `~` expanded, `..` and links resolved."""
    filled = string.Template(value).safe_substitute({k: v for k, v in envs.items() if v is not None})
    return Path(os.path.expanduser(filled)).resolve()


def check_sources(workdir: Any, file_mounts: Mapping[str, Any] | None, envs: Mapping[str, str | None] | None,
                  allowed_roots: Sequence[str]) -> None:
    """Raise Invalid (pointing at the field) for the first local source outside `allowed_roots`."""
    roots = [Path(os.path.expanduser(r)).resolve() for r in allowed_roots]
    for path, value in local_sources(workdir, file_mounts):
        where = resolve(value, envs or {})
        if not any(where == root or where.is_relative_to(root) for root in roots):
            allowed = ", ".join(map(str, roots)) if roots else "none are allowed"
            raise Invalid("names a file of the service host outside the policy's allowed roots",
                          given=f"{show(value)}, which is {where}" if str(where) != value else show(value),
                          valid=f"a bucket URL ({', '.join(BUCKET_SCHEMES[:4])}, ...), a storage mapping with a "
                                f"bucket source, a git workdir {{url: ...}}, or a path under the policy's "
                                f"files.allowed_roots ({allowed})", path=path)
