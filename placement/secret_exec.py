"""A launch's entrypoint wrapper: fetch its secret values, export them, exec the job's command.

    python -m placement.secret_exec HANDLE COMMAND [ARGS...]

Secret values are not in the Ray job's runtime_env or metadata (the
dashboard's job API shows both), so the job asks the placement service for
them when it starts, over the cluster's own authenticated connection. Only a
job whose current launch is HANDLE gets an answer. A service that is
restarting is asked again until `FETCH_TIMEOUT_S`. The names (never the values)
go in `PLACEMENT_SECRET_NAMES`, so a multi-node driver can hand them to its
ranks (clouds/gang.py).
"""

from __future__ import annotations

import os
import sys
import time

SECRET_NAMES_ENV = "PLACEMENT_SECRET_NAMES"
FETCH_TIMEOUT_S = 120.0


def fetch(handle: str, timeout_s: float = FETCH_TIMEOUT_S) -> dict[str, str]:
    import ray

    from placement.actor import NAMESPACE, SERVICE_NAME

    ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", namespace=NAMESPACE, log_to_driver=False,
             logging_level="ERROR")
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                service = ray.get_actor(SERVICE_NAME, namespace=NAMESPACE)
                return ray.get(service.launch_secrets.remote(handle), timeout=30)
            except (ValueError, ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
    finally:
        ray.shutdown()


def main() -> None:
    handle, command = sys.argv[1], sys.argv[2:]
    try:
        values = fetch(handle)
    except Exception as exc:  # say why in one line, never with the values
        print(f"placement: could not fetch the secrets of {handle}: {type(exc).__name__}", file=sys.stderr)
        raise SystemExit(1) from None
    env = {**os.environ, **values, SECRET_NAMES_ENV: ",".join(sorted(values))}
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
