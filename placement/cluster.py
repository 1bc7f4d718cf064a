"""Finding, starting and stopping the Ray cluster the service runs on (the CLI's embedded default).

`placement up` attaches to the cluster named by `--address` / `RAY_ADDRESS`, or
to the one Ray's own address file names; failing that it starts a local head
with `ray start --head`. Ray's "auto" address is never used: it attaches to any
Ray process it finds on the machine, someone else's included.

A local head has token authentication on (`placement.auth`) and listens on
127.0.0.1 only (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` makes every Ray server
bind to loopback), unless `--listen ADDRESS` asks for a cluster other machines
can join. With `--simulate-inventory` it also starts one Ray node per
inventory node, declaring that node's GPUs, accelerator type and name
(`placement.node` label), so the example inventory can be tried on a laptop;
those nodes are started in-process by `placement.simnodes`, since `ray start`
cannot join a loopback head.

Everything `up` starts runs in process sessions of its own, recorded in a
state file; `down` (and a failed `up`) end those sessions' processes and
nothing else. `ray stop` is never run: it stops every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import ray

from clouds.inventory import Inventory
from placement.actor import NAMESPACE
from placement.auth import ensure_token

SIMULATED_OBJECT_STORE_BYTES = 100 * 1024 ** 2
LOOPBACK = "127.0.0.1"
PROBE_TIMEOUT_S = 2.0
STOP_GRACE_S = 5.0


class ClusterError(RuntimeError):
    """Ray could not be found, started or trusted; the message is one line saying why."""


def state_file() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "placement" / "up.json"


def read_state() -> dict[str, Any]:
    path = state_file()
    return json.loads(path.read_text() or "{}") if path.exists() else {}


def write_state(state: dict[str, Any]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))


def ray_address_file() -> Path:
    """Where `ray start` records the cluster it started (under RAY_TMPDIR, else the system temp dir)."""
    from ray._common.utils import get_ray_address_file

    return Path(get_ray_address_file(None))


def answers(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether something accepts connections at `host:port` (a GCS that is gone refuses at once)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def find_address(address: str | None) -> tuple[str | None, str | None]:
    """The cluster to attach to and, where Ray's address file names a dead cluster, a note saying so.

    An explicit address that does not answer is an error rather than a minutes-long hang in `ray.init`.
    """
    explicit = address or os.environ.get("RAY_ADDRESS")
    if explicit:
        bare = explicit.removeprefix("ray://")
        if ":" in bare and not answers(bare):
            raise ClusterError(f"no Ray cluster answers at {explicit}")
        return explicit, None
    path = ray_address_file()
    if not path.exists():
        return None, None
    recorded = path.read_text().strip()
    if recorded and answers(recorded):
        return recorded, None
    return None, (f"ignored the stale Ray address file {path}: the cluster it names ({recorded or 'nothing'}) "
                  "does not answer")


def connect(address: str) -> Any:
    """Attach this process to the cluster; returns Ray's context (it has `dashboard_url`)."""
    ensure_token()
    if _is_loopback(address):
        _keep_loopback()
    return ray.init(address=address, namespace=NAMESPACE, ignore_reinit_error=True, log_to_driver=False,
                    logging_level="ERROR")


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host in ("127.0.0.1", "localhost", "::1")


def _keep_loopback() -> None:
    """Ray turns a loopback address into this machine's network address before connecting, unless it runs with
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which it reads once at import; this process imported it already."""
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def try_connect(address: str | None) -> Any | None:
    """Attach to the cluster `address` names (or the recorded one); None where there is none."""
    if ray.is_initialized():  # this process is attached already (ray.init would ignore the address)
        return connect(address or "auto")
    try:
        found, _ = find_address(address)
    except ClusterError:
        return None
    if found is None:
        return None
    try:
        return connect(found)
    except (ConnectionError, RuntimeError):
        return None


