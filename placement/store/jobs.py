"""Jobs and their events: what was submitted, where each job stands, and the typed changes that move it on."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from placement.model import OutcomeCode, ReasonCode, Tier
from placement.secrets import Sealer
from placement.store.schema import Database
from placement.store.services import NewService
from placement.store.tables import TableGroup


class JobState(StrEnum):
    PENDING = "pending"  # waiting for a round to place it (with a reason once a round has looked)
    PLANNED = "planned"  # placed on a tier whose provider does not launch yet
    LAUNCHING = "launching"  # launch recorded, not yet confirmed by the provider
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


ACTIVE = (JobState.LAUNCHING, JobState.RUNNING)

JobReasonCode = ReasonCode | OutcomeCode | str  # str: a code no enum of this version knows (an older store's)


def reason_code_of(text: str | None) -> JobReasonCode | None:
    """A stored reason code as its enum member where there is one."""
    if text is None:
        return None
    for codes in (ReasonCode, OutcomeCode):
        try:
            return codes(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    name: str
    team: str
    priority: str
    spec: dict[str, Any]
    source: str
    state: JobState
    attempt: int
    submitted_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    tier: Tier | None
    target: str | None
    offer_id: str | None
    handle: str | None
    nodes: tuple[str, ...]
    gpus: float | None  # per node
    cpus: float | None
    memory_gb: float | None
    rate_per_hour: float | None
    reason_code: JobReasonCode | None
    reason: str | None
    service: str | None = None
    after: str | None = None  # a pipeline's previous task
    group: str | None = None  # the job group, by its first job's id


class Keep(Enum):
    """The value of a `JobChange` field that leaves the job's field as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class JobChange:
    """New values for some of a job's fields, written in one transaction with an event (`JobTable.update_job`) or
    with a decision (`Intent.change`). A field left at `KEEP` is not changed; `None` clears it."""

    state: JobState | Keep = KEEP
    attempt: int | Keep = KEEP
    spec: dict[str, Any] | Keep = KEEP
    started_at: float | None | Keep = KEEP
    finished_at: float | None | Keep = KEEP
    tier: Tier | None | Keep = KEEP
    target: str | None | Keep = KEEP
    offer_id: str | None | Keep = KEEP
    handle: str | None | Keep = KEEP
    nodes: tuple[str, ...] | Keep = KEEP
    gpus: float | None | Keep = KEEP
    cpus: float | None | Keep = KEEP
    memory_gb: float | None | Keep = KEEP
    rate_per_hour: float | None | Keep = KEEP
    reason_code: JobReasonCode | None | Keep = KEEP
    reason: str | None | Keep = KEEP

    def columns(self, sealer: Sealer) -> dict[str, Any]:
        """The changed fields as the jobs table stores them (each field is the column of its name)."""
        columns = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is KEEP:
                continue
            if field.name == "spec":
                value = json.dumps(sealer.seal(value))
            elif field.name == "nodes":
                value = json.dumps(list(value))
            elif isinstance(value, Enum):  # states, tiers and reason codes by value
                value = value.value
            columns[field.name] = value
        return columns


def apply_change(db: sqlite3.Connection, sealer: Sealer, job_id: str, change: JobChange, now: float) -> None:
    """Write a job's changed fields and its `updated_at` (inside the caller's transaction)."""
    columns = change.columns(sealer)
    assignments = "".join(f"{column} = ?, " for column in columns)
    db.execute(f"UPDATE jobs SET {assignments}updated_at = ? WHERE id = ?", [*columns.values(), now, job_id])


def add_event(db: sqlite3.Connection, job_id: str, now: float, kind: str, detail: str) -> None:
    db.execute("INSERT INTO events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)", (job_id, now, kind, detail))


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    name: str
    team: str
    priority: str
    spec: dict[str, Any]
    source: str
    service: str | None = None  # the name of the NewService (same batch) or the id of a stored service
    after: int | None = None  # a pipeline's previous task: its position in the same submission
    group: int | None = None  # a job group: the position of its first job in the same submission


_RECORD_CACHE = 20_000  # decoded job rows kept (`JobTable._job_record`)


