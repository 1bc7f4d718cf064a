"""Surge caps under a 20x demand spike: does spend stay under the cap, and does high-priority work keep running?

The engine is real (store on disk in a temp dir, the `balanced` policy with a global and per-team
caps, the placement solver and the downscaling program); only the public cloud is simulated
(`placement.sim.SimulatedCloud`, selling the shipped catalog's GPU offers in AWS us-east-1 and GCP
us-central1) and the
clock is injected: one round per control interval of simulated seconds. The run goes through
(a) a 20x demand spike on inference services built from the real Alibaba 2025 DLRM inference trace
    (its GPU "HN" instances: per-app shape and replica count), ramped up over a few intervals, with the
    load signal fed through `engine.report_load`;
(b) a burst of batch jobs with GPU counts and durations from the real Alibaba openb job trace and mixed
    priorities (low / normal / high / critical), some spot-tolerant;
(c) mid-run, a price increase of the offer most running work sits on, then the global cap lowered.
It prints and writes JSON: the caps, the peak spend rate, how long spend stayed above a cap after a
round (simulated seconds and intervals; target at most one interval), the share of high-priority
(high + critical) work that kept running, downscale actions by kind, and the same run with caps off.

    python benchmarks/surge.py [--seed 0] [--intervals 40] [--interval-s 60] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalogs  # noqa: E402
from placement.model import Offer, Tier  # noqa: E402
from placement.service import Engine, ServiceConfig  # noqa: E402
from placement.sim import SimulatedCloud  # noqa: E402
from placement.store import ACTIVE, JobState  # noqa: E402
from policies import load_policy  # noqa: E402
from policies.model import Caps, CapSpec  # noqa: E402

DATA = ROOT / "configs" / "traces"
DLRM_CSV = DATA / "alibaba_gpu2025_dlrm_gpu_instances.csv"
JOBS_CSV = DATA / "alibaba_gpu2023_openb_jobs.csv"
START = 1_767_571_200.0  # 2026-01-05 00:00 UTC: the run stays inside one UTC day
HIGH = ("high", "critical")
SERVICE_TEAMS = [("recsys", "critical"), ("ads", "high"), ("search", "normal"), ("feeds", "low")]
BATCH_TEAMS = ["research", "recsys", "ads"]
PRIORITY_MIX = {"low": 0.35, "normal": 0.30, "high": 0.25, "critical": 0.10}
GPU_CHOICES = ("A10G", "L4", "T4")  # 1, 2, 4 and 8 of them per machine are sold in the two regions
REGIONS = {("aws", "us-east-1"), ("gcp", "us-central1")}
TARGET_QPS = 10.0
BASE_REPLICAS = 3
SPIKE = 20.0


@dataclass(frozen=True)
class Scenario:
    intervals: int
    interval_s: float
    burst_at: int
    spike_from: int
    ramp: int
    spike_until: int
    price_at: int
    price_factor: float
    cap_cut_at: int
    cap_cut: float
    global_cap: float
    team_caps: dict[str, float]

    @classmethod
    def default(cls, intervals: int, interval_s: float, global_cap: float) -> Scenario:
        k = intervals / 40  # the timeline below is laid out for 40 intervals
        return cls(intervals=intervals, interval_s=interval_s, burst_at=round(3 * k), spike_from=round(8 * k),
                   ramp=4, spike_until=round(30 * k), price_at=round(18 * k), price_factor=1.6,
                   cap_cut_at=round(24 * k), cap_cut=0.8, global_cap=global_cap,
                   team_caps={"recsys": 0.55 * global_cap, "ads": 0.4 * global_cap, "search": 0.2 * global_cap,
                              "feeds": 0.1 * global_cap, "research": 0.3 * global_cap})

    def load_factor(self, k: int) -> float:
        """Demand multiple at interval k: 1, a geometric ramp to 20x, held, then back to 1."""
        if k < self.spike_from or k >= self.spike_until:
            return 1.0
        step = min(k - self.spike_from + 1, self.ramp)
        return SPIKE ** (step / self.ramp)

    def caps(self, cut: bool) -> Caps:
        scale = self.cap_cut if cut else 1.0
        return Caps(global_=CapSpec(usd_per_hour=round(self.global_cap * scale, 2)),
                    teams={t: CapSpec(usd_per_hour=round(v, 2)) for t, v in self.team_caps.items()})


# --- workload from the real traces ------------------------------------------------------------------------

def dlrm_services() -> list[dict]:
    """One service per large DLRM app: the replica shape and the maximum replicas of its GPU instances."""
    by_app: dict[str, list[dict]] = {}
    for row in csv.DictReader(DLRM_CSV.open()):
        if row["role"] == "HN" and row["gpu_request"] == "1":
            by_app.setdefault(row["app_name"], []).append(row)
    apps = sorted(by_app, key=lambda a: (-len(by_app[a]), a))[:len(SERVICE_TEAMS)]
    specs = []
    for app, (team, priority) in zip(apps, SERVICE_TEAMS):
        rows = by_app[app]
        cpus = _median(float(r["cpu_request"]) for r in rows)
        memory = _median(float(r["memory_request"]) for r in rows)
        specs.append({
            "name": f"dlrm-{app.replace('_', '-')}",
            "service": {"readiness_probe": {"path": "/health"},
                        "replica_policy": {"min_replicas": 2, "max_replicas": min(len(rows), 60),
                                           "target_qps_per_replica": TARGET_QPS}},
            "resources": {"accelerators": {g: 1 for g in GPU_CHOICES}, "cpus": f"{cpus:g}+",
                          "memory": f"{memory:g}+"},
            "run": "python serve_dlrm.py",
            "placement": {"team": team, "priority": priority, "tiers": ["public"], "expected_hours": 720}})
    return specs


def batch_burst(count: int, rng: random.Random) -> list[dict]:
    """Batch jobs with GPU counts and durations drawn from openb (multi-GPU shapes drawn as often as 1-GPU)."""
    rows = [r for r in csv.DictReader(JOBS_CSV.open()) if r["duration_s"] and int(r["num_gpu"] or 0) > 0]
    single = [r for r in rows if r["num_gpu"] == "1"]
    multi = [r for r in rows if r["num_gpu"] != "1"]
    specs = []
    for i in range(count):
        row = rng.choice(multi if rng.random() < 0.5 else single)
        gpus = int(row["num_gpu"])
        hours = round(min(max(float(row["duration_s"]) / 3600.0, 0.25), 6.0), 3)
        priority = rng.choices(list(PRIORITY_MIX), weights=list(PRIORITY_MIX.values()))[0]
        specs.append({"name": f"burst-{i}", "run": "python train.py",
                      "resources": {"accelerators": {g: gpus for g in GPU_CHOICES}},
                      "placement": {"team": rng.choice(BATCH_TEAMS), "priority": priority, "tiers": ["public"],
                                    "expected_hours": hours, "spot_ok": rng.random() < 0.3}})
    return specs


def _median(values) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


# --- one run ------------------------------------------------------------------------------------------------

@dataclass
class Trace:
    rounds: list[dict] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    ran: dict[str, tuple[str, int]] = field(default_factory=dict)  # job id -> (priority, first interval running)
    stopped_by_downscale: dict[str, int] = field(default_factory=dict)  # job id -> interval of the action
    relaunched_same_round: list[str] = field(default_factory=list)


def run(scenario: Scenario, capped: bool, offers: list[Offer], seed: int) -> dict:
    rng = random.Random(seed)
    services, burst = dlrm_services(), batch_burst(40, rng)
    now = [START]
    with tempfile.TemporaryDirectory() as tmp:
        config = ServiceConfig(store_path=str(Path(tmp) / "surge.db"), round_interval_s=None,
                               catalogs=(str(SHIPPED_CATALOG_DIR),))
        cloud = SimulatedCloud(offers, lambda: now[0], name="sim-public", startup_s=scenario.interval_s)
        engine = Engine(config, {Tier.PUBLIC: cloud}, clock=lambda: now[0])
        base = load_policy("balanced")
        engine.policy = base.model_copy(update={"caps": scenario.caps(cut=False)}) if capped else base
        engine.submit([{"source": f"{s['name']}.yaml#1", "data": s} for s in services])
        service_ids = [s.id for s in engine.store.services()]
        trace, wall = Trace(), time.perf_counter()
        for k in range(scenario.intervals):
            if k == scenario.burst_at:
                engine.submit([{"source": f"burst.yaml#{i + 1}", "data": s} for i, s in enumerate(burst)])
            if k == scenario.price_at:
                _raise_price(engine, cloud, scenario.price_factor)
            if k == scenario.cap_cut_at and capped:
                engine.policy = base.model_copy(update={"caps": scenario.caps(cut=True)})
            for sid in service_ids:
                engine.report_load(sid, BASE_REPLICAS * TARGET_QPS * scenario.load_factor(k))
            report = engine.round()
            _record(trace, engine, report, k, report.committed_rate_by_scope)  # committed $/h before acting
            now[0] += scenario.interval_s
        engine.reconciler.observe()  # accrue the last interval
        spent = sum(row[-1] for row in engine.store.spend_rows(0.0))
        return _summary(scenario, trace, spent, time.perf_counter() - wall, capped)


def _raise_price(engine: Engine, cloud: SimulatedCloud, factor: float) -> None:
    """The offer most running work sits on gets dearer: in the cloud's listing and in what the caps charge."""
    used = Counter(r.offer_id for r in engine.store.jobs(states=ACTIVE) if r.offer_id)
    if not used:
        return
    offer_id = used.most_common(1)[0][0]
    offer = cloud.set_price(offer_id, round(engine.caps.offers[offer_id].price_per_hour * factor, 4))
    engine.caps.offers[offer_id] = offer  # the same dict the reconciler launches from


