"""Pydantic validation of a loaded document, its errors translated into file:line `FieldError`s.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from placement.yamlio.errors import ConfigError, FieldError, FieldPath, Invalid, PathKey, closest, format_path, show
from placement.yamlio.loading import Document

M = TypeVar("M", bound=BaseModel)

_TYPE_WORDS = {
    "dict_type": "a mapping of `key: value` pairs", "model_type": "a mapping of `key: value` pairs",
    "model_attributes_type": "a mapping of `key: value` pairs",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
    "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "none_required": "null",
}


def parse_model(model_cls: type[M], document: Document, *, context: dict | None = None) -> M:
    """Validate one document as `model_cls`; every problem becomes a FieldError with its line.

    Raises ConfigError with all problems of the document.
    """
    try:
        return model_cls.model_validate(document.data, context=context)
    except ValidationError as exc:
        raise ConfigError(_field_errors(model_cls, document, exc.errors())) from None


@dataclass(frozen=True, slots=True)


class _Located:
    path: FieldPath
    union: bool  # the error is about one member of a union (`str | Model`)
    custom: bool  # raised as Invalid by a validator: the most specific words available
    error: FieldError


def _field_errors(model_cls: type[BaseModel], document: Document, errors: list[Any]) -> list[FieldError]:
    located: list[_Located] = []
    for err in errors:
        path, union = _data_path(document.data, err["loc"], missing=err["type"] == "missing")
        invalid = (err.get("ctx") or {}).get("error")
        if isinstance(invalid, Invalid):
            path += invalid.path
            located.append(_Located(path, union, True, document.error(
                path, invalid.message, given=invalid.given, valid=invalid.valid, suggestion=invalid.suggestion)))
        else:
            located.append(_Located(path, union, False, _translate(model_cls, document, err, path)))

    # A value that matches no member of a union fails once per member. Where the user
    # clearly chose a member (its errors point deeper into the value), keep only those;
    # else say once what the members accept.
    deeper = {loc.path[:n] for loc in located for n in range(len(loc.path))}
    located = [loc for loc in located if not (loc.union and loc.path in deeper)]
    result: list[FieldError] = []
    by_path: dict[FieldPath, list[_Located]] = {}
    for loc in located:
        if loc.union:
            by_path.setdefault(loc.path, []).append(loc)
        else:
            result.append(loc.error)
    for group in by_path.values():
        custom = [loc for loc in group if loc.custom]
        if len(group) == 1 or custom:
            result.append((custom or group)[0].error)
            continue
        valid = ", or ".join(dict.fromkeys(loc.error.valid for loc in group if loc.error.valid))
        result.append(dataclasses.replace(group[0].error, message="wrong type", valid=valid or None))
    return sorted(result, key=lambda e: e.line or 0)


def _data_path(data: Any, loc: Sequence[PathKey], *, missing: bool) -> tuple[FieldPath, bool]:
    """The part of a pydantic `loc` that names places in the data, and whether it crossed
    a union member name ('str', 'GitWorkdir', 'list[str]') on the way."""
    path: list[PathKey] = []
    union = False
    current = data
    for i, key in enumerate(loc):
        if isinstance(current, Mapping) and key in current:
            current = current[key]
            path.append(key)
        elif isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current):
            current = current[key]
            path.append(key)
        elif missing and i == len(loc) - 1:
            path.append(key)
        else:
            union = union or key != "[key]"
    return tuple(path), union


def _translate(model_cls: type[BaseModel], document: Document, err: Mapping[str, Any],
               path: FieldPath) -> FieldError:
    kind: str = err["type"]
    ctx = err.get("ctx") or {}
    given = show(err["input"])
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else str(err["loc"][-1])
        fields = _field_names(model_cls, err["loc"][:-1])
        where = format_path(path[:-1]) or "the document"
        return document.error(path, f"unknown field {key!r}", valid=f"the fields of {where}: {', '.join(fields)}",
                              suggestion=closest(key, fields))
    if kind == "missing":
        return document.error(path, "required field is missing", valid=f"add `{path[-1]}:`" if path else None)
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", ctx.get("expected", ""))
        return document.error(path, "not one of the allowed values", given=given,
                              valid=f"one of {', '.join(choices)}",
                              suggestion=closest(str(err["input"]), choices) if isinstance(err["input"], str) else None)
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        least = kind.endswith("short")
        bound = ctx["min_length" if least else "max_length"]
        unit = "character" if kind.startswith("string") else "item"
        return document.error(path, f"too {'few' if least else 'many'} {unit}s", given=given,
                              valid=f"at {'least' if least else 'most'} {bound} {unit}{'s' if bound != 1 else ''}")
    if kind in _TYPE_WORDS:
        return document.error(path, "wrong type", given=given, valid=_TYPE_WORDS[kind])
    msg: str = err["msg"]
    valid = msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else None
    message = "out of range" if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") \
        else ("invalid value" if valid else msg)
    return document.error(path, message, given=given, valid=valid)


def _field_names(model_cls: type[BaseModel], loc: Sequence[PathKey]) -> list[str]:
    """Field names of the model(s) that validate the value at `loc`."""
    current: list[Any] = [model_cls]
    for key in loc:
        step: list[Any] = []
        for tp in _members(current):
            origin, args = typing.get_origin(tp), typing.get_args(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if key in tp.model_fields:
                    step.append(tp.model_fields[key].annotation)
                elif key == tp.__name__:  # pydantic names the union member it tried
                    step.append(tp)
            elif origin in (list, tuple, set, frozenset, Sequence) and isinstance(key, int) and args:
                step.append(args[0])
            elif origin in (dict, Mapping) and len(args) == 2:
                step.append(args[1])
        current = step or current
    names = {name for tp in _members(current) if isinstance(tp, type) and issubclass(tp, BaseModel)
             for name in tp.model_fields}
    return sorted(names)


def _members(types_: list[Any]) -> list[Any]:
    """Unwrap Annotated and unions into the plain types they allow."""
    out: list[Any] = []
    for tp in types_:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            out += _members([typing.get_args(tp)[0]])
        elif origin in (typing.Union, types.UnionType):
            out += _members(list(typing.get_args(tp)))
        else:
            out.append(tp)
    return out
