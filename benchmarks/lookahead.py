"""Does looking ahead save money? The real engine on a day of the openb trace, with and without the forecast.

The engine, store, reconciler, policy and solver are real; the providers are simulated on a simulated
clock (`placement.sim`): on-prem nodes drawn from the trace's own cluster until they hold `--onprem-share`
of the day's peak GPU demand, the default inventory's private pools, and the shipped catalogs' public
offers. Every job runs for its TRUE duration; its `expected_hours` is the truth times a seeded log-normal
error (`--estimate-noise`, sigma of the log). The same run is made with `lookahead: true` (the policy as
shipped) and `lookahead: false` (only capacity free now counts: the engine before the forecast). It prints
and writes JSON: private + public $, on-prem GPU allocation (GPU-hours held on-prem over the on-prem GPUs x
the span), p95 wait of high + critical jobs and of all, and how many jobs waited for a forecast start,
got reservations or moved back.

    python benchmarks/lookahead.py [--day 130] [--onprem-share 0.4] [--estimate-noise 0.5] [--seed 0]
                                   [--interval-s 60] [--policy balanced] [--out FILE]

`placement replay` (issue "Policy what-if") measures the same against the baselines; this benchmark
isolates the forecast.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalogs  # noqa: E402
from clouds.inventory import Inventory, load_inventory  # noqa: E402
from clouds.offers import DEFAULT_INVENTORY  # noqa: E402
from placement.model import Tier  # noqa: E402
from placement.replay.traces.openb import load_openb  # noqa: E402
from placement.service import Engine, ServiceConfig  # noqa: E402
from placement.sim import SimulatedCloud, SimulatedNodes  # noqa: E402
from placement.spec import duration_hours  # noqa: E402
from placement.store import JobState  # noqa: E402
from policies import load_policy  # noqa: E402

TRACES = ROOT / "configs" / "traces"
EPOCH = 1_767_571_200.0  # 2026-01-05 00:00 UTC
STARTUP_S = {Tier.ONPREM: 60.0, Tier.PRIVATE: 180.0, Tier.PUBLIC: 480.0}
HIGH = ("high", "critical")


def peak_gpus(jobs) -> float:
    changes = []
    for job in jobs:
        gpus = _gpus(job.spec)
        changes += [(job.submit_s, gpus), (job.submit_s + job.true_hours * 3600, -gpus)]
    level = peak = 0.0
    for _, delta in sorted(changes, key=lambda c: (c[0], c[1])):
        level += delta
        peak = max(peak, level)
    return peak


def _gpus(spec: dict) -> float:
    accelerators = (spec.get("resources") or {}).get("accelerators") or {}
    count = next(iter(accelerators.values()), 0) if isinstance(accelerators, dict) else 0
    return float(count) * int(spec.get("num_nodes") or 1)


def run(day: int, share: float, noise: float, seed: int, interval_s: float, policy_name: str,
        lookahead: bool) -> dict:
    trace = load_openb(TRACES / "alibaba_gpu2023_openb_jobs.csv", TRACES / "alibaba_gpu2023_openb_nodes_raw.csv")
    window = trace.window(day * 86400.0, (day + 1) * 86400.0)
    jobs = window.jobs
    rng = random.Random(seed)
    pool = sorted((n for n in trace.nodes if n.gpus), key=lambda n: n.name)
    rng.shuffle(pool)
    target, chosen, total = share * peak_gpus(jobs), [], 0.0
    for node in pool:
        if total >= target:
            break
        chosen.append(node)
        total += node.gpus * node.count
    default = load_inventory(DEFAULT_INVENTORY)
    inventory = Inventory(site=default.site, nodes=chosen, pools=default.pools)
    noisy = random.Random(seed + 1)

    clock_now = [EPOCH]
    clock = lambda: clock_now[0]  # noqa: E731
    true_hours: dict[str, float] = {}

    def run_seconds(request) -> float | None:
        return true_hours[request.job_id] * 3600.0

    offers = inventory.offers() + load_catalogs([SHIPPED_CATALOG_DIR]).offers
    providers = {
        Tier.ONPREM: SimulatedNodes([o for o in offers if o.tier is Tier.ONPREM], clock,
                                    startup_s=STARTUP_S[Tier.ONPREM], run_seconds=run_seconds),
        Tier.PRIVATE: SimulatedCloud(offers, clock, tier=Tier.PRIVATE, startup_s=STARTUP_S[Tier.PRIVATE],
                                     run_seconds=run_seconds),
        Tier.PUBLIC: SimulatedCloud(offers, clock, tier=Tier.PUBLIC, startup_s=STARTUP_S[Tier.PUBLIC],
                                    run_seconds=run_seconds)}
    with tempfile.TemporaryDirectory() as tmp:
        policy = load_policy(policy_name).model_copy(update={"lookahead": lookahead})
        inventory_path = Path(tmp) / "inventory.yaml"
        from clouds.inventory import inventory_yaml
        inventory_path.write_text(inventory_yaml(chosen, prefix="onprem", site=default.site, pools=default.pools))
        engine = Engine(ServiceConfig(store_path=str(Path(tmp) / "p.db"), round_interval_s=None,
                                      telemetry_interval_s=None, inventory=str(inventory_path),
                                      catalogs=(str(SHIPPED_CATALOG_DIR),)), providers, clock=clock)
        engine.policy = policy
        submitted: dict[str, float] = {}
        priority: dict[str, str] = {}
        max_wait: dict[str, float | None] = {}
        waited, reserved, moved = set(), set(), 0
        pending = list(jobs)
        started = time.perf_counter()
        t = 0.0
        while True:
            arrivals = [j for j in pending if j.submit_s <= t]
            pending = [j for j in pending if j.submit_s > t]
            for job in arrivals:
                spec = json.loads(json.dumps(job.spec))
                spec["placement"]["expected_hours"] = round(job.true_hours * math.exp(noisy.gauss(0, noise)), 6)
                (job_id,) = engine.submit([{"source": job.source, "data": spec}])
                true_hours[job_id] = job.true_hours
                submitted[job_id] = t
                priority[job_id] = job.priority
                wait = spec["placement"].get("max_wait")
                max_wait[job_id] = duration_hours(wait) if wait is not None else None
            report = engine.round()
            for job_id, reason in report.plan.queued:
                if reason.code.value == "WaitingForReservedCapacity":
                    reserved.add(job_id)
                elif reason.code.value == "WaitingForCapacity" and "expected free" in reason.message:
                    waited.add(job_id)
            moved += len(report.plan.migrations)
            active = engine.store.jobs(states=[JobState.PENDING, JobState.LAUNCHING, JobState.RUNNING])
            if not pending and not active:
                break
            t += interval_s
            clock_now[0] = EPOCH + t
        wall = time.perf_counter() - started
        span_h = t / 3600.0
        cost = {Tier.PRIVATE: 0.0, Tier.PUBLIC: 0.0}
        onprem_gpu_h = 0.0
        first_start: dict[str, float] = {}
        for tier, provider in providers.items():
            for work in provider.work.values():
                hours = max((work.ended(clock()) or clock()) - work.launched_at, 0.0) / 3600.0
                if tier is Tier.ONPREM:
                    onprem_gpu_h += hours * work.gpus
                else:
                    cost[tier] += hours * work.rate_per_hour
        for record in engine.store.jobs():
            if record.started_at is not None and record.id in submitted:
                first_start[record.id] = record.started_at - EPOCH
        waits_high = [first_start[j] - submitted[j] for j in first_start if priority[j] in HIGH]
        by_priority = {p: round(_p95([first_start[j] - submitted[j] for j in first_start if priority[j] == p]) / 60, 1)
                       for p in sorted(set(priority.values()))}
        late = sum(1 for j in first_start if max_wait.get(j) is not None
                   and first_start[j] - submitted[j] > max_wait[j] * 3600 + 1e-6)
        waits_all = [first_start[j] - submitted[j] for j in first_start]
        onprem_gpus = sum(n.gpus * n.count for n in chosen)
        return {"lookahead": lookahead, "policy": policy_name, "day": day, "onprem_share": share,
                "estimate_noise": noise, "seed": seed, "jobs": len(jobs), "onprem_gpus": onprem_gpus,
                "private_usd": round(cost[Tier.PRIVATE], 2), "public_usd": round(cost[Tier.PUBLIC], 2),
                "cloud_usd": round(cost[Tier.PRIVATE] + cost[Tier.PUBLIC], 2),
                "onprem_allocation": round(onprem_gpu_h / (onprem_gpus * span_h), 4) if onprem_gpus else None,
                "p95_wait_high_min": round(_p95(waits_high) / 60, 1),
                "p95_wait_all_min": round(_p95(waits_all) / 60, 1), "p95_wait_min_by_priority": by_priority,
                "started_past_max_wait": late,
                "waited_for_forecast": len(waited), "reserved": len(reserved), "migrated": moved,
                "span_h": round(span_h, 2), "wall_s": round(wall, 1)}


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--day", type=int, default=130)  # 305 GPU jobs: the day of the issue
    parser.add_argument("--onprem-share", type=float, default=0.4)
    parser.add_argument("--estimate-noise", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interval-s", type=float, default=60.0)
    parser.add_argument("--policy", default="balanced")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lookahead.json"))
    args = parser.parse_args()
    rows = [run(args.day, args.onprem_share, args.estimate_noise, args.seed, args.interval_s, args.policy, flag)
            for flag in (False, True)]
    for row in rows:
        print(json.dumps(row))
    off, on = rows
    if off["cloud_usd"]:
        print(f"cloud $ with look-ahead / without: {on['cloud_usd'] / off['cloud_usd']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
