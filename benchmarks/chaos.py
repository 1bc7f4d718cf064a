"""Chaos: SIGKILL the service actor's process N times at random moments while jobs are being submitted.

Starts a private local Ray (token authentication on, 127.0.0.1 only, its own
temp dir), the service actor as `placement up` starts it (detached, restarted
by Ray after each kill), and three threads: one submits a short job every
`--submit-every` seconds (retrying the same batch token until it is
acknowledged, as the CLI's idempotent submit allows), one asks `status` every
0.2 s, and one kills the service's process at a random moment 0.5 to
`--max-gap` seconds after it is back. Afterwards it waits for every
acknowledged job to finish, then prints and writes JSON:

- acknowledged: jobs whose submit returned an id;
- lost: acknowledged jobs the store does not know;
- launched_twice: jobs with more than one Ray job (launch handles are unique per attempt; a second
  attempt would mean a launch was taken for lost);
- stuck: acknowledged jobs not finished `--settle` seconds after the last kill;
- max_status_gap_s: the longest time `status` did not answer (between two answers);
- restart_s (median, max): from a kill until the service answered again.

Targets: 0 lost, 0 launched twice, 0 stuck, max_status_gap_s <= 15.

    python benchmarks/chaos.py [--kills 100] [--max-gap 4] [--submit-every 2] [--settle 240] [--seed 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

JOB = {"name": "chaos", "resources": {"cpus": 0.5}, "run": "sleep 1",
       "placement": {"team": "platform", "tiers": ["onprem"], "expected_hours": 0.01}}
TERMINAL = {"succeeded", "failed", "cancelled"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--max-gap", type=float, default=4.0, help="most seconds between a restart and the next kill")
    parser.add_argument("--submit-every", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=5.0, help="the service's round interval")
    parser.add_argument("--settle", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "chaos.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="placement-chaos-"))
    (tmp / "ray").mkdir()
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ.update({"RAY_TMPDIR": str(tmp), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                       "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    from placement.actor import NAMESPACE, start_service
    from placement.service import ServiceConfig

    context = ray.init(address="local", num_cpus=4, include_dashboard=True, logging_level="ERROR",
                       namespace=NAMESPACE, _temp_dir=str(tmp), log_to_driver=False)
    config = ServiceConfig(store_path=str(tmp / "placement.db"), round_interval_s=args.interval, catalogs=(),
                           telemetry_interval_s=None, dashboard_url=context.dashboard_url)
    service = start_service(config)
    ray.get(service.status.remote("-"), timeout=120)

    rng = random.Random(args.seed)
    stop_submitting, stop_probing = threading.Event(), threading.Event()
    acknowledged: list[str] = []
    answers: list[float] = []
    restarts: list[float] = []

    def submit() -> None:
        while not stop_submitting.wait(args.submit_every):
            batch = uuid.uuid4().hex
            while True:  # the same batch until acknowledged: a retried submit is stored once
                try:
                    acknowledged.extend(ray.get(service.submit.remote(
                        [{"source": "chaos.yaml#1", "data": JOB}], batch), timeout=30))
                    break
                except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
                    continue

    def probe() -> None:
        while not stop_probing.is_set():
            try:
                ray.get(service.status.remote("-"), timeout=60)
                answers.append(time.monotonic())
            except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
                pass
            time.sleep(0.2)

    def answering_pid(timeout_s: float = 120.0) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return ray.get(service.pid.remote(), timeout=10)
            except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
                if time.monotonic() > deadline:
                    raise

    # Ray's driver prints every retried call of a killed actor to stdout: keep the figures readable.
    quiet = contextlib.redirect_stdout(io.StringIO())
    quiet.__enter__()
    threads = [threading.Thread(target=submit, daemon=True), threading.Thread(target=probe, daemon=True)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    for kill in range(args.kills):
        pid = answering_pid()
        time.sleep(rng.uniform(0.5, args.max_gap))
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        answering_pid()
        restarts.append(time.monotonic() - killed_at)
        if (kill + 1) % 10 == 0:
            print(f"{kill + 1} kills, {len(acknowledged)} jobs acknowledged, "
                  f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    stop_submitting.set()
    threads[0].join()
    last_kill = time.monotonic()

    states: dict[str, str] = {}
    while time.monotonic() - last_kill < args.settle:
        rows = {r["id"]: r["state"] for r in ray.get(service.status.remote(), timeout=60)}
        states = {job_id: rows.get(job_id, "lost") for job_id in acknowledged}
        if all(s in TERMINAL or s == "lost" for s in states.values()):
            break
        time.sleep(2)
    stop_probing.set()
    threads[1].join()

    from ray.job_submission import JobSubmissionClient

    from placement.actor import dashboard_http

    ray_jobs = Counter((j.metadata or {}).get("job_id") for j in
                       JobSubmissionClient(dashboard_http(context.dashboard_url)).list_jobs())
    gaps = [b - a for a, b in zip(answers, answers[1:])]
    result = {
        "kills": args.kills, "seconds": round(last_kill - started, 1), "acknowledged": len(acknowledged),
        "lost": sum(s == "lost" for s in states.values()),
        "launched_twice": sum(ray_jobs[job_id] > 1 for job_id in acknowledged),
        "stuck": sum(s not in TERMINAL and s != "lost" for s in states.values()),
        "failed": sum(s == "failed" for s in states.values()),
        "max_status_gap_s": round(max(gaps, default=0.0), 2),
        "restart_s_median": round(statistics.median(restarts), 2) if restarts else None,
        "restart_s_max": round(max(restarts), 2) if restarts else None,
        "settle_s": round(time.monotonic() - last_kill, 1),
        "targets": {"lost": 0, "launched_twice": 0, "stuck": 0, "max_status_gap_s": 15},
    }
    ray.kill(service, no_restart=True)
    ray.shutdown()
    quiet.__exit__(None, None, None)
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