def start_local(inventory: Inventory | None, listen: str | None = None) -> dict[str, Any]:
    """Start a local head (and simulated inventory nodes). Returns what `stop_local` needs: the address and the
    process sessions started. On failure everything started so far is stopped again."""
    ensure_token()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    host = listen or LOOPBACK
    if listen is None:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray server binds to 127.0.0.1
    import psutil

    started: dict[str, Any] = {"sessions": [], "boot_time": psutil.boot_time()}
    try:
        args = ["--head", f"--port={_port(host, 6379)}", "--include-dashboard=true",
                f"--dashboard-host={host}", f"--dashboard-port={_port(host, 8265)}",
                f"--ray-client-server-port={_port(host, 10001)}",
                f"--dashboard-agent-listen-port={_port(host, 52365)}"]
        if listen:
            args.append(f"--node-ip-address={listen}")
        started["sessions"].append(_run_in_session(["ray", "start", "--disable-usage-stats", *args], env))
        recorded = ray_address_file().read_text().strip() if ray_address_file().exists() else ""
        if not recorded:
            raise ClusterError(f"`ray start --head` wrote no address to {ray_address_file()}")
        started["address"] = recorded
        nodes = [_simulated_node(spec, name) for spec in (inventory.nodes if inventory else [])
                 for name in spec.node_names()]
        if nodes:
            started["sessions"].append(_run_in_session(
                [sys.executable, "-m", "placement.simnodes", recorded, json.dumps(nodes)], env))
    except BaseException:
        stop_local(started, grace_s=0.0)
        raise
    return started


def join_instructions(address: str, listen: str | None) -> str:
    """How another machine joins: the `ray start` line, with the token the way Ray reads it."""
    if listen is None:
        return ("Ray listens on 127.0.0.1 only; to let other machines join, `placement down` and "
                "`placement up --listen <this host's address>`.")
    from placement.auth import token_path

    return (f"Other nodes join with: RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=<a copy of {token_path()}, mode 0600> "
            f"ray start --address={address}")


def _simulated_node(spec: Any, name: str) -> dict[str, Any]:
    resources = {f"accelerator_type:{spec.gpu}": 1} if spec.gpu else {}
    return {"num_cpus": int(spec.cpus), "num_gpus": spec.gpus, "memory": int(spec.memory_gb * 1024 ** 3),
            "object_store_memory": SIMULATED_OBJECT_STORE_BYTES, "resources": resources,
            "labels": {"placement.node": name}}


def _run_in_session(command: list[str], env: dict[str, str]) -> int:
    """Run a command that daemonises (as `ray start` does) in a new process session; returns the session id.

    Whatever it leaves running stays in that session, so it can be found and stopped later by it alone.
    """
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    output, _ = process.communicate()
    if process.returncode != 0:
        stop_local({"sessions": [process.pid]}, grace_s=0.0)
        tail = [line for line in output.strip().splitlines() if line.strip()][-1:] or ["no output"]
        raise ClusterError(f"`{' '.join(command[:3])}` failed: {tail[0].strip()[:300]}")
    return process.pid


def _port(host: str, preferred: int) -> int:
    """Ray's usual port where it is free, else any free one (another Ray on this machine may hold it)."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise ClusterError(f"no free port on {host}")


def session_processes(sessions: list[int]) -> list[Any]:
    """The processes of these sessions and everything they started (Ray's job drivers start sessions of their own)."""
    import psutil

    wanted = set(sessions)
    found: dict[int, Any] = {}
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) in wanted:
                found[process.pid] = process
                for child in process.children(recursive=True):
                    found[child.pid] = child
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    found.pop(os.getpid(), None)
    return list(found.values())


def stop_local(started: dict[str, Any], grace_s: float = STOP_GRACE_S) -> bool:
    """End the processes of the sessions `start_local` started (SIGTERM, then SIGKILL after `grace_s`); True if
    any were running."""
    import psutil

    if started.get("boot_time", psutil.boot_time()) != psutil.boot_time():
        return False  # recorded before a reboot: those sessions' numbers may name someone else's processes now
    processes = session_processes(started.get("sessions") or [])
    for process in processes:
        try:
            process.send_signal(signal.SIGTERM if grace_s else signal.SIGKILL)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace_s or STOP_GRACE_S)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    address = started.get("address")
    path = ray_address_file()
    if address and path.exists() and path.read_text().strip() == address:
        path.unlink()  # it names a cluster that is gone now
    return bool(processes)