def _record(trace: Trace, engine: Engine, report, k: int, committed_before: dict[str, float]) -> None:
    for record in engine.store.jobs(states=[JobState.RUNNING]):
        trace.ran.setdefault(record.id, (record.priority, k))
    by_priority: Counter[str] = Counter()
    for record in engine.store.jobs(states=ACTIVE):
        if record.tier is not Tier.ONPREM:
            by_priority[record.priority] += record.rate_per_hour or 0.0
    for action in report.downscaled:
        trace.actions.append({"interval": k, "job": action.job_id, "kind": action.kind.value, "team": action.team,
                              "priority": engine.store.job(action.job_id).priority,
                              "saves_usd_per_hour": round(action.saves_per_hour, 4)})
        trace.stopped_by_downscale.setdefault(action.job_id, k)
        if engine.store.job(action.job_id).state in ACTIVE:  # placed again in the round that stopped it
            trace.relaunched_same_round.append(action.job_id)
    trace.rounds.append({
        "interval": k, "at_s": report.at - START, "round_s": round(report.seconds, 3),
        "spend": {s: round(v, 4) for s, v in report.spend_rate_by_scope.items()},
        "limit": {s: round(v, 4) for s, v in report.limit_by_scope.items()},
        "committed_before_downscale": {s: round(v, 4) for s, v in committed_before.items()},
        "spend_by_priority": {p: round(v, 4) for p, v in sorted(by_priority.items())},
        "downscaled": len(report.downscaled), "jobs_by_state": report.jobs_by_state})


