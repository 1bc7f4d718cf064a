"""Issue 19's benchmark: `balanced` against the `sky-k8s` and `burst-after-wait` baselines on week-long openb windows.

Each window is one `placement replay` (the real engine on a simulated clock, the work-limited solver, seeded
estimate noise), run in-process one after another. Per window it prints and writes as JSON: the policy's
public + private $, sky-k8s's, their ratio (the issue's target: at most 0.8), burst-after-wait's $ and p95,
the p95 wait of high + critical jobs of each, and on-prem GPU allocation of the policy and of sky-k8s.

    python benchmarks/windows.py [--windows 119d:126d@0.4,133d:140d@0.6] [--held-out] [--policy balanced]
                                 [--set FIELD=VALUE ...] [--estimate-noise 0.5] [--baselines-from FILE]
                                 [--policy-only] [--show FILE] [--out FILE]

The baselines do not depend on the engine's code, so `--baselines-from` an earlier run's JSON reuses them
(same trace, windows, noise and seed) and replays only the policy; `--policy-only` replays no baselines, and
`--show FILE --baselines-from BASE` prints FILE's table with BASE's baselines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from placement.replay.baselines import replay_baseline  # noqa: E402
from placement.replay.compare import Setup, prepare  # noqa: E402
from placement.replay.figures import figures  # noqa: E402
from placement.replay.runner import replay_policy  # noqa: E402
from placement.replay.sweep import parse_sweep, variant  # noqa: E402
from policies import load_policy  # noqa: E402
from policies.model import Policy  # noqa: E402

TRACE = ROOT / "configs" / "traces" / "alibaba_gpu2023_openb_jobs.csv"
# The README's table (tuned on) and windows held out from tuning.
TABLE = ("119d:126d@0.4", "126d:133d@0.4", "133d:140d@0.4", "119d:126d@0.6", "126d:133d@0.25", "126d:133d@0.6",
         "133d:140d@0.25", "133d:140d@0.6")
HELD_OUT = ("112d:119d@0.4", "112d:119d@0.6", "140d:147d@0.4", "140d:147d@0.6", "147d:154d@0.4", "147d:154d@0.6")
BASELINES = ("sky-k8s", "burst-after-wait")


def _policy(name: str, settings: list[str]) -> Policy:
    """The named policy with each FIELD=VALUE of `settings` set (dotted fields, as `--sweep` takes them)."""
    policy = load_policy(name)
    for setting in settings:
        field, values = parse_sweep(setting)
        policy = variant(policy, field, values[0])
    return policy.model_copy(update={"name": name})


def _run(window: str, scale: float, policy: Policy, baselines: list[str], noise: float, seed: int) -> dict:
    setup = Setup(TRACE, window=window, onprem_scale=scale, estimate_noise=noise, seed=seed)
    prepared = prepare(setup)
    world, jobs = prepared.world, prepared.jobs
    try:
        runs = [replay_policy(world, jobs, policy, seed)]
        runs += [replay_baseline(world, jobs, name, policy, seed) for name in baselines]
    finally:
        prepared.tmp.cleanup()
    results = [figures(run, world.epoch, world.horizon_s, world.onprem_gpus, policy.caps) for run in runs]
    kept = {r["name"]: {k: r[k] for k in ("usd_cloud", "p95_wait_high_min", "onprem_allocation", "unfinished",
                                          "wall_s")} for r in results}
    return {"window": window, "onprem_scale": scale, "onprem_gpus": prepared.info["onprem_gpus"],
            "jobs": prepared.info["jobs"], "runs": kept}


def row(entry: dict, policy: str) -> dict:
    runs = entry["runs"]
    missing = dict.fromkeys(("usd_cloud", "p95_wait_high_min", "onprem_allocation"))
    mine, sky, burst = runs[policy], runs.get("sky-k8s", missing), runs.get("burst-after-wait", missing)
    ratio = mine["usd_cloud"] / sky["usd_cloud"] if sky["usd_cloud"] else None
    return {"window": entry["window"], "scale": entry["onprem_scale"], "gpus": entry["onprem_gpus"],
            "usd": mine["usd_cloud"], "sky_usd": sky["usd_cloud"], "ratio": ratio, "burst_usd": burst["usd_cloud"],
            "p95_high": mine["p95_wait_high_min"], "sky_p95_high": sky["p95_wait_high_min"],
            "burst_p95_high": burst["p95_wait_high_min"], "alloc": mine["onprem_allocation"],
            "sky_alloc": sky["onprem_allocation"]}


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(entries: list[dict], policy: str) -> str:
    lines = [f"| window, on-prem | {policy} $ | sky-k8s $ | x sky-k8s | burst-after-wait $ | p95 high+crit min: "
             f"{policy} / sky-k8s / burst-after-wait | alloc {policy} / sky-k8s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for entry in entries:
        r = row(entry, policy)
        lines.append(f"| {r['window']} {r['scale']:g} ({r['gpus']:g} GPUs) | {r['usd']:.2f} | "
                     f"{_fmt(r['sky_usd'], '.2f')} | {_fmt(r['ratio'], '.3f')} | {_fmt(r['burst_usd'], '.2f')} | "
                     f"{_fmt(r['p95_high'], '.1f')} / "
                     f"{_fmt(r['sky_p95_high'], '.1f')} / {_fmt(r['burst_p95_high'], '.1f')} | "
                     f"{_fmt(r['alloc'], '.1%')} / {_fmt(r['sky_alloc'], '.1%')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", help="comma-separated START:END@SCALE (default: the README's table)")
    parser.add_argument("--held-out", action="store_true", help="also the windows not tuned on")
    parser.add_argument("--policy", default="balanced")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a policy field to change, as --sweep names it (repeatable)")
    parser.add_argument("--estimate-noise", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines-from", type=Path, help="reuse the baselines of this earlier output")
    parser.add_argument("--policy-only", action="store_true", help="replay no baselines (see --show)")
    parser.add_argument("--show", type=Path, help="replay nothing: print this earlier output's table")
    parser.add_argument("--out", type=Path, default=Path("windows.json"))
    args = parser.parse_args()
    specs = list(args.windows.split(",") if args.windows else TABLE) + (list(HELD_OUT) if args.held_out else [])
    earlier = {}
    if args.baselines_from:
        saved = json.loads(args.baselines_from.read_text())
        if saved["estimate_noise"] == args.estimate_noise and saved["seed"] == args.seed:
            earlier = {(e["window"], e["onprem_scale"]): e for e in saved["windows"]
                       if all(b in e["runs"] for b in BASELINES)}
    if args.show:  # no replay: an earlier output's policy runs, with the baselines filled in from --baselines-from
        entries = json.loads(args.show.read_text())["windows"]
        for entry in entries:
            reused = earlier.get((entry["window"], entry["onprem_scale"]))
            if reused:
                entry["runs"].update({b: reused["runs"][b] for b in BASELINES})
        _write(args, entries)
        print(table(entries, args.policy))
        return
    policy = _policy(args.policy, args.set)
    entries = []
    for spec in specs:
        window, scale_text = spec.split("@")
        scale = float(scale_text)
        reused = earlier.get((window, scale))
        baselines = [] if reused or args.policy_only else list(BASELINES)
        started = time.perf_counter()
        entry = _run(window, scale, policy, baselines, args.estimate_noise, args.seed)
        if reused:
            entry["runs"].update({b: reused["runs"][b] for b in BASELINES})
        entries.append(entry)
        r = row(entry, args.policy)
        print(f"{spec}: {args.policy} ${r['usd']:.2f}, sky-k8s ${_fmt(r['sky_usd'], '.2f')} "
              f"(x{_fmt(r['ratio'], '.3f')}), p95 high {_fmt(r['p95_high'], '.1f')} min, "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        _write(args, entries)
    print(table(entries, args.policy))


def _write(args: argparse.Namespace, entries: list[dict]) -> None:
    args.out.write_text(json.dumps({"policy": args.policy, "set": args.set, "estimate_noise": args.estimate_noise,
                                    "seed": args.seed, "windows": entries,
                                    "rows": [row(e, args.policy) for e in entries]}, indent=1))


if __name__ == "__main__":
    main()
