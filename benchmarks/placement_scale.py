"""How the placement core scales, and how good its plans are.

Seeded instances of 500, 2,000 and 10,000 pending jobs against 100 / 400 /
1,000 on-prem nodes (drawn from the real Alibaba openb node list; any other
size gets a tenth as many nodes, and past the list's 1,523 nodes the list is
replicated under new names), three private
pools and every public offer of the shipped SkyPilot catalogs. Job shapes,
durations and QoS classes are drawn from the real openb job trace; multi-GPU
and multi-node shapes are mixed in. For each size it prints and writes JSON:
build / solve / repack / total seconds of the MILP round and its CPU seconds
(`total_cpu_s`: what it takes on a quiet machine, measurable on a busy one; the
round is bounded by work by default, so load changes its time, not its plan),
the process's peak
resident memory after it (`peak_rss_mb`; `base_rss_mb` is the peak before the
round, with the snapshot built), its objective, the
priority-ordered greedy's objective and time, and both objectives divided by
the LP-relaxation lower bound of the full per-job model (computed in the same
run, where tractable). `model_bound_ratio` is the class model's own bound over
that bound: the rest of the gap is what packing jobs onto nodes loses, less
what the repacks (`method` counts them) win back in the round's remaining time.

    python benchmarks/placement_scale.py [--sizes 500,2000,10000] [--seeds 7] [--bound-max 10000] [--time-limit S]
                                         [--busy 0.7] [--solver aggregate=false] [--solver work_limit=true]
                                         [--out FILE]

Every (seed, size) instance runs in a fresh process of its own, one after
another, so one slow round's garbage, caches or memory do not weigh on the
next, and the peak memory is that instance's. `--solver KEY=VALUE` overrides
a field of the policy's `solver` settings (repeatable), e.g. `aggregate=false`
for the per-job model.

`--busy 0.7` puts running work with expected ends on 70% of the GPU nodes (half to all of each), so the
round's capacity forecast, waiting and reservations have work to do at scale.

With several seeds (`--seeds 7,8,9,10,11,12,13,14`) it also prints, per size,
the mean and the worst ratio over the seeds: one instance's ratio moves by a
single job's cost (about 0.6% at 500 jobs), so the spread says more than one
seed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import multiprocessing
import random
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clouds.catalog import load_catalog_dir  # noqa: E402
from clouds.inventory import Inventory, NodeSpec, import_alibaba_nodes  # noqa: E402
from placement.model import Demand, Job, Offer, Running, Sharing, Snapshot, Tier  # noqa: E402
from placement.solve import solve_round  # noqa: E402
from placement.solve.bound import lp_lower_bound  # noqa: E402
from policies import load_policy  # noqa: E402
from policies.model import Policy  # noqa: E402

DATA = ROOT / "configs" / "traces"
JOBS_CSV = DATA / "alibaba_gpu2023_openb_jobs.csv"
NODES_CSV = DATA / "alibaba_gpu2023_openb_nodes_raw.csv"
SIZES = {500: 100, 2000: 400, 10000: 1000}
QOS_PRIORITY = {"LS": "high", "Burstable": "normal", "BE": "low", "Guaranteed": "critical"}
PUBLIC_ONLY_GPUS = ["A100", "A100-80GB", "H100", "L4", "A10G"]
TEAMS = ["nlp", "vision", "recsys", "speech", "ads", "search", "research", "platform"]


def private_pools() -> tuple[list[Offer], dict[str, float]]:
    def pool(name: str, gpu: str, per_gpu: float, mem: float) -> Offer:
        return Offer(id=f"private/{name}/{gpu}", tier=Tier.PRIVATE, provider="private", name=name,
                     sharing=Sharing.SHARED, gpu=gpu, gpu_count=8, gpu_memory_gb=mem, vcpus=96, memory_gb=1024,
                     price_per_hour=per_gpu * 8, capacity=None, pool=name, cloud="kubernetes", region=name,
                     gco2_per_kwh=300, gpu_watts=400)
    offers = [pool("private-a100", "A100-80GB", 2.2, 80), pool("private-l4", "L4", 0.45, 24),
              pool("private-v100", "V100", 0.9, 16)]
    return offers, {"private-a100": 128, "private-l4": 64, "private-v100": 64}


def make_jobs(count: int, nodes: list[Offer], rng: random.Random) -> tuple[Job, ...]:
    rows = [r for r in csv.DictReader(JOBS_CSV.open()) if r["duration_s"]]  # a few pods never started
    onprem_gpus = [n.gpu for n in nodes if n.gpu for _ in range(int(n.gpu_count))]
    jobs = []
    for i in range(count):
        row = rng.choice(rows)
        gpus = int(row["num_gpu"])
        milli = int(row["gpu_milli_per_gpu"] or 1000)
        share = milli / 1000 if gpus == 1 and milli < 1000 else float(gpus)
        num_nodes = 1
        roll = rng.random()
        if gpus and roll < 0.04:
            share, num_nodes = 8.0, 2  # multi-node training
        elif gpus and roll < 0.14:
            share = float(rng.choice([2, 4, 8]))
        gpu = None
        if gpus:
            gpu = rng.choice(PUBLIC_ONLY_GPUS) if rng.random() < 0.2 else rng.choice(onprem_gpus)
            if share < 1 and gpu in PUBLIC_ONLY_GPUS:
                share = 1.0
        hours = min(max(float(row["duration_s"]) / 3600.0, 0.1), 72.0)
        priority = QOS_PRIORITY.get(row["qos"], "normal")
        demand = Demand(gpu, share if gpu else 0.0, cpus=min(float(row["cpu_cores"]), 64.0),
                        memory_gb=min(float(row["mem_gib"]), 512.0))
        onprem_only = rng.random() < 0.03
        jobs.append(Job(
            id=f"job-{i:05d}", name=row["job_id"], team=rng.choice(TEAMS), priority=priority, demands=(demand,),
            num_nodes=num_nodes, expected_hours=round(hours, 3),
            max_wait_hours=rng.choice([None, 1.0, 4.0]), spot_ok=priority == "low" and rng.random() < 0.5,
            tiers=frozenset({Tier.ONPREM}) if onprem_only else frozenset(Tier), onprem_only=onprem_only,
            waited_hours=round(rng.uniform(0, 3), 2)))
    return tuple(jobs)


def make_snapshot(jobs_count: int, nodes_count: int, public: list[Offer], seed: int, busy: float = 0.0) -> Snapshot:
    rng = random.Random(seed)
    all_nodes = Inventory(nodes=replicated(import_alibaba_nodes(NODES_CSV), nodes_count)).offers()
    nodes = rng.sample(all_nodes, nodes_count)
    pools, quotas = private_pools()
    jobs = make_jobs(jobs_count, nodes, rng)
    nodes, running = occupy(nodes, busy, random.Random(f"busy:{seed}"))
    return Snapshot(jobs=jobs, offers=tuple(nodes + pools + public), pool_quotas=tuple(quotas.items()),
                    running=tuple(running))


def replicated(specs: list[NodeSpec], count: int) -> list[NodeSpec]:
    """The node list, repeated under new names (`<sn>~1`, `<sn>~2`, ...) until it holds `count` nodes.

    Unchanged when it already does, so the sizes the list covers draw the same instances as before."""
    copies, k = list(specs), 1
    while len(copies) < count:
        copies.extend(spec.model_copy(update={"name": f"{spec.name}~{k}"}) for spec in specs)
        k += 1
    return copies


def occupy(nodes: list[Offer], busy: float, rng: random.Random) -> tuple[list[Offer], list[Running]]:
    """A `busy` share of the GPU nodes holds running work (half to all of its GPUs, CPUs and memory alike) with
    expected ends over the next hours, so the capacity forecast has something to forecast."""
    offers, running = [], []
    for node in nodes:
        if not node.gpu_count or rng.random() >= busy:
            offers.append(node)
            continue
        share = rng.choice([0.5, 0.75, 1.0])
        held = (node.gpu_count * share, node.vcpus * share, node.memory_gb * share)
        offers.append(dataclasses.replace(node, gpu_count=node.gpu_count - held[0], vcpus=node.vcpus - held[1],
                                          memory_gb=node.memory_gb - held[2],
                                          whole=(node.gpu_count, node.vcpus, node.memory_gb)))
        running.append(Running(job_id=f"running-{node.name}", team=rng.choice(TEAMS), tier=Tier.ONPREM,
                               offer_id=node.id, gpus=held[0], rate_per_hour=node.price_per_hour * share,
                               name="train", nodes=(node.name,), per_node=held,
                               elapsed_hours=rng.uniform(0.0, 4.0), expected_hours=rng.uniform(0.5, 12.0)))
    return offers, running


def instance(jobs_count: int, bound_max: int, seed: int, policy: Policy, busy: float = 0.0) -> dict:
    """One seeded instance: the MILP round, the greedy, and (up to `bound_max` jobs) the LP bound."""
    catalog = load_catalog_dir(ROOT / "configs" / "catalogs")
    nodes_count = SIZES.get(jobs_count, jobs_count // 10)
    snapshot = make_snapshot(jobs_count, nodes_count, catalog.offers, seed, busy)
    base_rss = _peak_rss_mb()
    cpu_start = time.process_time()  # the round's CPU seconds: its time on a quiet machine, on a loaded one too
    milp = solve_round(snapshot, policy).plan
    cpu_s = time.process_time() - cpu_start
    peak_rss = _peak_rss_mb()
    greedy = solve_round(snapshot, policy, method="greedy").plan
    stats = milp.stats
    record = {
        "seed": seed, "jobs": jobs_count, "onprem_nodes": nodes_count,
        "running_onprem": len(snapshot.running), "reservations": len(milp.reservations),
        "waiting_for_forecast": sum(1 for _, r in milp.queued if "expected free" in r.message),
        "offers": len(snapshot.offers), "public_offers": len(catalog.offers),
        "classes": stats.num_classes, "variables": stats.num_variables,
        "build_s": round(stats.build_seconds, 3), "solve_s": round(stats.solve_seconds, 3),
        "repack_s": round(stats.repack_seconds, 3), "total_s": round(stats.total_seconds, 3),
        "total_cpu_s": round(cpu_s, 3),
        "base_rss_mb": round(base_rss, 1), "peak_rss_mb": round(peak_rss, 1),
        "status": stats.status, "method": stats.method,
        "objective": round(stats.objective, 2), "placed": len(milp.placements),
        # The class model's own bound: what the plan would cost if packing realised every count it decided.
        "model_bound": round(stats.lower_bound, 2) if stats.lower_bound is not None else None,
        "greedy_objective": round(greedy.stats.objective, 2), "greedy_total_s": round(greedy.stats.total_seconds, 3),
        "greedy_placed": len(greedy.placements),
    }
    if jobs_count <= bound_max:
        start = time.perf_counter()
        bound = lp_lower_bound(snapshot, policy)
        record.update(lower_bound=round(bound, 2), bound_s=round(time.perf_counter() - start, 2),
                      ratio_to_bound=round(stats.objective / bound, 5),
                      model_bound_ratio=(round(stats.lower_bound / bound, 5)
                                         if stats.lower_bound is not None else None),
                      greedy_ratio_to_bound=round(greedy.stats.objective / bound, 5))
    return record


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _instance_in_child(args: tuple) -> dict:
    return instance(*args)


def run(sizes: list[int], seeds: list[int], bound_max: int, policy: Policy, busy: float = 0.0) -> list[dict]:
    """Each (seed, size) in a fresh spawned process, one at a time (a fork would inherit this one's heap)."""
    context = multiprocessing.get_context("spawn")
    results = []
    for seed in seeds:
        for jobs_count in sizes:
            with context.Pool(1, maxtasksperchild=1) as pool:
                record = pool.apply(_instance_in_child, ((jobs_count, bound_max, seed, policy, busy),))
            results.append(record)
            print(json.dumps(record), flush=True)
    return results


def summarise(results: list[dict], budget_s: float) -> list[dict]:
    """Per size, over the seeds: the mean and worst ratios to the bound, the slowest round, and how many rounds
    took longer than 1.2 x the round's budget (the most a round may take)."""
    summary = []
    for jobs_count in sorted({r["jobs"] for r in results}):
        rows = [r for r in results if r["jobs"] == jobs_count]
        record = {"jobs": jobs_count, "seeds": len(rows), "max_total_s": max(r["total_s"] for r in rows),
                  "mean_total_s": round(statistics.mean(r["total_s"] for r in rows), 3),
                  **({"mean_total_cpu_s": round(statistics.mean(r["total_cpu_s"] for r in rows), 3),
                      "max_total_cpu_s": max(r["total_cpu_s"] for r in rows)}
                     if all("total_cpu_s" in r for r in rows) else {}),
                  "mean_build_s": round(statistics.mean(r["build_s"] for r in rows), 3),
                  "max_peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
                  "over_1.2x_budget": sum(1 for r in rows if r["total_s"] > 1.2 * budget_s)}
        for key in ("ratio_to_bound", "model_bound_ratio", "greedy_ratio_to_bound"):
            ratios = [r[key] for r in rows if r.get(key) is not None]
            if ratios:
                record[f"mean_{key}"] = round(statistics.mean(ratios), 5)
                record[f"max_{key}"] = round(max(ratios), 5)
        summary.append(record)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500,2000,10000")
    parser.add_argument("--bound-max", type=int, default=10000, help="largest size whose LP bound is computed")
    parser.add_argument("--seeds", default="7", help="comma-separated instance seeds")
    parser.add_argument("--policy", default="balanced")
    parser.add_argument("--time-limit", type=float, default=None, help="override the policy's solver.time_limit_s")
    parser.add_argument("--busy", type=float, default=0.0,
                        help="share of on-prem GPU nodes holding running work with expected ends (the forecast's input)")
    parser.add_argument("--solver", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the policy's solver settings, e.g. aggregate=false (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "placement_scale.json"))
    args = parser.parse_args()
    policy = load_policy(args.policy)
    if args.time_limit is not None:  # the round's budget: what the integer program and the repacks share
        policy = policy.model_copy(
            update={"solver": policy.solver.model_copy(update={"time_limit_s": args.time_limit})})
    if args.solver:
        policy = policy.model_copy(update={"solver": solver_overrides(policy, args.solver)})
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    results = run(sizes, seeds, args.bound_max, policy, args.busy)
    summary = summarise(results, policy.solver.time_limit_s)  # the round's budget (budget_s is the safety net)
    if len(seeds) > 1:
        for record in summary:
            print(json.dumps(record))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": seeds, "policy": args.policy, "time_limit_s": args.time_limit,
                               "solver": policy.solver.model_dump(),
                               "results": results, "summary": summary}, indent=2))
    print(f"wrote {out}")


def solver_overrides(policy: Policy, pairs: list[str]):
    """The policy's solver settings with `KEY=VALUE` pairs applied, validated like a policy file's."""
    fields = policy.solver.model_dump()
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--solver {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}")
        fields[key] = value
    return type(policy.solver).model_validate(fields)


if __name__ == "__main__":
    main()
