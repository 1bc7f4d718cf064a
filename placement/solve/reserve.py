"""Reservations for large waiting jobs, so that a stream of small jobs does not starve them (Slurm's EASY backfill).

The most valuable waiting job that needs a whole node (or several) and would
rather wait than burst gets the nodes that free first for its shape, from the
forecast start on: one reservation per GPU type. Those nodes then take other
work only if it is expected to end before the reservation starts (the
"shadow time"), which `candidates.usable` enforces for every solver path, and
the forecast keeps them from other waiting jobs for the reserved job's run.
"""

from __future__ import annotations

import dataclasses

from placement.model import Job, Reservation, Snapshot, Tier
from placement.solve.candidates import Group, Waiting, index_groups, job_objective, signature_options
from placement.solve.costs import delay_rate
from placement.solve.forecast import Forecast, Hold
from policies.model import Policy

CANDIDATES = 32  # most valuable large jobs examined per round: enough for one per GPU type, and cheap


def is_large(job: Job, forecast: Forecast) -> bool:
    """Several nodes, or every GPU of the largest on-prem node of a GPU type it asks for."""
    return job.num_nodes > 1 or any(
        d.accelerator is not None and 0 < forecast.largest.get(d.accelerator, 0.0) <= d.accelerator_count + 1e-9
        for d in job.demands)


def plan_reservations(jobs: tuple[Job, ...], forecast: Forecast, groups: list[Group], policy: Policy,
                      reserved: frozenset[str] = frozenset()) -> tuple[Reservation, ...]:
    """Reservations for the round: per GPU type, the large waiting job whose wait pays that held one last
    round (`reserved`), else the most valuable such job."""
    if not forecast:
        return ()
    waiting = Waiting(forecast, policy)
    by_gpu, onprem = index_groups(groups)
    candidates = [j for j in jobs if Tier.ONPREM in j.tiers and is_large(j, forecast)]
    # A job that held a reservation last round keeps it while it still waits (as EASY backfill's queue head
    # does), so a reservation does not hop between jobs and nodes; then the most valuable: $/h of delay.
    candidates.sort(key=lambda j: (j.id not in reserved, -delay_rate(j, policy), -j.waited_hours, j.id))
    reservations: list[Reservation] = []
    taken: set[str] = set()
    gpus_reserved: set[str | None] = set()
    examined = 0
    for job in candidates:
        if examined >= CANDIDATES:
            break
        examined += 1
        options = signature_options(job, by_gpu, onprem, policy)
        if any(o.group.tier is Tier.ONPREM for o in options):
            continue  # it has room now
        start = forecast.start(job, policy)
        wait = waiting.of(job, options=options)
        if start is None or start.hours <= 1e-9 or wait is None or not wait.within_max_wait:
            continue
        if start.nodes[0].gpu in gpus_reserved or taken & set(start.node_names):
            continue
        others = [o for o in options if o.group.tier is not Tier.ONPREM]
        best_other = min((job_objective(job, o, policy) for o in others), default=float("inf"))
        premium = best_other - wait.cost
        if premium <= 0:
            continue  # it bursts anyway: holding nodes back for it would only idle them
        reservations.append(Reservation(job.id, start.node_names, start.nodes[0].gpu, start.hours,
                                        job.expected_hours, premium))
        taken |= set(start.node_names)
        gpus_reserved.add(start.nodes[0].gpu)
    return tuple(reservations)


def with_reservations(snapshot: Snapshot, reservations: tuple[Reservation, ...]) -> Snapshot:
    """The snapshot with each reserved node's offer marked: whose it is and how long it stays free for others."""
    by_node = {node: r for r in reservations for node in r.nodes}
    offers = tuple(dataclasses.replace(o, reserved_for=by_node[o.name].job_id,
                                       free_for_hours=by_node[o.name].start_hours)
                   if o.tier is Tier.ONPREM and o.name in by_node else o for o in snapshot.offers)
    return dataclasses.replace(snapshot, offers=offers)


def holds(reservations: tuple[Reservation, ...]) -> dict[str, Hold]:
    return {node: Hold(r.job_id, r.start_hours, r.start_hours + r.hours) for r in reservations for node in r.nodes}
