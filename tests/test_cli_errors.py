"""Every CLI failure is one line (or a short list of file:line lines) and a non-zero exit status, never a
traceback: bad files, a service that does not answer, a service that refuses, Ray that is not there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

import placement.client
from placement.actor import NAMESPACE, SERVICE_NAME, find_service
from placement.cli import app
from placement.cli.common import UNAVAILABLE_EXIT

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# --- files ---------------------------------------------------------------------------------------------

def test_error_lines_are_text_not_markup(tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text("name: x\nresources:\n  accelerators: [H100:8, A10O:8]\n")
    result = invoke("validate", str(spec))
    assert result.exit_code == 1
    [line] = error_lines(result.output)
    assert line.startswith(f"error: {spec}:3: resources.accelerators[1]: unknown GPU 'A10O'")
    assert "[red]" not in result.output and "Traceback" not in result.output


def test_an_empty_file_holds_no_job(tmp_path):
    for name, text in (("empty.yaml", ""), ("comments.yaml", "# nothing yet\n---\n")):
        spec = tmp_path / name
        spec.write_text(text)
        result = invoke("validate", str(spec))
        assert result.exit_code == 1 and error_lines(result.output) == [
            f"error: {spec}: the file holds no job (it is empty or only comments); valid: a SkyPilot task YAML, "
            "e.g. `run: python train.py`"], result.output


# --- a service that does not answer, or refuses -----------------------------------------------------------

@ray.remote(num_cpus=0, max_concurrency=8)
class RestartingService:
    """Test double of the placement service while it restarts over and over: queries wait past the CLI's
    time-out; `explain` refuses as the service does for an unknown job; `spend` answers in a shape the CLI
    cannot read (an unexpected error in the CLI itself)."""

    def status(self, *args):
        time.sleep(60)

    def submit(self, *args):
        time.sleep(60)

    def file_roots(self) -> list[str]:
        return []

    def explain(self, job_id: str):
        raise ValueError(f"no job {job_id!r}; `placement status` lists the jobs")

    def spend(self, team=None):
        return [{"scope": "global"}]


@pytest.fixture
def restarting(ray_cluster, monkeypatch):
    assert find_service() is None, "another test left the default-named service running"
    monkeypatch.setattr(placement.client, "CALL_TIMEOUT_S", 1.0)
    double = RestartingService.options(name=SERVICE_NAME, namespace=NAMESPACE).remote()
    assert ray.get(double.file_roots.remote(), timeout=60) == []
    yield double
    ray.kill(double, no_restart=True)
    deadline = time.time() + 30
    while find_service() is not None and time.time() < deadline:
        time.sleep(0.2)


def test_a_query_to_a_service_that_does_not_answer_ends_in_one_line(restarting):
    started = time.monotonic()
    result = invoke("status")
    assert result.exit_code == UNAVAILABLE_EXIT
    assert error_lines(result.output) == [
        "error: the placement service is not answering (restarting?) after 1 s; try again in a moment, and see "
        "`placement status`"], result.output
    assert time.monotonic() - started < 30  # the bound, not Ray's own minutes


def test_submit_to_a_service_that_does_not_answer_says_the_jobs_may_be_stored(restarting, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text("name: waits\nrun: echo\n")
    result = invoke("submit", str(spec))
    assert result.exit_code == UNAVAILABLE_EXIT and "Traceback" not in result.output
    [line] = error_lines(result.output)
    assert "not answering (restarting?)" in line and "may still be stored" in line


def test_submit_names_the_line_of_a_source_the_service_would_refuse(restarting, tmp_path):
    """The CLI asks the service for its allowed roots and checks the file itself, so the refusal has a line
    (the double would not answer `submit`: reaching it would end in the time-out instead)."""
    spec = tmp_path / "job.yaml"
    spec.write_text("name: keys\nfile_mounts:\n  /remote/k: ~/.ssh\nrun: ls\n")
    result = invoke("submit", str(spec))
    assert result.exit_code == 1
    [line] = error_lines(result.output)
    assert line.startswith(f"error: {spec}:3: file_mounts['/remote/k']: names a file of the service host outside "
                           "the policy's allowed roots"), line


def test_a_refusal_of_the_service_is_its_message(restarting):
    result = invoke("explain", "nope-1")
    assert result.exit_code == 1
    assert error_lines(result.output) == ["error: no job 'nope-1'; `placement status` lists the jobs"], result.output


def test_an_unexpected_error_is_one_line_too(restarting):
    result = invoke("spend")
    assert result.exit_code == 1
    assert error_lines(result.output) == ["error: unexpected KeyError: 'over' (PLACEMENT_DEBUG=1 shows the "
                                          "traceback)"], result.output


# --- Ray not there -------------------------------------------------------------------------------------------

def test_ray_not_reachable_is_one_line_in_seconds(tmp_path):
    from tests.conftest import free_port

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path), COLUMNS="400")
    for command in (["status"], ["cancel", "x-1"], ["logs", "x-1"]):
        result = subprocess.run([sys.executable, "-m", "placement", *command, "--address", f"127.0.0.1:{free_port()}"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == UNAVAILABLE_EXIT, result
        [line] = result.stderr.splitlines()
        assert line.startswith("error: Ray is not reachable at ") and "connection refused" in line, line
