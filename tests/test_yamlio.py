"""Safe YAML loading with lines, and pydantic errors turned into file:line FieldErrors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from placement.yamlio import (ConfigError, FieldError, Invalid, closest, format_path, load_documents,
                              parse_model)


def write(tmp_path: Path, text: str, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_documents(path)
    return info.value


# --- loading ------------------------------------------------------------------------

def test_lines_of_keys_and_list_items(tmp_path):
    doc, = load_documents(write(tmp_path, """\
        name: a
        resources:
          cpus: 8
          any_of:
            - accelerators: A100:8
            -   accelerators: H100:8
                cpus: 16
        """))
    assert doc.data["resources"]["any_of"][1] == {"accelerators": "H100:8", "cpus": 16}
    assert doc.line_of(()) == 1
    assert doc.line_of(("name",)) == 1
    assert doc.line_of(("resources",)) == 2
    assert doc.line_of(("resources", "cpus")) == 3
    assert doc.line_of(("resources", "any_of")) == 4
    assert doc.line_of(("resources", "any_of", 0)) == 5
    assert doc.line_of(("resources", "any_of", 1, "cpus")) == 7


def test_line_of_falls_back_to_deepest_existing_prefix(tmp_path):
    doc, = load_documents(write(tmp_path, "a: 1\nb:\n  c: 2\n"))
    assert doc.line_of(("b", "missing", "deeper")) == 2
    assert doc.line_of(("nowhere",)) == 1


def test_integer_keys_are_found_by_either_spelling(tmp_path):
    doc, = load_documents(write(tmp_path, "ports:\n  8080: web\n"))
    assert doc.data == {"ports": {8080: "web"}}
    assert doc.line_of(("ports", 8080)) == 2


def test_documents_are_numbered_and_empty_ones_skipped(tmp_path):
    docs = load_documents(write(tmp_path, """\
        ---
        name: a
        ---
        # nothing here
        ---
        name: c
        ---
        """))
    assert [d.data["name"] for d in docs] == ["a", "c"]
    assert [d.index for d in docs] == [1, 3]
    assert all(d.multi for d in docs)
    assert docs[1].line_of(("name",)) == 6
    assert [d.number for d in docs] == [1, 3]


def test_single_document_with_trailing_separator_is_not_multi(tmp_path):
    doc, = load_documents(write(tmp_path, "name: a\n---\n"))
    assert not doc.multi
    assert doc.number is None


def test_empty_file_has_no_documents(tmp_path):
    assert load_documents(write(tmp_path, "# only a comment\n")) == []


def test_duplicate_key_names_both_lines(tmp_path):
    error, = load_error(write(tmp_path, "name: a\nrun: x\nsetup: y\nrun: z\n")).errors
    assert (error.line, error.path, error.document) == (4, "run", None)
    assert "duplicate key 'run'" in error.message and "line 2" in error.message


def test_duplicate_nested_key_in_second_document(tmp_path):
    error, = load_error(write(tmp_path, "a: 1\n---\nr:\n  cpus: 1\n  cpus: 2\n")).errors
    assert (error.line, error.path, error.document) == (5, "r.cpus", 2)
    assert "line 4" in error.message


def test_same_key_in_different_mappings_is_fine(tmp_path):
    doc, = load_documents(write(tmp_path, "a: {x: 1}\nb: {x: 2}\n"))
    assert doc.data == {"a": {"x": 1}, "b": {"x": 2}}


def test_syntax_error_has_line_and_document(tmp_path):
    error, = load_error(write(tmp_path, "a: 1\n---\nb: [1, 2\nc: 3\n")).errors
    assert error.document == 2
    assert error.line in (3, 4)
    assert error.message.startswith("YAML syntax error")
    assert error.valid and "well-formed YAML" in error.valid


def test_python_object_tag_is_an_error_not_an_object(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"run: !!python/object/apply:os.system ['touch {marker}']\n")
    error, = load_error(path).errors
    assert not marker.exists()
    assert (error.line, error.path) == (1, "run")
    assert "!!python/object/apply:os.system" in error.message
    assert error.valid and "plain YAML" in error.valid


def test_unknown_tags_anywhere_are_errors(tmp_path):
    errors = load_error(write(tmp_path, "a: !Ref x\nb:\n  - !!python/name:os.system\n? !custom k\n: v\n")).errors
    assert [(e.line, e.path) for e in errors] == [(1, "a"), (3, "b[0]"), (4, "")]


def test_safe_tags_still_work(tmp_path):
    doc, = load_documents(write(tmp_path, "s: !!set {A100: null, H100: null}\nn: !!str 8\nf: !!float 1\n"))
    assert doc.data == {"s": {"A100", "H100"}, "n": "8", "f": 1.0}


def test_bad_scalar_for_explicit_tag(tmp_path):
    error, = load_error(write(tmp_path, "n: !!int many\n")).errors
    assert error.line == 1 and "cannot read" in error.message


def test_missing_and_undecodable_files(tmp_path):
    error, = load_error(tmp_path / "absent.yaml").errors
    assert error.file.endswith("absent.yaml") and error.line is None and "cannot read" in error.message
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: a\nrun: echo caf\xe9\n".encode("latin-1"))
    error, = load_error(bad).errors
    assert (error.line, "not UTF-8" in error.message, "0xe9 at column 14" in error.message) == (2, True, True)
    assert "UTF-8" in error.valid


def test_aliases_point_at_their_anchors(tmp_path):
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 10)]
    doc, = load_documents(write(tmp_path, "\n".join(lines) + "\n"))
    line = doc.line_of(("a9", 0, 1, 0))
    assert line == 9  # an alias's inside points at its anchor, a8 on line 9
    assert len(doc.lines) < 60


def test_merge_keys_are_not_duplicates(tmp_path):
    doc, = load_documents(write(tmp_path, "base: &b {cpus: 8}\njob:\n  <<: *b\n  cpus: 16\n"))
    assert doc.data["job"] == {"cpus": 16}


scalars = st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=8))
keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6)
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                     max_leaves=12)


def all_paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from all_paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from all_paths(value, prefix + (i,))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, trees, min_size=1, max_size=4))
def test_every_key_and_item_has_a_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("h") / "d.yaml"
    path.write_text(yaml.safe_dump(data, default_flow_style=False))
    doc, = load_documents(path)
    assert doc.data == data
    n_lines = len(path.read_text().splitlines())
    for p in all_paths(data):
        assert p in doc.lines and 1 <= doc.lines[p] <= n_lines


# --- rendering ---------------------------------------------------------------------

def test_field_error_names_everything():
    error = FieldError("configs/jobs/a.yaml", 12, 2, "resources.accelerators", "unknown GPU 'A1000'",
                       given="'A1000:8'", valid="a GPU name such as A100", suggestion="A100")
    assert str(error) == ("configs/jobs/a.yaml:12 (document 2): resources.accelerators: unknown GPU 'A1000' "
                          "(given: 'A1000:8'); valid: a GPU name such as A100. Did you mean 'A100'?")
    assert str(FieldError("x.yaml", None, None, "", "cannot read the file")) == "x.yaml: cannot read the file"


def test_config_error_is_one_line_per_error():
    errors = [FieldError("a.yaml", 1, None, "x", "bad"), FieldError("b.yaml", 2, None, "y", "worse")]
    assert str(ConfigError(errors)).splitlines() == ["a.yaml:1: x: bad", "b.yaml:2: y: worse"]


def test_format_path():
    assert format_path(("resources", "any_of", 0, "cpus")) == "resources.any_of[0].cpus"
    assert format_path(("file_mounts", "/data", "source")) == "file_mounts['/data'].source"
    assert format_path(()) == ""


def test_closest():
    assert closest("acelerators", ["accelerators", "cpus"]) == "accelerators"
    assert closest("L4", ["l4", "t4x"]) == "l4"
    assert closest("zzz", ["accelerators"]) is None


# --- parse_model -------------------------------------------------------------------

class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int
    label: str | None = None


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = 1
    inner: Inner | None = None
    items: list[Inner] = []
    either: int | Inner | None = None
    level: str = "low"

    @field_validator("level")
    @classmethod
    def _level(cls, value, info):
        allowed = (info.context or {}).get("levels", ["low", "high"])
        if value not in allowed:
            raise Invalid(f"unknown level {value!r}", given=repr(value), valid=", ".join(allowed))
        return value

    @model_validator(mode="after")
    def _count_vs_items(self):
        if self.items and self.count != len(self.items):
            raise Invalid("count differs from the number of items", given=str(self.count),
                          valid=str(len(self.items)), path=("count",))
        return self


def parse_errors(tmp_path, text, **kwargs) -> list[FieldError]:
    docs = load_documents(write(tmp_path, text))
    with pytest.raises(ConfigError) as info:
        for doc in docs:
            parse_model(Outer, doc, **kwargs)
    return info.value.errors


def test_parse_model_success(tmp_path):
    doc, = load_documents(write(tmp_path, "name: a\ninner: {size: 3}\n"))
    assert parse_model(Outer, doc).inner == Inner(size=3)


def test_unknown_fields_get_did_you_mean_and_the_valid_list(tmp_path):
    errors = parse_errors(tmp_path, "name: a\nnmae: b\ninner:\n  size: 1\n  lable: x\n")
    assert [(e.line, e.path) for e in errors] == [(2, "nmae"), (5, "inner.lable")]
    assert errors[0].suggestion == "name" and "count, either, inner, items, level, name" in errors[0].valid
    assert errors[1].suggestion == "label" and errors[1].valid == "the fields of inner: label, size"


def test_all_errors_of_a_document_sorted_by_line(tmp_path):
    errors = parse_errors(tmp_path, "count: many\nitems:\n  - size: 1\n  - size: big\nname: [x]\n")
    assert [(e.line, e.path, e.message) for e in errors] == [
        (1, "count", "wrong type"), (4, "items[1].size", "wrong type"), (5, "name", "wrong type")]
    assert errors[0].given == "'many'" and errors[0].valid == "a whole number"


def test_missing_field_points_at_its_parent(tmp_path):
    error, = parse_errors(tmp_path, "name: a\ninner:\n  label: x\n")
    assert (error.line, error.path, error.message) == (2, "inner.size", "required field is missing")


def test_union_errors_collapse_into_one(tmp_path):
    error, = parse_errors(tmp_path, "name: a\neither: [1]\n")
    assert (error.line, error.path, error.message) == (2, "either", "wrong type")
    assert error.valid == "a whole number, or a mapping of `key: value` pairs"


def test_union_member_the_user_chose_is_the_one_reported(tmp_path):
    error, = parse_errors(tmp_path, "name: a\neither:\n  size: 1\n  colour: red\n")
    assert (error.line, error.path, error.suggestion) == (4, "either.colour", None)
    assert error.message == "unknown field 'colour'"


def test_invalid_from_validators_keeps_its_words_and_path(tmp_path):
    field, = parse_errors(tmp_path, "name: a\nlevel: mid\n")
    assert (field.line, field.path, field.given, field.valid) == (2, "level", "'mid'", "low, high")
    model, = parse_errors(tmp_path, "name: a\ncount: 3\nitems: [{size: 1}]\n")
    assert (model.line, model.path) == (2, "count")  # the model validator blamed `count`
    assert model.message == "count differs from the number of items" and model.valid == "1"


def test_context_reaches_validators(tmp_path):
    doc, = load_documents(write(tmp_path, "name: a\nlevel: mid\n"))
    assert parse_model(Outer, doc, context={"levels": ["mid"]}).level == "mid"


def test_document_number_only_in_multi_document_files(tmp_path):
    errors = parse_errors(tmp_path, "name: a\n---\nname: b\ncount: x\n")
    assert [(e.line, e.document) for e in errors] == [(4, 2)]
    assert "f.yaml:4 (document 2): count: wrong type" in str(errors[0])
    single, = parse_errors(tmp_path, "name: a\ncount: x\n")
    assert single.document is None and "f.yaml:2: count:" in str(single)


def test_document_error_helper(tmp_path):
    doc, = load_documents(write(tmp_path, "a:\n  b: 1\n"))
    assert doc.error(("a", "b"), "bad", given="1", valid="2") == FieldError(
        str(tmp_path / "f.yaml"), 2, None, "a.b", "bad", "1", "2")


def test_whole_document_of_the_wrong_type(tmp_path):
    error, = parse_errors(tmp_path, "- a\n- b\n")
    assert (error.line, error.path, error.message) == (1, "", "wrong type")
