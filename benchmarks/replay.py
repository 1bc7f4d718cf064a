"""How fast `placement replay` runs: simulated jobs and rounds per wall second, for one openb week and the
whole openb trace, per policy.

The engine is real (store, policy, work-limited solver, caps, downscaling, reconciler) on the simulated
providers of `placement.replay.world`, on-prem at a third of the window's peak GPU demand. Targets on a
2-core machine: the week (about 1,200 GPU jobs) in at most 20 s per policy, the whole trace (6,203 GPU jobs
with a duration, ~149 days) in at most 3 min. It prints and writes JSON: jobs, rounds (and those that had
jobs to place), wall and CPU seconds (the machine may be shared: CPU seconds say what the replay itself
took), jobs and rounds per wall second, and the run's $ public + private.

    python benchmarks/replay.py [--policies balanced,cost-first] [--week 119d:126d] [--no-full] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from placement.replay.compare import Setup, prepare, run_all  # noqa: E402

OPENB = ROOT / "configs" / "traces" / "alibaba_gpu2023_openb_jobs.csv"
TARGET_S = {"week": 20.0, "full": 180.0}


def measure(window: str | None, policy: str, seed: int) -> dict:
    setup = Setup(OPENB, window=window, policies=[policy], seed=seed)
    prepared = prepare(setup)
    wall, cpu = time.perf_counter(), time.process_time()
    results = run_all(setup, prepared)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    run = results["runs"][0]
    prepared.tmp.cleanup()
    return {"policy": policy, "window": window or "all", "jobs": prepared.info["jobs"],
            "onprem_gpus": prepared.info["onprem_gpus"], "rounds": run["rounds"],
            "rounds_placing": run["rounds_placing"], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "jobs_per_s": round(prepared.info["jobs"] / wall, 1), "rounds_per_s": round(run["rounds"] / wall, 1),
            "round_s_p50": run["round_s"]["p50"], "round_s_p99": run["round_s"]["p99"],
            "usd_cloud": run["usd_cloud"], "finished": run["finished"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default="balanced")
    parser.add_argument("--week", default="119d:126d", help="the one-week window (from the trace's start)")
    parser.add_argument("--no-full", action="store_true", help="skip the whole trace")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replay.json")
    args = parser.parse_args()
    rows = []
    for policy in args.policies.split(","):
        for name, window in [("week", args.week)] + ([] if args.no_full else [("full", None)]):
            row = measure(window, policy, args.seed) | {"case": name, "target_s": TARGET_S[name]}
            rows.append(row)
            print(f"{policy:12} {name:5} {row['jobs']:5} jobs {row['rounds']:6} rounds ({row['rounds_placing']} "
                  f"placing): {row['wall_s']:7.1f} s wall, {row['cpu_s']:7.1f} s CPU, {row['jobs_per_s']:6.1f} "
                  f"jobs/s, {row['rounds_per_s']:6.1f} rounds/s (target <= {row['target_s']:g} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
