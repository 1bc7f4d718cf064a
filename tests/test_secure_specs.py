"""Hostile and careless specs: YAML bombs, names that are not launch names, files of the service host.

The hostile files run through `placement validate` in a subprocess with a 10 s time-out: a guard against
a hang (before the limits, the alias bomb ran past 120 s), not a timing assertion.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from placement.reconciler import handle_for
from placement.service import Engine, ServiceConfig
from placement.spec import (LAUNCH_NAME_PATTERN, NAME_MAX_LENGTH, SKY_NAME_PATTERN, launch_name, load_specs,
                            spec_from_data, to_jobs)
from placement.yamlio import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, ConfigError

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "bad_specs"


def validate(*files: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400")
    return subprocess.run([sys.executable, "-m", "placement", "validate", *map(str, files)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=10)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


# --- hostile YAML -------------------------------------------------------------------------------------

def _twenty_megabytes(tmp_path: Path) -> Path:
    path = tmp_path / "huge.yaml"
    with path.open("w") as out:
        out.write("name: huge\nrun: |\n")
        for _ in range(220_000):
            out.write("  echo " + "x" * 90 + "\n")
    assert path.stat().st_size > 20_000_000
    return path


def _many_aliases(tmp_path: Path) -> Path:
    return write(tmp_path, "aliases.yaml", "name: many\nbase: &b 1\nconfig:\n" + "".join(
        f"  k{i}: *b\n" for i in range(MAX_ALIASES + 1)))


HOSTILE = {  # file (or how to make it) -> (line, words naming the limit); None: the line where the file passes 1 MiB
    "alias_bomb_unknown_keys.yaml": (8, f"expands to more than {MAX_NODES:,} values (MAX_NODES)"),
    "alias_bomb_config.yaml": (9, f"expands to more than {MAX_NODES:,} values (MAX_NODES)"),
    "deep_nesting.yaml": (3, f"nests values deeper than {MAX_DEPTH} levels (MAX_DEPTH)"),
    "twenty_megabytes": (None, f"larger than {MAX_FILE_BYTES:,} bytes (MAX_FILE_BYTES)"),
    "many_aliases": (MAX_ALIASES + 4, f"more than {MAX_ALIASES:,} aliases (MAX_ALIASES)"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_refused_with_its_line_and_limit(tmp_path, name):
    path = {"twenty_megabytes": _twenty_megabytes, "many_aliases": _many_aliases}.get(name, lambda _: BAD / name)(
        tmp_path)
    line, words = HOSTILE[name]
    if line is None:
        with path.open("rb") as stream:
            line = stream.read(MAX_FILE_BYTES).count(b"\n") + 1
    result = validate(path)
    assert result.returncode == 1, result
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {path}:{line}: ") and words in errors[0], errors[0]
    assert "Traceback" not in result.stderr


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_specs([write(tmp_path, "loop.yaml", "name: loop\nconfig:\n  a: &a [1, *a]\n")])
    error, = info.value.errors
    assert error.line == 3 and "recursive" in error.message


def test_aliases_within_the_limits_still_load(tmp_path):
    loaded, = load_specs([write(tmp_path, "anchors.yaml", """\
        name: anchors
        envs: &e {A: "1", B: "2"}
        config:
          one: *e
          two: *e
        """)])
    assert loaded.spec.config == {"one": {"A": "1", "B": "2"}, "two": {"A": "1", "B": "2"}}


def _shared_bomb(levels: int) -> list:
    value: list = ["lol"] * 9
    for _ in range(levels):
        value = [value] * 9  # nine references to one list: 9**levels values once written out
    return value


def _recursive() -> list:
    value: list = []
    value.append(value)
    return value


@pytest.mark.parametrize("data, words", [
    ({"name": "bomb", "config": {"a": _shared_bomb(8)}}, f"more than {MAX_NODES:,} values (MAX_NODES)"),
    ({"name": "deep", "config": {"a": _recursive()}}, f"deeper than {MAX_DEPTH} levels (MAX_DEPTH)"),
    ({"name": "long", "run": "x" * (MAX_FILE_BYTES + 1)}, "characters of text (MAX_EXPANDED_BYTES)"),
])
def test_the_service_holds_what_a_client_sends_to_the_same_limits(data, words):
    """A client need not be the CLI: what reaches the service over Ray was never YAML."""
    with pytest.raises(ValueError, match=re.escape(words)) as info:
        spec_from_data(data, "sent.yaml#1")
    assert str(info.value).startswith("sent.yaml#1: ")


# --- names --------------------------------------------------------------------------------------------

SKY_NAMES = st.from_regex(SKY_NAME_PATTERN, fullmatch=True).filter(lambda n: len(n) <= NAME_MAX_LENGTH)


def _valid_sky_cluster_name(name: str) -> bool:
    from sky import exceptions
    from sky.utils.common_utils import check_cluster_name_is_valid

    try:
        check_cluster_name_is_valid(name)
    except exceptions.InvalidClusterNameError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(name=SKY_NAMES, number=st.integers(1, 10**9), attempt=st.integers(1, 99),
       replicas=st.integers(0, 3))
def test_every_accepted_name_gives_launch_names_ray_and_skypilot_take(name, number, attempt, replicas):
    from clouds.sky_tasks import sky_name

    data = {"name": name, "run": "echo"}
    if replicas:
        data["service"] = {"replicas": replicas}
    loaded = spec_from_data(data, "job.yaml#1")
    for job in to_jobs([loaded]):
        job_id = f"{job.id}-{number}"  # as the store numbers it
        handle = handle_for("0a1b2c3d", job_id, attempt)
        assert re.fullmatch(LAUNCH_NAME_PATTERN, job_id) and re.fullmatch(LAUNCH_NAME_PATTERN, handle), handle
        assert sky_name(handle) == handle  # the SkyPilot cluster name is the handle itself
        assert _valid_sky_cluster_name(handle)
        assert len(job_id) <= NAME_MAX_LENGTH + 30  # `status` prints it on one line


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_file_stem_becomes_a_launch_name(stem):
    name = launch_name(stem)
    assert re.fullmatch(LAUNCH_NAME_PATTERN, name) and len(name) <= NAME_MAX_LENGTH
    assert launch_name(stem) == name


def test_names_are_made_launch_names_not_refused_for_case(tmp_path):
    """SkyPilot takes `minGPT_ddp.v2`; its id and launch names are lowercase letters, digits and '-'."""
    loaded = load_specs([write(tmp_path, "My Job (copy).yaml", "run: echo\n"),
                         write(tmp_path, "b.yaml", "name: minGPT_ddp.v2\nrun: echo\n")])
    assert [job.id for job in to_jobs(loaded)] == ["my-job-copy", "mingpt-ddp-v2"]


@pytest.mark.parametrize("name", ["../x", "a/b", "a" * 500, "my job", "-lead", "trail-", "9lives", "a\nb", ""])
def test_the_service_refuses_what_validate_refuses(tmp_path, engine, name):
    with pytest.raises(ConfigError) as info:
        load_specs([write(tmp_path, "job.yaml", f"name: {name!r}\nrun: echo\n")])
    assert info.value.errors[0].path == "name"
    before = len(engine.store.jobs())
    with pytest.raises(ValueError, match="job.yaml#1: name: "):
        engine.submit([{"source": "job.yaml#1", "data": {"name": name, "run": "echo"}}], f"names-{len(name)}")
    assert len(engine.store.jobs()) == before


# --- files of the service host ------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    """An allowed root with a project in it, a symlink out of it, and a directory beside it."""
    root = tmp_path / "allowed"
    (root / "project").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    return root


def sources_error(tmp_path: Path, text: str, roots) -> str | None:
    try:
        load_specs([write(tmp_path, "job.yaml", text)], allowed_roots=roots)
    except ConfigError as exc:
        error, = exc.errors
        return str(error)
    return None


def test_sources_under_an_allowed_root_and_buckets_are_taken(tmp_path, tree):
    assert sources_error(tmp_path, f"""\
        name: ok
        workdir: {tree}/project
        envs: {{ROOT: {tree}}}
        file_mounts:
          /a: {tree}/project/../project
          /b: $ROOT/project
          /c: s3://bucket/data
          /d: {{source: gs://bucket/data, mode: MOUNT}}
          /e: {{source: [r2://bucket/a, https://account.blob.core.windows.net/c]}}
          /f: {{name: scratch, store: s3}}
        run: echo
        """, [str(tree)]) is None


@pytest.mark.parametrize("field, line", [
    ("workdir: {tree}/escape", 2),  # a symbolic link out of the root
    ("workdir: {tree}/../outside", 2),  # `..` out of the root
    ("workdir: {tree}-sibling", 2),  # a name that only starts like the root
    ("file_mounts:\n  /k: ~/.ssh", 3),
    ("file_mounts:\n  /k: {{source: {tree}/../outside}}", 3),
    ("file_mounts:\n  /k:\n    source:\n      - s3://fine\n      - /etc/passwd", 6),
    ("envs: {{WHERE: /etc}}\nfile_mounts:\n  /k: $WHERE", 4),  # as SkyPilot reads it, envs filled in
    ("workdir: relative/to/the/service", 2),
])
def test_sources_outside_the_roots_are_refused_at_their_line(tmp_path, tree, field, line):
    text = "name: bad\n" + field.format(tree=tree) + "\nrun: echo\n"
    error = sources_error(tmp_path, text, [str(tree)])
    assert error is not None and f"job.yaml:{line}:" in error
    assert "outside the policy's allowed roots" in error and str(tree) in error


def test_no_roots_by_default(tmp_path, tree):
    error = sources_error(tmp_path, f"name: w\nworkdir: {tree}/project\nrun: echo\n", ())
    assert error is not None and "none are allowed" in error


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The service's engine (no Ray: no providers, rounds only when asked) with a policy that allows one root."""
    home = tmp_path_factory.mktemp("engine")
    root = home / "served"
    root.mkdir()
    policy = write(home, "policy.yaml", f"name: files\nfiles: {{allowed_roots: [{root}]}}\n")
    return Engine(ServiceConfig(store_path=str(home / "p.db"), policy=str(policy), round_interval_s=None,
                                telemetry_interval_s=None, catalogs=()), {})


def test_the_service_checks_sources_with_its_own_policy(engine):
    root = engine.policy.files.allowed_roots[0]
    [job_id] = engine.submit([{"source": "a.yaml#1", "data": {"name": "inside", "workdir": root, "run": "echo"}}],
                             "sources-ok")
    before = len(engine.store.jobs())
    for i, data in enumerate([{"name": "etc", "workdir": "/etc"},
                              {"name": "keys", "file_mounts": {"/remote/k": "~/.ssh"}}]):
        with pytest.raises(ValueError, match="outside the policy's allowed roots"):
            engine.submit([{"source": "a.yaml#1", "data": data}], f"sources-{i}")
    assert job_id.startswith("inside-") and len(engine.store.jobs()) == before


def test_validate_checks_sources_with_the_policy_it_is_given(tmp_path, tree):
    spec = write(tmp_path, "job.yaml", f"name: w\nworkdir: {tree}/project\nrun: echo\n")
    refused = validate(spec)
    assert refused.returncode == 1 and f"{spec}:2: workdir: " in refused.stderr
    policy = write(tmp_path, "policy.yaml", f"name: files\nfiles: {{allowed_roots: [{tree}]}}\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400")
    taken = subprocess.run([sys.executable, "-m", "placement", "validate", str(spec), "--policy", str(policy)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert taken.returncode == 0 and "ok w:" in taken.stdout, taken


# --- secrets (the schema; storing and delivering them is the service's) -----------------------------

def test_secrets_are_taken_as_skypilot_takes_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYPILOT_DISABLE_LOCAL_API_SERVER", "1")
    import sky

    loaded, = load_specs([write(tmp_path, "s.yaml", """\
        name: secretive
        envs: {EPOCHS: 3}
        secrets:
          HF_TOKEN: hf_abc
          WANDB_API_KEY: null
          PIN: 1234
        run: echo
        """)])
    assert loaded.spec.secrets == {"HF_TOKEN": "hf_abc", "WANDB_API_KEY": None, "PIN": "1234"}
    task = sky.Task.from_yaml_config(loaded.spec.sky_config())
    inline = {k: v.get_secret_value() for k, v in task.secrets.items() if v is not None}  # SkyPilot's SecretStr
    assert inline == {"HF_TOKEN": "hf_abc", "PIN": "1234"}
    assert spec_from_data(loaded.data, "s.yaml#1").spec.secrets == loaded.spec.secrets


def test_the_examples_upload_nothing_of_the_service_host():
    """`placement validate configs/jobs/` passes under the default policy (no allowed roots)."""
    assert len(load_specs([ROOT / "configs" / "jobs"], allowed_roots=())) >= 10
