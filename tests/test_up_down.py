"""`placement up` / `down` as a user runs them: each test starts a Ray of its own, in a fresh HOME and temp dir.

These never touch the shared test cluster or any other Ray on the machine: the
commands run in subprocesses whose environment names only their own temp dirs
(no RAY_ADDRESS), `up` never uses Ray's "auto" address, and what they started is
found by the temp dir in its processes' environment.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home():
    """HOME, XDG_STATE_HOME and RAY_TMPDIR of one user (short paths: Ray's socket paths must stay under 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="pl-up-"))
    for part in ("home", "state", "ray"):
        (root / part).mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "XDG_"))}
    env.update({"HOME": str(root / "home"), "XDG_STATE_HOME": str(root / "state"), "RAY_TMPDIR": str(root / "ray"),
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "250"})
    yield root, env
    for process in _processes_of(root):  # a failing test must not leave its Ray behind
        process.kill()
    shutil.rmtree(root, ignore_errors=True)


def _placement(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "placement", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _processes_of(root: Path) -> list[psutil.Process]:
    """Processes started for this user: Ray's, which all inherit its RAY_TMPDIR."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("RAY_TMPDIR") == str(root / "ray") and process.pid != os.getpid():
                found.append(process)
        except psutil.Error:
            continue
    return found


def _gone(root: Path, timeout_s: float = 10.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while (left := _processes_of(root)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_up_starts_an_authenticated_loopback_ray_refuses_another_store_and_down_stops_it(home):
    """With a simulated inventory node: it joins the loopback head too."""
    root, env = home
    store = root / "state" / "one.db"
    (root / "ray" / "ray").mkdir()
    stale = root / "ray" / "ray" / "ray_current_cluster"
    stale.write_text("127.0.0.1:1")  # left by a cluster that is gone
    inventory = root / "inventory.yaml"  # one simulated node besides the head
    inventory.write_text("nodes: [{name: t4, gpu: T4, gpus: 1, cpus: 1, memory_gb: 2}]\n")
    started = _placement(env, "up", "--simulate-inventory", "--inventory", str(inventory), "--store", str(store),
                         "--interval", "30")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"ignored the stale Ray address file {stale}" in started.stderr
    assert "started a local Ray; started the service" in started.stdout and "127.0.0.1 only" in started.stdout
    token = root / "home" / ".ray" / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text()) == 64

    processes = _processes_of(root)
    assert any(p.name() == "gcs_server" for p in processes)
    assert sum(p.name() == "raylet" for p in processes) == 2  # the head and the simulated node
    listening = {(c.laddr.ip, c.laddr.port) for p in processes for c in _listening(p)}
    assert listening and {ip.removeprefix("::ffff:") for ip, _ in listening} == {"127.0.0.1"}, listening
    dashboard = started.stdout.split("Dashboard: ")[1].split()[0]
    request = urllib.request.Request(f"{dashboard}/api/jobs/", method="POST", data=b'{"entrypoint": "id"}',
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401

    other = _placement(env, "up", "--store", str(root / "state" / "two.db"))
    assert other.returncode == 1 and f"already running with the store {store}" in other.stderr
    assert "Traceback" not in other.stderr and len(other.stderr.strip().splitlines()) == 1, other.stderr
    again = _placement(env, "status")  # the CLI attaches with the token
    assert again.returncode == 0 and "0 jobs" in again.stdout, again.stdout + again.stderr

    stopped = _placement(env, "down")
    assert stopped.returncode == 0 and "stopped the local Ray" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not _gone(root)


@pytest.mark.parametrize("case", ["corrupt", "unwritable"])
def test_up_with_a_bad_store_names_it_and_starts_nothing(home, case):
    """The store is checked before Ray is started (the local service would open it here)."""
    root, env = home
    if case == "corrupt":
        store = root / "state" / "bad.db"
        store.write_bytes(b"not a database at all " * 200)
        message = f"the store {store} is not a SQLite database"
    else:
        blocker = root / "state" / "a-file"
        blocker.write_text("")
        store = blocker / "p.db"
        message = f"cannot write the store {store}: "
    failed = _placement(env, "up", "--store", str(store))
    assert failed.returncode == 1 and message in failed.stderr, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert not _gone(root) and not (root / "state" / "placement" / "up.json").exists()


def test_a_service_that_cannot_start_is_named_in_one_line_and_its_ray_stopped(home):
    """Ray is started, the service's own start fails (its inventory is invalid): `up` stops what it started."""
    root, env = home
    inventory = root / "inventory.yaml"
    inventory.write_text("nodes: [{name: x, gpus: lots}]\n")
    failed = _placement(env, "up", "--inventory", str(inventory), "--store", str(root / "state" / "p.db"))
    assert failed.returncode == 1 and f"{inventory}:1: nodes[0].gpus: wrong type" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert not _gone(root)
    assert json.loads((root / "state" / "placement" / "up.json").read_text() or "{}") == {}


def test_a_stale_address_file_is_reported_not_waited_on(home):
    """Ray's address file names a cluster that is gone: `status` answers at once instead of hanging."""
    root, env = home
    (root / "ray" / "ray").mkdir()
    (root / "ray" / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
    begun = time.monotonic()
    answer = _placement(env, "status", timeout=60)
    assert answer.returncode == 3 and "no Ray cluster is running here" in answer.stderr, answer.stderr
    assert time.monotonic() - begun < 30


def _listening(process: psutil.Process) -> list:
    try:
        return [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []
