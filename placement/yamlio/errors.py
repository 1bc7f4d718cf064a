"""Configuration errors as a user reads them: one line each, with file, line, field, given and valid.

Values only (no YAML is read here), so models in the pure core can raise `Invalid` from their validators.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PathKey = str | int
FieldPath = tuple[PathKey, ...]


@dataclass(frozen=True, slots=True)


class FieldError:
    """One problem in one file, located as precisely as the file allows."""

    file: str
    line: int | None  # 1-based
    document: int | None  # 1-based, only for files with several documents
    path: str  # dotted field path, "" for the whole document
    message: str
    given: str | None = None  # what the file says, as text
    valid: str | None = None  # what would be accepted
    suggestion: str | None = None  # did-you-mean

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.document is not None:
            where += f" (document {self.document})"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.given is not None:
            text += f" (given: {self.given})"
        if self.valid is not None:
            text += f"; valid: {self.valid}"
        if self.suggestion is not None:
            text += f". Did you mean {self.suggestion!r}?"
        return text


class ConfigError(Exception):
    """Every problem found in a set of configuration files; `str()` gives one per line."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class Invalid(ValueError):
    """Raised by a validator to say what is wrong, what was given and what is valid.

    `path` is relative to the value being validated: a model validator that finds two
    fields in conflict points at the field to blame (`path=("data_residency",)`).
    """

    def __init__(self, message: str, *, given: str | None = None, valid: str | None = None,
                 suggestion: str | None = None, path: FieldPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.given = given
        self.valid = valid
        self.suggestion = suggestion
        self.path = path


def show(value: Any, limit: int = 80) -> str:
    """A value as an error message quotes it: its repr, cut short."""
    text = repr(sorted(value, key=str) if isinstance(value, (set, frozenset)) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(path: Sequence[PathKey]) -> str:
    """('resources', 'any_of', 0, 'cpus') -> 'resources.any_of[0].cpus'."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
            text += f".{key}" if text else key
        else:
            text += f"[{key!r}]"
    return text


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice a misspelt word most likely meant, if any is close."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not found:  # case slips ('High' for 'high') fall below the cutoff on short words
        found = [c for c in choices if c.lower() == word.lower()]
    return found[0] if found else None
