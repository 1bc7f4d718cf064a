"""The figures of one run, from what the simulated providers ran (the same accounting for engine and baselines).

A launch pays its rate from the end of its start-up until it ends (succeeds, is stopped, is reclaimed) or
the horizon; on-prem $ is the owned capacity's share used (the node price x the job's share). On-prem GPU
allocation is GPU-hours held on-prem (from launch) over the on-prem GPUs x the horizon. A job's wait is
from its arrival to its first launch running. Energy: GPU watts x GPUs x hours x the provider's PUE;
carbon: x the offer's grid intensity (the policy's default where the offer has none).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from clouds.energy import grid_intensity, pue
from placement.model import Offer, Tier
from placement.replay.runner import Run
from placement.sim import SimulatedWork
from policies.model import Caps
from placement.spend import capped_scopes, scopes_of

PRIORITIES = ("critical", "high", "normal", "low")
DEFAULT_GRID = 400.0  # gCO2e/kWh where an offer names none (the policy default's order of magnitude)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank, so every figure is a value that occurred); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _paid_hours(work: SimulatedWork, horizon: float) -> float:
    end = work.ended(horizon)
    end = horizon if end is None else end
    return max(end - work.running_from, 0.0) / 3600.0


def _held_hours(work: SimulatedWork, horizon: float) -> float:
    end = work.ended(horizon)
    end = horizon if end is None else end
    return max(min(end, horizon) - work.launched_at, 0.0) / 3600.0


def figures(run: Run, epoch: float, horizon_s: float, onprem_gpus: float, caps: Caps | None = None
            ) -> dict[str, Any]:
    horizon = epoch + horizon_s
    usd = {tier: 0.0 for tier in Tier}
    held_onprem = kwh = co2 = 0.0
    first_running: dict[str, float] = {}
    finished: set[str] = set()
    per_job_usd: dict[str, float] = defaultdict(float)
    per_job_tier: dict[str, str] = {}
    spend_changes: dict[str, list[tuple[float, float]]] = defaultdict(list)  # scope -> (t, +/- $/h)
    for work in run.work:
        if work.launched_at >= horizon:
            continue
        hours = _paid_hours(work, horizon)
        usd[work.tier] += work.rate_per_hour * hours
        per_job_usd[work.job_id] += work.rate_per_hour * hours
        per_job_tier[work.job_id] = work.tier.value
        if work.tier is Tier.ONPREM:
            held_onprem += work.gpus * _held_hours(work, horizon)
        if work.running_from < horizon:
            first_running[work.job_id] = min(first_running.get(work.job_id, float("inf")), work.running_from)
        ended = work.ended(horizon)
        if ended is not None and work.stopped_at in (None, ended) and work.run_seconds is not None and \
                ended >= work.running_from + work.run_seconds - 1e-6:
            finished.add(work.job_id)
        offer: Offer | None = run.offers.get(work.offer_id or "")  # type: ignore[assignment]
        watts = (offer.gpu_watts or 0.0) * work.gpus if offer is not None else 0.0
        provider = offer.provider if offer is not None else work.tier.value
        energy = watts * hours / 1000.0 * pue(provider if work.tier is Tier.PUBLIC else work.tier.value)
        grid = offer.gco2_per_kwh if offer is not None and offer.gco2_per_kwh is not None else \
            grid_intensity(provider, offer.region if offer is not None else None).gco2_per_kwh or DEFAULT_GRID
        kwh += energy
        co2 += energy * grid / 1000.0
        if work.tier is not Tier.ONPREM and hours > 0:
            team = run.jobs[work.job_id].spec["placement"]["team"] if work.job_id in run.jobs else "-"
            for scope in scopes_of(team):
                spend_changes[scope] += [(work.running_from, work.rate_per_hour),
                                         (work.running_from + hours * 3600.0, -work.rate_per_hour)]

    waits: dict[str, list[float]] = defaultdict(list)
    jobs_rows = []
    for job_id, job in run.jobs.items():
        start = first_running.get(job_id)
        wait = (start - (epoch + job.submit_s)) / 60.0 if start is not None else None
        if wait is not None:
            waits[job.priority].append(wait)
        jobs_rows.append({"job": job_id, "name": job.spec.get("name"), "priority": job.priority,
                          "submit_s": job.submit_s, "true_hours": round(job.true_hours, 4),
                          "expected_hours": job.spec["placement"]["expected_hours"],
                          "wait_min": round(wait, 2) if wait is not None else None,
                          "tier": per_job_tier.get(job_id), "usd": round(per_job_usd.get(job_id, 0.0), 4),
                          "finished": job_id in finished})
    above = _time_above_caps(spend_changes, caps, epoch, horizon) if caps is not None else {}
    round_s = [r.seconds for r in run.rounds]
    solve_s = [r.solve_seconds for r in run.rounds if r.placing]
    return {
        "name": run.name, "kind": run.kind,
        "usd_public": round(usd[Tier.PUBLIC], 2), "usd_private": round(usd[Tier.PRIVATE], 2),
        "usd_onprem": round(usd[Tier.ONPREM], 2),
        "usd_cloud": round(usd[Tier.PUBLIC] + usd[Tier.PRIVATE], 2),
        "onprem_allocation": round(held_onprem / (onprem_gpus * horizon_s / 3600.0), 4) if onprem_gpus else None,
        "wait_min": {p: {"p50": _r(percentile(waits[p], 50)), "p95": _r(percentile(waits[p], 95)),
                         "p99": _r(percentile(waits[p], 99)), "jobs": len(waits[p])}
                     for p in PRIORITIES if p in waits},
        "p95_wait_high_min": _r(percentile(waits["high"] + waits["critical"], 95)),
        "jobs": len(run.jobs), "finished": len(finished), "unfinished": len(run.jobs) - len(finished),
        "hours_above_cap": above,
        "downscale_actions": sum(r.downscaled for r in run.rounds),
        "kwh": round(kwh, 1), "kg_co2e": round(co2, 1),
        "rounds": len(run.rounds), "rounds_placing": len(solve_s),
        "round_s": {"p50": _r(percentile(round_s, 50), 4), "p99": _r(percentile(round_s, 99), 4)},
        "solve_s": {"p50": _r(percentile(solve_s, 50), 4), "p99": _r(percentile(solve_s, 99), 4)},
        "wall_s": round(run.wall_s, 2), "simulated_s": run.end_s,
        "per_job": sorted(jobs_rows, key=lambda r: r["job"]),
    }


def _r(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


def _time_above_caps(changes: dict[str, list[tuple[float, float]]], caps: Caps, epoch: float, horizon: float
                     ) -> dict[str, float]:
    """Hours each rate-capped scope's private + public spend rate was above its `usd_per_hour`."""
    result = {}
    for scope, cap in capped_scopes(caps).items():
        if cap.usd_per_hour is None:
            continue
        level, last, above = 0.0, epoch, 0.0
        for t, delta in sorted(changes.get(scope, []), key=lambda c: (c[0], c[1])):
            t = min(max(t, epoch), horizon)
            if level > cap.usd_per_hour + 1e-9:
                above += t - last
            level += delta
            last = t
        result[scope] = round(above / 3600.0, 3)
    return result
