"""Spec files read as `sky launch` reads them: one task, a pipeline, or a job group per file, every
error with file, line, document and field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from placement.spec.envs import expand_env_vars, with_env
from placement.spec.job import JobSpec, LoadedSpec
from placement.spec.values import DEFAULT_PRIORITY_CLASSES, StrictModel
from placement.yamlio import (ConfigError, Document, FieldError, check_data_limits, closest, load_documents,
                              parse_model, show)


class PipelineHeader(StrictModel):
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
