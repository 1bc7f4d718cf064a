"""What `placement up` adds for operators: Prometheus started once per Ray session and stopped by `down`, a
clear line without it, and the Ray dashboard pointed at it."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import ray

from placement import observability, prometheus
from placement.cluster import state_file
from tests.conftest import free_port

needs_prometheus = pytest.mark.skipif(prometheus.binary() is None, reason="prometheus is not installed "
                                      "(Debian: apt-get install prometheus; .ci/run installs it)")


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


@needs_prometheus
def test_up_starts_prometheus_once_on_loopback_and_down_stops_it(ray_cluster, state_home):
    port = free_port()
    line = observability.start_prometheus(port)
    assert line.startswith(f"Prometheus: http://127.0.0.1:{port}"), line
    state = json.loads((state_file().parent / "prometheus.json").read_text())
    assert prometheus.running(state["pid"])
    try:
        config = (state_file().parent / "prometheus" / "prometheus.yml").read_text()
        assert state["session_dir"] in config and "alerts.yml" in config  # this session's discovery file, the rules
        assert observability.start_prometheus(port) == f"Prometheus (already running): http://127.0.0.1:{port}"
        # Every Ray node's metrics port is a target, from Ray's own discovery file.
        nodes = {f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}" for n in ray.nodes() if n["Alive"]}
        deadline = time.monotonic() + 30
        while True:
            targets = json.loads(_get(f"http://127.0.0.1:{port}/api/v1/targets"))["data"]["activeTargets"]
            scraped = {t["labels"]["instance"] for t in targets}
            if nodes <= scraped or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(nodes) == 4 and nodes <= scraped, (nodes, scraped)
    finally:
        assert observability.stop() == "stopped Prometheus"
    assert not prometheus.running(state["pid"])
    assert observability.stop() == ""  # nothing left to stop


def test_without_prometheus_up_says_so_once_and_carries_on(state_home, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no prometheus on PATH
    monkeypatch.setattr(observability, "_said_missing", False)
    first = observability.start_prometheus(free_port())
    assert "Prometheus is not installed" in first and "apt-get install prometheus" in first
    assert observability.start_prometheus(free_port()) == ""
    assert not (state_file().parent / "prometheus.json").exists()


def test_the_ray_dashboard_is_pointed_at_prometheus_and_grafana(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_PROMETHEUS_HOST", raising=False)
    monkeypatch.delenv("RAY_GRAFANA_HOST", raising=False)
    observability.prepare_ray_env("http://grafana.example:3000/", port=9191)
    import os

    assert os.environ["RAY_GRAFANA_HOST"] == "http://grafana.example:3000"
    if prometheus.binary() is not None:
        assert os.environ["RAY_PROMETHEUS_HOST"] == "http://127.0.0.1:9191"
    monkeypatch.setenv("RAY_PROMETHEUS_HOST", "http://prom.example:9090")  # the operator's own wins
    observability.prepare_ray_env(None)
    assert os.environ["RAY_PROMETHEUS_HOST"] == "http://prom.example:9090"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("RAY_PROMETHEUS_HOST")
    observability.prepare_ray_env(None)
    assert "RAY_PROMETHEUS_HOST" not in os.environ  # no Prometheus: nothing to point at


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


@needs_prometheus
def test_placement_up_and_down_on_the_cluster(ray_cluster, state_home, tmp_path, monkeypatch):
    """The CLI as an operator runs it, attached to the test cluster: Prometheus and the page's link, then down."""
    from typer.testing import CliRunner

    from placement.actor import find_service
    from placement.cli import app

    assert find_service() is None, "another test left the default-named service running"
    port = free_port()
    monkeypatch.setattr(prometheus, "DEFAULT_PORT", port)  # not 9090: another Prometheus may run on this machine
    runner = CliRunner()
    try:
        result = runner.invoke(app, ["up", "--address", ray_cluster.address, "--store", str(tmp_path / "p.db"),
                                     "--interval", "5"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"Prometheus: http://127.0.0.1:{port}" in result.output
        [link] = [word for word in result.output.split() if "?token=" in word]
        assert link.startswith("http://127.0.0.1:")
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # keeps the cookie the link sets
        with browser.open(link, timeout=30) as response:  # follows the redirect, sending the cookie
            assert response.status == 200 and b"<h1>Placement engine</h1>" in response.read()
    finally:
        done = runner.invoke(app, ["down"], catch_exceptions=False)
        if not ray.is_initialized():  # `down` disconnects this process; the other tests share its connection
            ray.init(address=ray_cluster.address, namespace="placement-tests")
    assert "stopped the service" in done.output and "stopped Prometheus" in done.output
    assert find_service() is None and not prometheus.ready(f"http://127.0.0.1:{port}")


@needs_prometheus
def test_a_taken_port_is_a_clear_error_not_someone_elses_prometheus(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is taken"):
            prometheus.start(tmp_path, tmp_path / "prom", port)