class JobTable(TableGroup):
    """The jobs table and its event log."""

    def __init__(self, database: Database):
        super().__init__(database)
        self._records: dict[tuple, JobRecord] = {}  # row -> its decoded record (`_job_record`)

    def _job_record(self, row: sqlite3.Row) -> JobRecord:
        """The record of a row, decoded once per distinct row: a round reads the active jobs several times, and
        decoding their specs was a fifth of a replay's time. Records are frozen; their specs are not to be
        changed in place (`dataclasses.replace` and `dict(record.spec)` make new ones)."""
        key = tuple(row)
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= _RECORD_CACHE:
                self._records.clear()
            record = self._records[key] = self._job(row)
        return record

    def _job(self, row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            id=row["id"], name=row["name"], team=row["team"], priority=row["priority"],
            spec=self._sealer.unseal(json.loads(row["spec"])), source=row["source"], state=JobState(row["state"]),
            attempt=row["attempt"], submitted_at=row["submitted_at"], updated_at=row["updated_at"],
            started_at=row["started_at"], finished_at=row["finished_at"],
            tier=Tier(row["tier"]) if row["tier"] else None, target=row["target"],
            offer_id=row["offer_id"], handle=row["handle"],
            nodes=tuple(json.loads(row["nodes"])) if row["nodes"] else (), gpus=row["gpus"], cpus=row["cpus"],
            memory_gb=row["memory_gb"], rate_per_hour=row["rate_per_hour"],
            reason_code=reason_code_of(row["reason_code"]), reason=row["reason"], service=row["service"],
            after=row["after_job"], group=row["job_group"])

    def add_jobs(self, jobs: Iterable[NewJob], now: float, batch: str,
                 services: Iterable[NewService] = ()) -> list[str]:
        """Store new jobs as PENDING in one transaction; returns their ids once they are durable.

        Ids are the spec's job id plus a number unique in this store (`train-vit-17`), as Slurm and
        SkyPilot number their jobs, so the same file can be submitted twice. `batch` is the client's
        token for this submission: submitting the same batch again (a retry after a lost reply)
        returns the ids stored the first time. A service is stored with its first replicas, its id
        numbered like a job's (`serve-llama-17`); its replicas name it in `NewJob.service`.
        """
        jobs, services = list(jobs), list(services)
        with self._tx() as db:
            earlier = [r[0] for r in db.execute("SELECT id FROM jobs WHERE batch = ? ORDER BY rowid", (batch,))]
            if earlier or db.execute("SELECT 1 FROM services WHERE batch = ?", (batch,)).fetchone():
                return earlier
            first = db.execute("SELECT COALESCE(MAX(rowid), 0) + 1 FROM jobs").fetchone()[0]
            service_ids: dict[str, str] = {}
            for i, service in enumerate(services):
                if service.name in service_ids:
                    raise ValueError(f"two services named {service.name!r} in one submission")
                service_ids[service.name] = f"{service.name}-{first + i}"
                db.execute("INSERT INTO services (id, name, team, priority, spec, source, batch, min_replicas, "
                           "max_replicas, target_qps, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (service_ids[service.name], service.name, service.team, service.priority,
                            json.dumps(self._sealer.seal(service.spec)), service.source, batch, service.min_replicas,
                            service.max_replicas, service.target_qps, now))
            ids = [f"{j.id}-{first + i}" for i, j in enumerate(jobs)]
            db.executemany(
                "INSERT INTO jobs (id, name, team, priority, spec, source, state, submitted_at, updated_at, batch, "
                "service, after_job, job_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(job_id, j.name, j.team, j.priority, json.dumps(self._sealer.seal(j.spec)), j.source,
                  JobState.PENDING.value, now, now,
                  batch, service_ids.get(j.service, j.service) if j.service else None,
                  ids[j.after] if j.after is not None else None, ids[j.group] if j.group is not None else None)
                 for job_id, j in zip(ids, jobs)])
            db.executemany("INSERT INTO events (job_id, at, kind, detail) VALUES (?, ?, 'submitted', ?)",
                           [(job_id, now, j.source) for job_id, j in zip(ids, jobs)])
        return ids

    def job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job_record(row) if row else None

    def job_by_handle(self, handle: str) -> JobRecord | None:
        """The job whose current launch is `handle` (a launch of an earlier attempt is not it any more)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE handle = ?", (handle,)).fetchone()
        return self._job_record(row) if row else None

    def jobs(self, *, states: Iterable[JobState] | None = None, team: str | None = None,
             service: str | None = None) -> list[JobRecord]:
        query, args = "SELECT * FROM jobs", []
        clauses = []
        if service is not None:
            clauses.append("service = ?")
            args.append(service)
        if states is not None:
            states = list(states)
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            args += [s.value for s in states]
        if team is not None:
            clauses.append("team = ?")
            args.append(team)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY submitted_at, id", args).fetchall()
        return [self._job_record(r) for r in rows]

    def jobs_overlapping(self, since: float) -> list[JobRecord]:
        """Jobs that started and had not finished by `since`: those a window from `since` can account for."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE started_at IS NOT NULL AND (finished_at IS NULL OR "
                                    "finished_at > ?) ORDER BY submitted_at, id", (since,)).fetchall()
        return [self._job_record(r) for r in rows]

    def unassessed_finished_jobs(self, limit: int) -> list[JobRecord]:
        """Finished jobs that ran and have no `job_usage` row yet, the earliest finished first."""
        terminal = [s.value for s in JobState if s.terminal]
        with self._lock:
            rows = self._db.execute(
                f"SELECT jobs.* FROM jobs LEFT JOIN job_usage ON job_usage.job_id = jobs.id WHERE job_usage.job_id "
                f"IS NULL AND jobs.started_at IS NOT NULL AND jobs.state IN ({','.join('?' * len(terminal))}) "
                "ORDER BY jobs.finished_at, jobs.id LIMIT ?", [*terminal, limit]).fetchall()
        return [self._job_record(r) for r in rows]

    def finished_runs(self, limit: int = 5000) -> list[tuple[str, str, float, float]]:
        """(team, name, expected hours, actual hours) of the latest succeeded runs, newest first.

        Only succeeded runs: a failed or cancelled one says nothing about how long the work takes.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT team, name, COALESCE(json_extract(spec, '$.placement.expected_hours'), 1.0) AS expected, "
                "(finished_at - started_at) / 3600.0 AS actual FROM jobs WHERE state = ? AND service IS NULL "
                "AND started_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY finished_at DESC, id LIMIT ?",
                (JobState.SUCCEEDED.value, limit)).fetchall()
        return [(r["team"], r["name"], float(r["expected"]), float(r["actual"])) for r in rows]

    def finished_runs_mark(self) -> tuple[int, float | None]:
        """(succeeded jobs, the latest finish among them): it changes whenever a run succeeds, so `finished_runs`
        is unchanged while it is (read from the `jobs_finished` index alone: no row of the table is visited)."""
        with self._lock:
            count, latest = self._db.execute("SELECT COUNT(*), MAX(finished_at) FROM jobs WHERE state = ?",
                                             (JobState.SUCCEEDED.value,)).fetchone()
        return count, latest

    def counts_by_state(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: r[1] for r in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def set_pending_reasons(self, reasons: dict[str, tuple[ReasonCode | str, str]], now: float) -> None:
        """The latest round's reason for each job it left pending (code, message)."""
        with self._tx() as db:
            db.executemany("UPDATE jobs SET reason_code = ?, reason = ?, updated_at = ? WHERE id = ? AND state = ?",
                           [(str(code), message, now, job_id, JobState.PENDING.value)
                            for job_id, (code, message) in reasons.items()])

    def update_job(self, job_id: str, now: float, change: JobChange, *, event: str, detail: str = "") -> None:
        """Change a job's fields and log an event, in one transaction."""
        with self._tx() as db:
            apply_change(db, self._sealer, job_id, change, now)
            add_event(db, job_id, now, event, detail)

    def add_events(self, events: Iterable[tuple[str, str, str]], now: float) -> None:
        """Log (job id, kind, detail) events in one transaction."""
        with self._tx() as db:
            db.executemany("INSERT INTO events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                           [(job_id, now, kind, detail) for job_id, kind, detail in events])

    def events(self, job_id: str) -> list[tuple[float, str, str]]:
        with self._lock:
            return [(r["at"], r["kind"], r["detail"]) for r in self._db.execute(
                "SELECT at, kind, detail FROM events WHERE job_id = ? ORDER BY seq", (job_id,))]

    def launch_failures(self, job_id: str) -> int:
        """Failed launches of a job, over its whole life."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM events WHERE job_id = ? AND kind = 'launch-failed'",
                                    (job_id,)).fetchone()[0]
