"""Start simulated Ray nodes on this machine and exit, leaving them running (`placement up --simulate-inventory`).

    python -m placement.simnodes GCS_ADDRESS NODES_JSON

`ray start --address` cannot join a head that listens on 127.0.0.1 only (Ray
turns a loopback address into the machine's own), so the nodes are started
the way `ray.cluster_utils.Cluster.add_node` starts them, in-process, with
127.0.0.1 as their address, and are not stopped when this process exits.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    address, nodes = sys.argv[1], json.loads(sys.argv[2])
    for node in nodes:
        params = RayParams(gcs_address=address, node_ip_address="127.0.0.1", include_log_monitor=False,
                           node_manager_port=0, min_worker_port=0, max_worker_port=0,
                           # Each node on this machine needs its own job-agent port, or its jobs' logs cannot be read.
                           dashboard_agent_listen_port=_free_port(), **node)
        Node(params, head=False, shutdown_at_exit=False, spawn_reaper=False)


if __name__ == "__main__":
    main()
