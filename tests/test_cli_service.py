"""The service commands of the CLI, against a real service on the shared cluster."""

from __future__ import annotations

import json
import os
import time

import pytest
import ray
from typer.testing import CliRunner

from placement.actor import find_service, start_service
from placement.cli import app
from placement.service import ServiceConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_service(ray_cluster, tmp_path_factory):
    """The service under its default name, as `placement up` starts it; the CLI finds it through Ray."""
    assert find_service() is None, "another test left the default-named service running"
    state_home = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))  # no `placement up` state of the user
    config = ServiceConfig(store_path=str(tmp_path_factory.mktemp("cli") / "p.db"), round_interval_s=1.0,
                           catalogs=(), dashboard_url=ray_cluster.webui_url)
    handle = start_service(config)
    ray.get(handle.status.remote("-"), timeout=60)
    yield handle
    ray.kill(handle, no_restart=True)
    if state_home is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = state_home


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_submit_then_status_explain_logs(cli_service, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text("name: cli-echo\nresources: {cpus: 1}\nrun: echo hello-from-cli\n"
                    "placement: {team: platform, tiers: [onprem], expected_hours: 0.01}\n")
    submitted = invoke("submit", str(spec), "--wait")
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.split()[0]
    assert job_id.startswith("cli-echo-")
    deadline = time.time() + 60
    while True:
        [row] = json.loads(invoke("status", job_id, "--json").output)
        if row["state"] == "succeeded" or time.time() > deadline:
            break
        time.sleep(1)
    assert row["state"] == "succeeded" and row["tier"] == "onprem", row
    assert "hello-from-cli" in invoke("logs", job_id).output
    explained = invoke("explain", job_id)
    assert explained.exit_code == 0 and "decided:launch" in explained.output and "succeeded" in explained.output
    table = invoke("status", "--team", "platform")
    assert job_id in table.output


def test_pending_job_shows_its_reason_and_cancels(cli_service, tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("name: cli-big\nresources: {accelerators: A100-80GB:1}\nrun: 'true'\n"
                    "placement: {team: research, tiers: [onprem], gpu_memory: {per_gpu_gb: 120}}\n")
    job_id = invoke("submit", str(spec), "--wait").output.split()[0]
    [row] = json.loads(invoke("status", job_id, "--json").output)
    assert row["state"] == "pending" and row["reason_code"] == "InsufficientGpuMemory"
    assert invoke("cancel", job_id).exit_code == 0
    assert json.loads(invoke("status", job_id, "--json").output)[0]["state"] == "cancelled"


def test_invalid_file_is_rejected_whole_and_nothing_is_stored(cli_service, tmp_path):
    bad = tmp_path / "two.yaml"
    bad.write_text("name: ok-one\nrun: 'true'\n---\nname: bad-two\nresources: {accelerators: A1000:8}\n")
    result = runner.invoke(app, ["submit", str(bad)])
    assert result.exit_code == 1
    assert "two.yaml:5 (document 2)" in result.output and "A100" in result.output
    rows = json.loads(invoke("status", "--json").output)
    assert not any(r["name"] in ("ok-one", "bad-two") for r in rows)


def test_unknown_job_is_a_message_not_a_traceback(cli_service):
    for command in (["explain", "nope-1"], ["logs", "nope-1"], ["status", "nope-1"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1 and "no job" in result.output and "Traceback" not in result.output
