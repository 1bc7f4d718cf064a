"""Safe YAML loading with the source line of every key and list item, within size and alias limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from placement.yamlio.errors import ConfigError, FieldError, FieldPath, PathKey, format_path, show

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SAFE_VALUES = "plain YAML values: strings, numbers, booleans, null, lists, mappings and !!set"


@dataclass(frozen=True, slots=True)


class Document:
    """One non-empty YAML document of a file, with the line of every key and list item."""

    data: Any = field(repr=False)  # plain dicts, lists, sets and scalars; aliases make reprs explode
    file: str
    index: int  # 1-based position in the file
    multi: bool  # the file holds more than one document
    lines: Mapping[FieldPath, int] = field(repr=False)  # path -> 1-based line; keys as str, items as int

    @property
    def number(self) -> int | None:
        """The document number errors show: only files with several documents have one."""
        return self.index if self.multi else None

    def line_of(self, path: Sequence[PathKey]) -> int | None:
        """Line of the deepest prefix of `path` that the file spells out."""
        found: FieldPath = ()
        line = self.lines.get(())
        for key in path:
            for candidate in (key, str(key)):
                if found + (candidate,) in self.lines:
                    found += (candidate,)
                    line = self.lines[found]
                    break
            else:
                break
        return line

    def error(self, path: Sequence[PathKey], message: str, *, given: str | None = None,
              valid: str | None = None, suggestion: str | None = None) -> FieldError:
        return FieldError(self.file, self.line_of(path), self.number, format_path(path),
                          message, given, valid, suggestion)


# --- limits on what a file may make us build ---------------------------------------------
# Checked while reading (the file's bytes) and while composing (nodes, depth, aliases), before any
# Python object is built, so a hostile file ("billion laughs", deep nesting, a huge file) is refused
# in well under a second, wherever its content sits (unknown keys, `config:`, anything).
MAX_FILE_BYTES = 1024 * 1024  # a file larger than 1 MiB is not read
MAX_DEPTH = 64  # mappings and lists nested deeper than this
MAX_ALIASES = 1_000  # `*name` references in one file
MAX_NODES = 20_000  # values one file expands to, counting each alias as the whole value it repeats
MAX_EXPANDED_BYTES = MAX_FILE_BYTES  # characters of scalars one file expands to, aliases expanded


_LIMITS_VALID = (f"a file of at most {MAX_FILE_BYTES:,} bytes, nested at most {MAX_DEPTH} levels deep, with at most "
                 f"{MAX_ALIASES:,} aliases and {MAX_NODES:,} values once aliases are expanded")


class LimitError(yaml.composer.ComposerError):
    """A file past one of the limits above; `problem_mark` is where the limit was crossed."""

    def __init__(self, problem: str, mark: yaml.Mark, valid: str = "") -> None:
        super().__init__(None, None, problem, mark)
        self.valid = valid or _LIMITS_VALID


class _SafeLoader(yaml.SafeLoader):
    """A private SafeLoader: tags are checked against its constructors before constructing,
    so adding one here never widens what `yaml.safe_load` accepts elsewhere.

    Its composer counts, per file, the nodes and scalar characters each node expands to
    (an alias counts as the value it names), the nesting depth and the aliases, and stops
    at the first limit crossed.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, scalar characters) it expands to
        self._open: list[list[int]] = []  # (nodes, characters) so far of each node being composed, outermost first
        self._nodes = 0  # the file's values so far, aliases expanded
        self._chars = 0  # the file's scalar characters so far, aliases expanded

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        self._expanded.clear()  # anchors do not reach past their document; the file's totals stay
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise LimitError(f"the file has more than {MAX_ALIASES:,} aliases (MAX_ALIASES)", mark)
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:
                raise LimitError("an alias inside the value it names makes a recursive structure", mark,
                                 "aliases to values that are complete where the alias is")
            self._count(*self._expanded[id(node)], mark)
            self._add_to_parent(*self._expanded[id(node)])
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise LimitError(f"the file nests values deeper than {MAX_DEPTH} levels (MAX_DEPTH)", mark)
        self._count(1, 0, mark)
        self._open.append([1, 0])
        node = super().compose_node(parent, index)
        nodes, chars = self._open.pop()
        if isinstance(node, yaml.ScalarNode):
            self._count(0, len(node.value), mark)
            chars += len(node.value)
        self._expanded[id(node)] = (nodes, chars)
        self._add_to_parent(nodes, chars)
        self._depth -= 1
        return node

    def _add_to_parent(self, nodes: int, chars: int) -> None:
        if self._open:
            self._open[-1][0] += nodes
            self._open[-1][1] += chars

    def _count(self, nodes: int, chars: int, mark: yaml.Mark) -> None:
        """Add to the file's totals; refuse past a limit."""
        self._nodes += nodes
        self._chars += chars
        if self._nodes > MAX_NODES:
            raise LimitError(f"the file expands to more than {MAX_NODES:,} values (MAX_NODES)", mark)
        if self._chars > MAX_EXPANDED_BYTES:
            raise LimitError(f"the file expands to more than {MAX_EXPANDED_BYTES:,} characters of text "
                             "(MAX_EXPANDED_BYTES)", mark)


@dataclass(slots=True)


class _Problem:
    index: int
    line: int | None
    path: FieldPath
    message: str
    given: str | None = None
    valid: str | None = None


