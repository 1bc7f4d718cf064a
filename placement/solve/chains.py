"""SkyPilot's DAGs in a placement round: pipelines run in order, job groups start together.

A pipeline's task (`Job.after`) is placed only once the task before it succeeded, and never once that
one failed; a job group's jobs (`Job.group`) are placed all in one round or not at all (SkyPilot launches
a job group's tasks together). Pure: the caller says which jobs succeeded or failed (the store, or
nothing for an offline plan), and gets the jobs to place and the reasons of those held back.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Collection, Iterable

from placement.model import Job, Plan, Reason, ReasonCode, Snapshot
from placement.solve import RoundResult, solve_round
from policies.model import Policy


@dataclasses.dataclass(frozen=True, slots=True)
class Held:
    placeable: list[Job]  # jobs to put in the round's snapshot
    waiting: list[tuple[str, Reason]]  # stay pending: the task before has not succeeded yet
    doomed: list[tuple[str, Reason]]  # never run: a task before them failed


def hold_for_predecessors(jobs: Iterable[Job], succeeded: Collection[str], failed: Collection[str]) -> Held:
    """Split pending jobs: those free to place, those whose previous task has not succeeded, and those
    after a failed one (the rest of the chain fails with it: each names the task that failed)."""
    jobs = list(jobs)
    by_id = {job.id: job for job in jobs}
    placeable, waiting, doomed = [], [], []
    for job in jobs:
        if job.after is None or job.after in succeeded:
            placeable.append(job)
            continue
        root = job.after  # walk back to the first task of the chain that has not succeeded
        while root not in failed and root in by_id and by_id[root].after is not None \
                and by_id[root].after not in succeeded:
            root = by_id[root].after
        if root in failed:
            doomed.append((job.id, Reason(ReasonCode.PREDECESSOR_FAILED,
                                          f"{root}, before it in its pipeline, failed; it will not run", scope=root)))
        else:
            waiting.append((job.id, Reason(ReasonCode.WAITING_FOR_PREDECESSOR,
                                           f"waits for {job.after}, before it in its pipeline, to succeed",
                                           scope=job.after)))
    return Held(placeable, waiting, doomed)


def hold_partial_groups(plan: Plan, jobs: Iterable[Job]) -> Plan:
    """The plan with no job group half placed: where some of a group's pending jobs were not placed, its
    placed ones are taken back and wait too, naming a job of the group that could not be placed."""
    members: dict[str, list[str]] = defaultdict(list)
    for job in jobs:
        if job.group is not None:
            members[job.group].append(job.id)
    placed = {p.job_id for p in plan.placements}
    queued = dict(plan.queued)
    held: dict[str, Reason] = {}
    for group, ids in members.items():
        missing = [i for i in ids if i not in placed]
        if not missing:
            continue
        why = queued.get(missing[0])
        detail = f" ({why.code.value}: {why.message})" if why is not None else ""
        for job_id in ids:
            if job_id in placed:
                held[job_id] = Reason(ReasonCode.WAITING_FOR_GROUP, f"its job group starts together, and "
                                      f"{missing[0]} cannot be placed this round{detail}", scope=group)
    if not held:
        return plan
    return dataclasses.replace(plan, placements=tuple(p for p in plan.placements if p.job_id not in held),
                               queued=plan.queued + tuple(held.items()))


def plan_round(snapshot: Snapshot, policy: Policy, succeeded: Collection[str] = (),
               failed: Collection[str] = ()) -> RoundResult:
    """One round over `snapshot`'s jobs, pipelines and job groups honoured: the held jobs are queued in the
    plan with their reasons (those after a failed task too: the caller fails them)."""
    held = hold_for_predecessors(snapshot.jobs, succeeded, failed)
    result = solve_round(dataclasses.replace(snapshot, jobs=tuple(held.placeable)), policy)
    plan = hold_partial_groups(result.plan, held.placeable)
    plan = dataclasses.replace(plan, queued=plan.queued + tuple(held.waiting) + tuple(held.doomed))
    return dataclasses.replace(result, plan=plan)
