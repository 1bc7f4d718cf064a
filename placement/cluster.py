"""Finding, starting and stopping the Ray cluster the service runs on (the CLI's embedded default).

`placement up` attaches to the cluster named by `--address` / `RAY_ADDRESS`, or
to one already running here; failing that it starts a local head with
`ray start --head`. With `--simulate-inventory` it also starts one Ray node per
inventory node, declaring that node's GPUs, accelerator type and name
(`placement.node` label), so the example inventory can be tried on a laptop.
What `up` started is written to a state file, and `down` stops that and
nothing else. Ray's token authentication stays as Ray configures it: the
Ray client and job client read the token the way Ray does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import ray

from clouds.inventory import Inventory
from placement.actor import NAMESPACE

SIMULATED_OBJECT_STORE_BYTES = 100 * 1024 ** 2


def state_file() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "placement" / "up.json"


def read_state() -> dict[str, Any]:
    path = state_file()
    return json.loads(path.read_text()) if path.exists() else {}


def write_state(state: dict[str, Any]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))


def connect(address: str | None) -> Any:
    """Attach this process to the cluster; returns Ray's context (it has `dashboard_url`)."""
    return ray.init(address=address or os.environ.get("RAY_ADDRESS") or "auto", namespace=NAMESPACE,
                    ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")


def try_connect(address: str | None) -> Any | None:
    try:
        return connect(address)
    except (ConnectionError, RuntimeError):
        return None


def _ray_start(args: list[str]) -> None:
    result = subprocess.run(["ray", "start", "--disable-usage-stats", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`ray start {' '.join(args)}` failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def start_local(inventory: Inventory | None) -> str:
    """Start a local head (and simulated inventory nodes); returns the cluster address."""
    _ray_start(["--head", "--include-dashboard=true", "--port=6379"])
    address = ray.init(address="auto", logging_level="ERROR").address_info["gcs_address"]
    ray.shutdown()
    for spec in (inventory.nodes if inventory else []):
        for name in spec.node_names():
            resources = {f"accelerator_type:{spec.gpu}": 1} if spec.gpu else {}
            # Each node on this machine needs its own job-agent port, or its jobs' logs cannot be read.
            _ray_start([f"--address={address}", f"--num-cpus={int(spec.cpus)}", f"--num-gpus={spec.gpus}",
                        f"--dashboard-agent-listen-port={_free_port()}",
                        f"--memory={int(spec.memory_gb * 1024 ** 3)}",
                        f"--object-store-memory={SIMULATED_OBJECT_STORE_BYTES}",
                        f"--resources={json.dumps(resources)}", f"--labels=placement.node={name}"])
    return address


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_local() -> None:
    subprocess.run(["ray", "stop"], capture_output=True, text=True)
