"""Against the shared cluster, which runs with token authentication on, as `placement up` starts Ray:
the dashboard refuses a job submission without the token, and a job's secrets reach the job and nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import ray
from ray.job_submission import JobSubmissionClient
from typer.testing import CliRunner

from placement.actor import dashboard_http, find_service, start_service
from placement.auth import token
from placement.cli import app
from placement.service import ServiceConfig

runner = CliRunner()


def _post_job(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"{url}/api/jobs/", method="POST", data=json.dumps(
        {"entrypoint": "echo unauthenticated"}).encode(), headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_job_submission_without_the_token_is_refused(ray_cluster):
    url = dashboard_http(ray_cluster.webui_url)
    assert _post_job(url, {}) == 401
    assert _post_job(url, {"Authorization": "Bearer " + "0" * 64}) == 403
    client = JobSubmissionClient(url)  # Ray's client finds the token the way Ray does
    job = client.submit_job(entrypoint="echo authenticated", entrypoint_num_cpus=0.1)
    deadline = time.time() + 60
    while client.get_job_status(job).is_terminal() is False and time.time() < deadline:
        time.sleep(0.5)
    assert str(client.get_job_status(job)).endswith("SUCCEEDED") and "authenticated" in client.get_job_logs(job)


@pytest.fixture(scope="module")
def secret_service(ray_cluster, tmp_path_factory):
    """The service under its default name (the name a launch's entrypoint asks for its secrets)."""
    assert find_service() is None, "another test left the default-named service running"
    state_home = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    store = tmp_path_factory.mktemp("secret-store") / "p.db"
    handle = start_service(ServiceConfig(store_path=str(store), round_interval_s=1.0, catalogs=(),
                                         dashboard_url=ray_cluster.webui_url))
    ray.get(handle.status.remote("-"), timeout=60)
    yield store
    ray.kill(handle, no_restart=True)
    if state_home is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = state_home


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_secrets_reach_the_job_and_no_readable_surface(ray_cluster, secret_service, tmp_path):
    """A secret set three ways: under `secrets:`, as an env named like a token, as an env marked `--secret`."""
    values = {name: f"s3cr3t-{secrets.token_hex(12)}" for name in ("API_CRED", "HF_TOKEN", "MARKED")}
    plain = f"plain-{secrets.token_hex(6)}"
    script = ("import hashlib, os; print(' '.join(n + '=' + hashlib.sha256(os.environ[n].encode()).hexdigest() "
              "for n in ('API_CRED', 'HF_TOKEN', 'MARKED')))")
    spec = tmp_path / "secret.yaml"
    spec.write_text(f"name: secret-echo\nresources: {{cpus: 1}}\nrun: python -c \"{script}\"\n"
                    f"envs: {{HF_TOKEN: {values['HF_TOKEN']}, MARKED: {values['MARKED']}, PLAIN_VALUE: {plain}}}\n"
                    f"secrets: {{API_CRED: {values['API_CRED']}}}\n"
                    "placement: {team: platform, tiers: [onprem], expected_hours: 0.01}\n")
    submitted = runner.invoke(app, ["submit", str(spec), "--secret", "MARKED"], catch_exceptions=False)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.split()[0]
    deadline = time.time() + 90
    while True:
        [row] = json.loads(runner.invoke(app, ["status", job_id, "--json"]).output)
        if row["state"] in ("succeeded", "failed") or time.time() > deadline:
            break
        time.sleep(1)
    output = runner.invoke(app, ["logs", job_id]).output
    assert row["state"] == "succeeded", (row, output)
    for name, value in values.items():  # the job saw each value
        assert f"{name}={_sha(value)}" in output

    client = JobSubmissionClient(dashboard_http(ray_cluster.webui_url))
    info = client.get_job_info(_handle(client, job_id))
    listed = client.list_jobs()
    request = urllib.request.Request(f"{dashboard_http(ray_cluster.webui_url)}/api/jobs/",
                                     headers={"Authorization": f"Bearer {token()}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        rest = response.read()
    surfaces = {"get_job_info": repr(info).encode(), "list_jobs": repr(listed).encode(), "REST /api/jobs/": rest,
                "store": b"".join(p.read_bytes() for p in secret_service.parent.iterdir()
                                  if p.name.startswith("p.db") and not p.name.endswith(".key")),
                "Ray session logs": _tree_bytes(Path(os.environ["RAY_TMPDIR"]))}
    assert plain.encode() in surfaces["get_job_info"] and plain.encode() in surfaces["REST /api/jobs/"]
    # The surfaces hold what they should (the checks below could find a value): the plain env, the spec, the output.
    assert b"secret-echo" in surfaces["store"] and _sha(values["HF_TOKEN"]).encode() in surfaces["Ray session logs"]
    for surface, data in surfaces.items():
        for name, value in values.items():
            assert value.encode() not in data, f"{name} is readable in {surface}"


def _handle(client: JobSubmissionClient, job_id: str) -> str:
    return next(j.submission_id for j in client.list_jobs() if (j.metadata or {}).get("job_id") == job_id)


def _tree_bytes(root: Path) -> bytes:
    """Every regular file under Ray's temp dir (session logs, runtime-env agent logs, GCS state)."""
    chunks = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 * 1024 ** 2:
            try:
                chunks.append(path.read_bytes())
            except OSError:
                continue
    return b"\n".join(chunks)
