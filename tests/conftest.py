"""One simulated Ray cluster for the whole test run (starting Ray costs seconds; see DESIGN.md).

Nodes are declared with GPUs, an accelerator type and a `placement.node` label,
the way an operator would start them with `ray start --num-gpus ... --labels ...`.
Everything is kept on 127.0.0.1 and in a private temp dir, so the tests never
touch another cluster on the machine, and token authentication is on, as
`placement up` runs it: the token is generated in the fixture's temp dir (mode
0600) and every Ray process, the tests' own included, finds it through
RAY_AUTH_TOKEN_PATH.

SkyPilot is kept hermetic the same way, before anything imports it: its runtime
directory (state, catalogs) is a temp dir holding the shipped catalogs, and
`SKYPILOT_DISABLE_LOCAL_API_SERVER=1` makes any SDK call that escaped a test
double fail at once instead of starting an API server.
"""

from __future__ import annotations
import hypothesis_profiles  # noqa: F401  (registers the Hypothesis profiles and loads `ci`)

import os
import socket
import tempfile
from pathlib import Path

import pytest

from clouds.sky_catalog import install_catalogs

SKY_RUNTIME = Path(tempfile.mkdtemp(prefix="placement-sky-"))
os.environ.update({"SKY_RUNTIME_DIR": str(SKY_RUNTIME), "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1"})
install_catalogs()

# Memory is given, not detected: Ray would give each node a different share of this machine's memory, and
# the two A100 nodes would no longer be identical (a two-node job needs two nodes of one shape).
SIMULATED_NODES = {
    "a100-0": {"num_cpus": 8, "num_gpus": 8, "memory": 32 * 1024 ** 3, "resources": {"accelerator_type:A100-80GB": 1}},
    "a100-1": {"num_cpus": 8, "num_gpus": 8, "memory": 32 * 1024 ** 3, "resources": {"accelerator_type:A100-80GB": 1}},
    "t4-0": {"num_cpus": 4, "num_gpus": 4, "memory": 16 * 1024 ** 3, "resources": {"accelerator_type:T4": 1}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """A head (no GPUs, hosts the service) and three GPU nodes; yields the `ray.cluster_utils.Cluster`."""
    tmp = Path(tempfile.mkdtemp(prefix="placement-ray-"))
    (tmp / "ray").mkdir()
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp / "auth_token"),
                       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TMPDIR": str(tmp),
                       "RAY_USAGE_STATS_ENABLED": "0"})
    os.environ.pop("RAY_AUTH_TOKEN", None)
    from placement.auth import ensure_token

    ensure_token()
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 4, "include_dashboard": True, "dashboard_port": 0, "temp_dir": str(tmp),
        # The job agent's own port: Ray's default (52365) may be taken by another Ray on the machine.
        "dashboard_agent_listen_port": free_port(),
        # Metrics every second. (Shorter node health checks would notice dead nodes sooner, but with them
        # the dashboard agent never registers and job submission fails with "No available agent".)
        "_system_config": {"metrics_report_interval_ms": 1000}})
    cluster.simulated = {}
    for name, args in SIMULATED_NODES.items():
        cluster.simulated[name] = cluster.add_node(labels={"placement.node": name}, **args)
    cluster.wait_for_nodes()
    # A job's supervisor finds its cluster through the address file in the head's temp dir; Cluster writes it one
    # level down. Without it the supervisor takes any Ray process on the machine for its own (Ray's legacy "auto").
    (tmp / "ray_current_cluster").write_text(cluster.address)
    ray.init(address=cluster.address, namespace="placement-tests")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
