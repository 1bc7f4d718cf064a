"""Finding, configuring, starting and stopping the Prometheus that `placement up` runs beside Ray.

Prometheus is optional (Debian: `apt-get install prometheus`): without it the service runs as before and
`up` says once how to get charts and alerts. With it, `up` writes a config made from the shipped one
(`configs/dashboards/prometheus.yml`) with the paths of this cluster filled in: the service-discovery
file Ray's dashboard rewrites in the session directory with every node's metrics port (the file itself,
not `/tmp/ray`'s link to it, so another temp dir or a new session needs no edit), and the shipped alerting
rules (`configs/dashboards/alerts.yml`). It listens on 127.0.0.1 only, and keeps its data under the
state directory. What it started is written to its own state file, so `down` stops that and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

DASHBOARDS = Path(__file__).resolve().parent.parent / "configs" / "dashboards"
SHIPPED_CONFIG = DASHBOARDS / "prometheus.yml"
SHIPPED_RULES = DASHBOARDS / "alerts.yml"
DEFAULT_PORT = 9090
INSTALL_HINT = "apt-get install prometheus (Debian/Ubuntu), or a release from prometheus.io on PATH"


@dataclass(frozen=True, slots=True)
class Started:
    url: str
    pid: int
    config: Path
    already_running: bool = False


def binary() -> str | None:
    """The `prometheus` executable on PATH, or None."""
    return shutil.which("prometheus")


def url(port: int = DEFAULT_PORT) -> str:
    return f"http://127.0.0.1:{port}"


def discovery_file(session_dir: str | Path) -> Path:
    """Where Ray 2.60's dashboard writes the nodes' metrics targets for this session."""
    return Path(session_dir) / PROMETHEUS_SERVICE_DISCOVERY_FILE


def write_config(directory: Path, discovery: Path, rules: Path = SHIPPED_RULES) -> Path:
    """The shipped scrape config with this cluster's discovery file and the rules' absolute path."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    for job in config["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(discovery)]
    config["rule_files"] = [str(rules.resolve())]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text("# Written by `placement up` from configs/dashboards/prometheus.yml; rewritten on each start.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return path


def start(session_dir: str | Path, directory: Path, port: int = DEFAULT_PORT, wait_s: float = 30.0) -> Started:
    """Start Prometheus for this Ray session (config and data under `directory`); waits until it is ready.

    Raises FileNotFoundError when Prometheus is not installed, RuntimeError when it exits or is not ready in
    `wait_s` (its log is in `directory / "prometheus.log"`)."""
    executable = binary()
    if executable is None:
        raise FileNotFoundError(f"prometheus is not installed ({INSTALL_HINT})")
    if not port_free(port):  # else the readiness check below would be answered by whatever listens there
        raise RuntimeError(f"127.0.0.1:{port} is taken (another Prometheus?); `placement up` needs it free")
    config = write_config(directory, discovery_file(session_dir))
    log_path = directory / "prometheus.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [executable, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={directory / 'data'}", "--storage.tsdb.retention.time=15d",
             "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while not ready(url(port)):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.terminate()
            tail = log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"prometheus did not become ready on 127.0.0.1:{port}; its log ends:\n{tail}")
        time.sleep(0.2)
    return Started(url(port), process.pid, config)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/-/ready", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def running(pid: int) -> bool:
    """Whether `pid` is a live Prometheus (a pid from an old state file may since belong to anything else)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return Path(command.decode(errors="replace")).name == "prometheus" and state != "Z"


def stop(pid: int, wait_s: float = 10.0) -> bool:
    """Stop the Prometheus with this pid (SIGTERM, then SIGKILL); False if no Prometheus runs under it."""
    if not running(pid):
        _reap(pid)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not running(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (started by an earlier `up`)
        pass


def query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query through the HTTP API; the result vector."""
    from urllib.parse import urlencode

    with urllib.request.urlopen(f"{base_url}/api/v1/query?{urlencode({'query': expr})}", timeout=10) as response:
        answer = json.loads(response.read())
    if answer.get("status") != "success":
        raise RuntimeError(f"prometheus query {expr!r} failed: {answer}")
    return answer["data"]["result"]
