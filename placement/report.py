"""How a plan is shown: a table with totals per tier, JSON, and one job's explanation."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.table import Table

from placement.model import Job, Snapshot
from placement.solve import RoundResult
from placement.solve.explain import alternatives
from policies.model import Policy


def _gpus(job: Job, gpu: str | None, per_node: float) -> str:
    if not gpu:
        return "CPU"
    nodes = f" x{job.num_nodes}" if job.num_nodes > 1 else ""
    return f"{gpu}:{per_node:g}{nodes}"


def print_plan(console: Console, snapshot: Snapshot, policy: Policy, result: RoundResult) -> None:
    plan = result.plan
    jobs = {j.id: j for j in snapshot.jobs}
    table = Table(title=f"Plan under policy '{policy.name}'")
    for column in ("job", "tier", "target", "GPUs", "$/h", "expected $", "reason"):
        table.add_column(column, justify="right" if "$" in column else "left", overflow="fold")
    for p in plan.placements:
        job = jobs[p.job_id]
        target = p.target + (" (spot)" if p.spot else "") + (f" [{p.region}]" if p.region and not p.nodes else "")
        table.add_row(p.job_id, p.tier.value, target, _gpus(job, p.gpu, p.gpus_per_node),
                      f"{p.rate_per_hour:,.2f}", f"{p.expected_cost:,.2f}", "")
    for job_id, reason in plan.queued:
        job = jobs[job_id]
        first = job.demands[0]
        table.add_row(job_id, "[yellow]queued[/yellow]", "-", _gpus(job, first.accelerator, first.accelerator_count),
                      "-", "-", f"[yellow]{reason.code.value}[/yellow]: {reason.message}")
    console.print(table)

    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for p in plan.placements:
        row = totals[p.tier.value]
        row[0] += 1
        row[1] += (p.gpus_per_node * p.num_nodes) if p.gpu else 0
        row[2] += p.rate_per_hour
        row[3] += p.expected_cost
    summary = Table(title="Totals per tier")
    for column in ("tier", "jobs", "GPUs", "$/h", "expected $"):
        summary.add_column(column, justify="left" if column == "tier" else "right")
    for tier, (count, gpus, rate, cost) in sorted(totals.items()):
        summary.add_row(tier, f"{count:g}", f"{gpus:g}", f"{rate:,.2f}", f"{cost:,.2f}")
    summary.add_row("queued", str(len(plan.queued)), "", "", "")
    console.print(summary)
    stats = plan.stats
    console.print(f"Solved by {stats.method} ({stats.status}) in {stats.total_seconds * 1000:.0f} ms "
                  f"(build {stats.build_seconds * 1000:.0f} ms, solve {stats.solve_seconds * 1000:.0f} ms); "
                  f"{stats.num_classes} job classes, {stats.num_variables} variables; "
                  f"objective ${stats.objective:,.2f}.")


def plan_json(snapshot: Snapshot, result: RoundResult) -> dict:
    plan = result.plan
    return {
        "placements": [{"job": p.job_id, "tier": p.tier.value, "provider": p.provider, "target": p.target,
                        "offer": p.offer_id, "nodes": list(p.nodes), "region": p.region, "gpu": p.gpu,
                        "gpus_per_node": p.gpus_per_node, "num_nodes": p.num_nodes, "spot": p.spot,
                        "usd_per_hour": round(p.rate_per_hour, 4), "expected_usd": round(p.expected_cost, 2),
                        "objective": round(p.objective, 4)} for p in plan.placements],
        "queued": [{"job": job_id, "reason": reason.code.value, "message": reason.message, "scope": reason.scope}
                   for job_id, reason in plan.queued],
        "stats": {"method": plan.stats.method, "status": plan.stats.status,
                  "build_seconds": plan.stats.build_seconds, "solve_seconds": plan.stats.solve_seconds,
                  "total_seconds": plan.stats.total_seconds, "objective": plan.stats.objective,
                  "classes": plan.stats.num_classes, "variables": plan.stats.num_variables,
                  "jobs": len(snapshot.jobs), "offers": len(snapshot.offers)},
    }


def explain_job(console: Console, job_id: str, snapshot: Snapshot, policy: Policy, result: RoundResult) -> None:
    job = next((j for j in snapshot.jobs if j.id == job_id), None)
    if job is None:
        known = ", ".join(sorted(j.id for j in snapshot.jobs)[:20])
        raise ValueError(f"no job {job_id!r} in these specs; jobs: {known}")
    plan = result.plan
    placement = plan.placement_of(job_id)
    options = result.job_options.get(job_id, [])
    if placement is not None:
        console.print(f"[green]{job_id}[/green] goes to {placement.tier.value} {placement.target}"
                      f"{' (spot)' if placement.spot else ''}: ${placement.rate_per_hour:,.2f}/h, "
                      f"${placement.expected_cost:,.2f} over {job.expected_hours:g} h, "
                      f"objective ${placement.objective:,.2f}.")
        baseline = placement.objective
    else:
        reason = plan.reason_of(job_id)
        console.print(f"[yellow]{job_id}[/yellow] stays queued: {reason}")
        baseline = result.queue_costs.get(job_id, 0.0)
    if job_id in result.queue_costs:
        console.print(f"Waiting instead would cost ${result.queue_costs[job_id]:,.2f} "
                      f"(delay at {job.priority} priority plus where it would run later).")
    alts = [a for a in alternatives(job, options, baseline, result.ledger, policy, limit=4)
            if placement is None or a.offer.id != placement.offer_id]
    if not alts:
        console.print("No other option fits this job.")
        return
    table = Table(title="Next best options")
    for column in ("tier", "offer", "$ over the job", "objective", "vs chosen", "now blocked by"):
        table.add_column(column, overflow="fold")
    for a in alts[:3]:
        table.add_row(a.offer.tier.value, f"{a.offer.provider} {a.offer.name}" + (" (spot)" if a.offer.spot else ""),
                      f"{a.dollars:,.2f}", f"{a.objective:,.2f}", f"{a.delta_objective:+,.2f}",
                      str(a.blocked_by) if a.blocked_by else "-")
    console.print(table)