def _summary(scenario: Scenario, trace: Trace, spent: float, wall_s: float, capped: bool) -> dict:
    tol = 1e-6
    longest: dict[str, int] = {}
    streak: dict[str, int] = {}
    for r in trace.rounds:
        for scope, limit in r["limit"].items():
            over = r["spend"].get(scope, 0.0) > limit + tol
            streak[scope] = streak.get(scope, 0) + 1 if over else 0
            longest[scope] = max(longest.get(scope, 0), streak[scope])
    over_before = sorted({(r["interval"], s) for r in trace.rounds for s, lim in r["limit"].items()
                          if r["committed_before_downscale"].get(s, 0.0) > lim + tol})
    cut = scenario.cap_cut_at if capped else scenario.intervals

    def kept(phase: range) -> dict:
        ran = [j for j, (p, first) in trace.ran.items() if p in HIGH and first < phase.stop]
        stopped = [j for j in ran if trace.stopped_by_downscale.get(j, -1) in phase]
        return {"ran": len(ran), "stopped_by_downscale": len(stopped),
                "share": round(1 - len(stopped) / len(ran), 4) if ran else None}

    before_cut = next((r for r in trace.rounds if r["interval"] == cut - 1), trace.rounds[-1])
    peak = max(trace.rounds, key=lambda r: r["spend"].get("global", 0.0))
    worst = max(longest.values(), default=0)
    return {
        "caps": scenario.caps(cut=False).model_dump(by_alias=True, exclude_none=True) if capped else None,
        "peak_spend_usd_per_hour": peak["spend"].get("global", 0.0), "peak_at_interval": peak["interval"],
        "peak_committed_before_downscale_usd_per_hour": max(
            (r["committed_before_downscale"].get("global", 0.0) for r in trace.rounds), default=0.0),
        "longest_over_cap_after_round": {"intervals": worst, "simulated_s": worst * scenario.interval_s,
                                         "by_scope": longest},
        "over_cap_before_downscale": [{"interval": k, "scope": s} for k, s in over_before],
        "high_priority_kept_running": {
            "through_spike_and_price_rise": kept(range(0, cut)),
            "after_cap_cut": kept(range(cut, scenario.intervals)) if capped else None,
            "high_priority_usd_per_hour_before_cut": round(sum(
                before_cut["spend_by_priority"].get(p, 0.0) for p in HIGH), 4)},
        "downscale_actions": dict(Counter(a["kind"] for a in trace.actions)),
        "downscale_actions_by_priority": dict(Counter(a["priority"] for a in trace.actions)),
        "stopped_then_relaunched_in_same_round": trace.relaunched_same_round,
        "spent_usd": round(spent, 2), "wall_s": round(wall_s, 2),
        "max_round_s": max(r["round_s"] for r in trace.rounds), "rounds": trace.rounds, "actions": trace.actions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intervals", type=int, default=40, help="control intervals (rounds) to simulate")
    parser.add_argument("--interval-s", type=float, default=60.0, help="simulated seconds per control interval")
    parser.add_argument("--global-cap", type=float, default=150.0, help="global $/h cap (team caps scale with it)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "surge.json")
    args = parser.parse_args()
    if args.intervals < 12:
        parser.error("--intervals must be >= 12 (burst, spike, price rise and cap cut each need room)")
    scenario = Scenario.default(args.intervals, args.interval_s, args.global_cap)
    offers = [o for o in load_catalogs([SHIPPED_CATALOG_DIR]).offers
              if (o.cloud, o.region) in REGIONS and o.gpu]
    results = {"seed": args.seed, "interval_s": args.interval_s, "intervals": args.intervals,
               "scenario": vars(scenario),
               "capped": run(scenario, True, offers, args.seed), "uncapped": run(scenario, False, offers, args.seed)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    _print(results)


def _print(results: dict) -> None:
    capped, free = results["capped"], results["uncapped"]
    interval = results["interval_s"]
    print(f"caps ($/h): {json.dumps(capped['caps'])}")
    sc = results["scenario"]
    print(f"timeline (intervals of {interval:g} s): burst at {sc['burst_at']}, spike {sc['spike_from']}-"
          f"{sc['spike_until']} (x{SPIKE:g} over {sc['ramp']}), price x{sc['price_factor']} at {sc['price_at']}, "
          f"caps x{sc['cap_cut']} at {sc['cap_cut_at']}")
    for name, r in (("caps on", capped), ("caps off", free)):
        over = r["longest_over_cap_after_round"]
        high = r["high_priority_kept_running"]
        print(f"{name:8}: peak ${r['peak_spend_usd_per_hour']:.2f}/h (interval {r['peak_at_interval']}), "
              f"committed before downscale peak ${r['peak_committed_before_downscale_usd_per_hour']:.2f}/h, "
              f"spent ${r['spent_usd']:.2f}, max round {r['max_round_s']:.2f} s, wall {r['wall_s']:.1f} s")
        if name == "caps on":
            print(f"          above a cap after a round: {over['intervals']} intervals ({over['simulated_s']:g} s); "
                  f"over before downscale at {[(o['interval'], o['scope']) for o in r['over_cap_before_downscale']]}")
            spike, after = high["through_spike_and_price_rise"], high["after_cap_cut"]
            print(f"          high-priority work kept running through spike + price rise: "
                  f"{spike['ran'] - spike['stopped_by_downscale']}/{spike['ran']} (share {spike['share']}); "
                  f"after the cap cut to ${capped['rounds'][-1]['limit'].get('global', 0):g}/h: "
                  f"{after['ran'] - after['stopped_by_downscale']}/{after['ran']} (share {after['share']}; "
                  f"high-priority work ran at ${high['high_priority_usd_per_hour_before_cut']:.2f}/h before it)")
            print(f"          downscale actions {r['downscale_actions']}, by priority "
                  f"{r['downscale_actions_by_priority']}; stopped and placed again in the same round: "
                  f"{len(r['stopped_then_relaunched_in_same_round'])}")


if __name__ == "__main__":
    main()
