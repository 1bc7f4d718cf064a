"""Migrate back: running cloud work that would be cheaper on on-prem capacity that is free after this round.

A running public or private job moves when its remaining expected hours (its
expected hours x its team's learned ratio, less what it has run) times its
rate less the on-prem rate exceed what a restart costs: the work lost since its
last checkpoint and the start-up, `restart_hours` (the job's own, else the
policy's `downscale.restart_hours`), at its priority's $ per GPU-hour of delay.
Only work that says it can restart moves (`spot_ok` or `placement.migratable`),
one node at most per job, and only onto capacity this round's placements left
free (and no reservation needs), largest saving first.
"""

from __future__ import annotations

from placement.model import Demand, Job, Migration, Running, Tier
from placement.solve.candidates import Group, index_groups, signature_options, usable
from placement.solve.forecast import Ratios, remaining_hours
from placement.solve.ledger import CapacityLedger, Chosen, placement_of
from policies.model import Policy


def migrations(running: tuple[Running, ...], groups: list[Group], ledger: CapacityLedger, ratios: Ratios,
               policy: Policy) -> tuple[Migration, ...]:
    """The moves worth their restart, taken from `ledger` (which keeps what they take)."""
    by_gpu, onprem = index_groups([g for g in groups if g.tier is Tier.ONPREM])
    if not onprem:
        return ()
    candidates = []
    for work in running:
        if work.tier is Tier.ONPREM or not work.migratable or work.priority not in policy.priorities:
            continue
        left = remaining_hours(work, ratios)
        if left is None or left <= 0:
            continue
        candidates.append((left * work.rate_per_hour, work, left))
    candidates.sort(key=lambda c: (-c[0], c[1].job_id))
    moves = []
    for _, work, left in candidates:
        gpus, cpus, memory_gb = work.per_node
        job = Job(id=work.job_id, name=work.name, team=work.team, priority=work.priority,
                  demands=(Demand(accelerator=work.gpu, accelerator_count=gpus, cpus=cpus, memory_gb=memory_gb),),
                  expected_hours=left, tiers=frozenset({Tier.ONPREM}))
        restart_hours = policy.downscale.restart_hours if work.restart_hours is None else work.restart_hours
        value_per_hour = policy.delay_rate(work.priority) * max(gpus, cpus / policy.cpus_per_gpu_equivalent, 0.1)
        restart = value_per_hour * restart_hours
        options = sorted((o for o in signature_options(job, by_gpu, onprem, policy) if usable(job, o)),
                         key=lambda o: (o.rate, o.group.index))
        for option in options:
            saves = policy.weights.cost * left * (work.rate_per_hour - option.rate) - restart
            if saves <= 0:
                break
            offers = ledger.try_place(job, option)
            if offers is not None:
                nodes = tuple(o.name for o in offers)
                placement = placement_of(job, Chosen(policy.weights.cost * left * option.rate, option, offers))
                moves.append(Migration(
                    work.job_id, work.offer_id, nodes, left, saves, restart,
                    f"moving to on-prem {', '.join(nodes)}: {left:.1f} h left x (${work.rate_per_hour:,.2f} - "
                    f"${option.rate:,.2f})/h saves ${saves + restart:,.2f}, more than the restart's "
                    f"${restart:,.2f} ({restart_hours:g} h of its work)", placement))
                break
    return tuple(moves)
