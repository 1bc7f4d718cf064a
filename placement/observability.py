"""What `placement up` adds for operators: Prometheus beside Ray, and the status page's link.

Kept out of `up` itself: `up` calls `prepare_ray_env` before it starts Ray (the Ray dashboard reads
RAY_PROMETHEUS_HOST and RAY_GRAFANA_HOST from the environment of `ray start --head`), `after_up` once the
service answers, and `down` calls `stop`. Each returns the lines to print.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import ray

from placement import prometheus
from placement.cluster import state_file

_said_missing = False


def _state_path() -> Path:
    return state_file().parent / "prometheus.json"


def prepare_ray_env(grafana: str | None = None, port: int = prometheus.DEFAULT_PORT) -> None:
    """Point the Ray dashboard at our Prometheus (and a Grafana) unless the environment already does."""
    if prometheus.binary() is not None:
        os.environ.setdefault("RAY_PROMETHEUS_HOST", prometheus.url(port))
    if grafana:
        os.environ["RAY_GRAFANA_HOST"] = grafana.rstrip("/")


def after_up(service: Any, port: int | None = None) -> list[str]:
    """Start Prometheus for the connected cluster's session (once), and give the status page's link."""
    lines = [start_prometheus(port or prometheus.DEFAULT_PORT)]
    page = ray.get(service.status_page.remote(), timeout=60)
    if page is not None:
        lines.append(f"Status page: {page['link']} (opening it once sets a cookie; the token is the cluster's)")
    return [line for line in lines if line]


def start_prometheus(port: int = prometheus.DEFAULT_PORT) -> str:
    """Start Prometheus for the connected cluster's Ray session unless it runs already; the line to print."""
    global _said_missing
    if prometheus.binary() is None:
        if _said_missing:
            return ""
        _said_missing = True
        return (f"Prometheus is not installed, so no alerts and no charts in the Ray dashboard "
                f"(install: {prometheus.INSTALL_HINT}; then `placement up` again). The status page works without it.")
    session_dir = ray._private.worker.global_worker.node.address_info["session_dir"]
    if not Path(session_dir).is_dir():  # attached to a head on another machine: its discovery file is there
        return (f"Prometheus not started: the Ray head's session directory {session_dir} is not on this machine; "
                "run Prometheus on the head (configs/dashboards/README.md)")
    state = _read()
    if state and prometheus.running(state["pid"]) and state.get("session_dir") == session_dir:
        return f"Prometheus (already running): {state['url']}"
    if state and prometheus.running(state["pid"]):  # a new Ray session: its discovery file moved
        prometheus.stop(state["pid"])
    try:
        started = prometheus.start(session_dir, state_file().parent / "prometheus", port)
    except RuntimeError as exc:
        return f"Prometheus did not start, carrying on without it: {exc}"
    _state_path().write_text(json.dumps({"pid": started.pid, "url": started.url, "session_dir": session_dir}))
    return f"Prometheus: {started.url} (alerts: {started.url}/alerts; config {started.config})"


def stop() -> str:
    """Stop the Prometheus `after_up` started, and nothing else."""
    state = _read()
    _state_path().unlink(missing_ok=True)
    if state and prometheus.stop(state["pid"]):
        return "stopped Prometheus"
    return ""


def _read() -> dict[str, Any]:
    path = _state_path()
    return json.loads(path.read_text()) if path.exists() else {}