def load_documents(path: str | Path) -> list[Document]:
    """Read a YAML file safely: every non-empty document, with line numbers.

    Raises ConfigError for unreadable files, syntax errors, duplicate keys and tags
    that would construct objects (`!!python/object`) or that nobody defines.
    """
    file = str(path)
    text = _read_text(file)
    loader = _SafeLoader(text)
    documents: list[Document] = []
    problems: list[_Problem] = []
    count = 0  # documents with content, good or bad
    index = 0
    try:
        while True:
            index += 1  # before check_node: a syntax error there belongs to the next document
            if not loader.check_node():
                break
            node = loader.get_node()
            lines: dict[FieldPath, int] = {}
            before = len(problems)
            _walk(node, (), index, lines, problems, set())
            if len(problems) > before:
                count += 1
                continue
            try:
                data = loader.construct_document(node)
            except ValueError as exc:  # a scalar its explicit tag cannot hold, e.g. `!!int many`
                problems.append(_Problem(index, node.start_mark.line + 1, (),
                                         f"cannot read this document: {exc}", valid=_SAFE_VALUES))
                count += 1
                break
            if data is not None:
                documents.append(Document(data, file, index, False, lines))
                count += 1
    except LimitError as exc:
        mark = exc.problem_mark
        problems.append(_Problem(index, mark.line + 1 if mark else None, (), exc.problem, valid=exc.valid))
        count += 1
    except yaml.YAMLError as exc:
        problems.append(_yaml_problem(exc, index, text))
        count += 1
    finally:
        loader.dispose()

    multi = count > 1
    if problems:
        raise ConfigError([
            FieldError(file, p.line, p.index if multi else None, format_path(p.path), p.message, p.given, p.valid)
            for p in problems])
    return [dataclasses.replace(d, multi=multi) for d in documents]


def check_data_limits(data: Any, source: str) -> None:
    """Hold already-parsed data (a spec a client sent) to the limits a file is held to while it is read:
    MAX_DEPTH levels, MAX_NODES values and MAX_EXPANDED_BYTES characters of text, shared values counted
    each time they appear (as storing them as JSON would write them). Raises ValueError naming the limit."""
    nodes, chars = 0, 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"{source}: the spec nests values deeper than {MAX_DEPTH} levels (MAX_DEPTH)")
        if nodes > MAX_NODES:
            raise ValueError(f"{source}: the spec holds more than {MAX_NODES:,} values (MAX_NODES)")
        if isinstance(value, Mapping):
            stack += [(item, depth + 1) for pair in value.items() for item in pair]
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack += [(item, depth + 1) for item in value]
        elif isinstance(value, (str, bytes)):
            chars += len(value)
            if chars > MAX_EXPANDED_BYTES:
                raise ValueError(f"{source}: the spec holds more than {MAX_EXPANDED_BYTES:,} characters of text "
                                 "(MAX_EXPANDED_BYTES)")


def _read_text(file: str) -> str:
    """The file as text: at most MAX_FILE_BYTES, UTF-8 (a bad byte is reported with its line)."""
    try:
        with open(file, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)  # never more, whatever the file is (a FIFO, /dev/zero)
    except OSError as exc:
        raise ConfigError([FieldError(file, None, None, "", f"cannot read the file: {exc.strerror or exc}",
                                      valid="a readable UTF-8 YAML file")]) from None
    if len(raw) > MAX_FILE_BYTES:  # the line is where the file passes the limit
        raise ConfigError([FieldError(file, raw.count(b"\n", 0, MAX_FILE_BYTES) + 1, None, "",
                                      f"the file is larger than {MAX_FILE_BYTES:,} bytes (MAX_FILE_BYTES)",
                                      valid=f"a YAML file of at most {MAX_FILE_BYTES:,} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([FieldError(
            file, line, None, "", f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} at column {column} "
            "cannot be read", valid="a UTF-8 YAML file (re-save it as UTF-8)")]) from None


def _walk(node: yaml.Node, path: FieldPath, index: int, lines: dict[FieldPath, int],
          problems: list[_Problem], seen: set[int]) -> None:
    """Record the line of every key and list item; report unsafe tags and duplicate keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:  # an alias: walked where its anchor is (and never exponentially)
        return
    seen.add(id(node))
    if node.tag not in _SafeLoader.yaml_constructors:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        problems.append(_Problem(index, node.start_mark.line + 1, path, f"the tag {tag} is not allowed",
                                 given=tag, valid=_SAFE_VALUES))
        return
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), index, lines, problems, seen)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or (
                    key_node.tag not in _SafeLoader.yaml_constructors and key_node.tag != _MERGE_TAG):
                # Complex or tagged keys: only their tags are checked; constructing rejects unhashable ones.
                _walk(key_node, path, index, lines, problems, seen)
                continue
            key = (key_node.tag, key_node.value)
            child = path + (key_node.value,)
            if key in first_line:
                problems.append(_Problem(
                    index, line, child, f"duplicate key {key_node.value!r}: also set at line {first_line[key]}",
                    valid="each key once per mapping; remove one of them"))
                continue
            first_line[key] = line
            lines[child] = line
            _walk(value_node, child, index, lines, problems, seen)


def _yaml_problem(exc: yaml.YAMLError, index: int, text: str) -> _Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}"
    if context:
        context_mark = getattr(exc, "context_mark", None)
        message += f" ({context}" + (f" at line {context_mark.line + 1})" if context_mark else ")")
    given = None
    if mark is not None:
        source = text.splitlines()
        if mark.line < len(source) and source[mark.line].strip():
            given = show(source[mark.line].strip())
    return _Problem(index, mark.line + 1 if mark else None, (), message, given=given,
                    valid="well-formed YAML: consistent indentation, `key: value` pairs, closed quotes and brackets")
