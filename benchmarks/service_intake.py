"""How fast the service takes in work, answers `status`, and how much memory it holds.

Starts a private local Ray, the service actor (rounds off while submitting, so
intake is measured alone), and submits N jobs (default 10,000) in batches
through the actor, each batch durable in SQLite before the call returns.
Prints and writes JSON: jobs accepted per second, latency of `status` for one
job with N jobs stored (median and p95 over 200 calls), the time of one
placement round over the N pending jobs, and the service actor's memory (RSS
and USS) next to an empty actor's in the same run.

    python benchmarks/service_intake.py [--jobs 10000] [--batch 500] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPECS = [  # a mix of shapes, like configs/jobs
    {"name": "train", "resources": {"accelerators": "A100-80GB:8", "cpus": "32+"}, "run": "python train.py",
     "placement": {"team": "vision", "priority": "high", "expected_hours": 12}},
    {"name": "finetune", "resources": {"accelerators": {"A100-80GB": 1, "L4": 1}}, "run": "python ft.py",
     "placement": {"team": "nlp", "expected_hours": 2, "max_wait": "1h"}},
    {"name": "etl", "resources": {"cpus": "16+", "memory": "64+"}, "run": "python etl.py",
     "placement": {"team": "recsys", "priority": "low", "tiers": ["onprem", "private"]}},
    {"name": "sweep", "resources": {"accelerators": "T4:1", "use_spot": True}, "run": "python sweep.py",
     "placement": {"team": "recsys", "priority": "low", "spot_ok": True}},
]


def rss_uss(pid: int) -> tuple[float, float]:
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return info.rss / 2 ** 20, info.uss / 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "service_intake.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="placement-bench-"))
    (tmp / "ray").mkdir()
    os.environ.update({"RAY_TMPDIR": str(tmp), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    import ray

    from placement.actor import PlacementService
    from placement.service import ServiceConfig

    context = ray.init(address="local", num_cpus=2, include_dashboard=True, logging_level="ERROR",
                       _temp_dir=str(tmp))

    @ray.remote(num_cpus=0)
    class Empty:
        def pid(self) -> int:
            return os.getpid()

    empty = Empty.remote()
    config = ServiceConfig(store_path=str(tmp / "placement.db"), round_interval_s=None, catalogs=None,
                           dashboard_url=context.dashboard_url)
    service = PlacementService.options(name="bench-service").remote(config)
    service_pid = ray.get(service.pid.remote())

    documents = [{"source": f"bench.yaml#{i % len(SPECS) + 1}", "data": SPECS[i % len(SPECS)]}
                 for i in range(args.jobs)]
    start = time.perf_counter()
    ids: list[str] = []
    for first in range(0, args.jobs, args.batch):
        ids += ray.get(service.submit.remote(documents[first:first + args.batch], f"batch-{first}"))
    intake_s = time.perf_counter() - start

    latencies = []
    for job_id in ids[:: max(len(ids) // 200, 1)][:200]:
        t = time.perf_counter()
        ray.get(service.status.remote(job_id))
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()

    t = time.perf_counter()
    summary = ray.get(service.run_round.remote())
    round_s = time.perf_counter() - t
    service_rss, service_uss = rss_uss(service_pid)
    empty_rss, empty_uss = rss_uss(ray.get(empty.pid.remote()))
    result = {
        "jobs": len(ids), "batch": args.batch, "intake_s": round(intake_s, 3),
        "jobs_per_s": round(len(ids) / intake_s, 1),
        "status_ms_median": round(statistics.median(latencies), 2),
        "status_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1], 2),
        "round_s": round(round_s, 3), "round": summary,
        "service_rss_mib": round(service_rss, 1), "service_uss_mib": round(service_uss, 1),
        "empty_actor_rss_mib": round(empty_rss, 1), "empty_actor_uss_mib": round(empty_uss, 1),
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    ray.shutdown()


if __name__ == "__main__":
    main()
