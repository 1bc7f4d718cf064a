"""The durable record of the service: jobs, their events, every decision, and spend.

SQLite in WAL mode, one file. Every write is committed before the call
returns, so a job is durable before `submit` acknowledges it and a decision is
on disk before the reconciler acts on it. The service keeps no state it cannot
rebuild from here and from the providers.

A decision's `handle` names the work it starts (`<job>-a<attempt>-<store
uid>`): a launch that is retried after a crash asks the provider for that
name first, so nothing is launched twice.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from clouds.base import Block
from clouds.telemetry import AgentStatus, Batch, GpuSample, ProcessSample
from placement.debt import FlagKind, GpuMinute, Recommendation, Usage, fold_minutes
from placement.memory_history import MemoryPeak
from placement.rightsizing import SimilarJobFlag
from placement.model import Tier
from placement.secrets import Sealer
from placement.spend import Accrued, Periods, SpendEntry, accrued_from_totals, period_shares, scopes_of


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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT NOT NULL,
    priority TEXT NOT NULL,
    spec TEXT NOT NULL,              -- the job spec as submitted (JSON)
    source TEXT NOT NULL,            -- file and document it came from
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    batch TEXT,                      -- the client's submission token: a retried submit is not stored twice
    tier TEXT, target TEXT, offer_id TEXT, handle TEXT, nodes TEXT,
    gpus REAL, cpus REAL, memory_gb REAL, rate_per_hour REAL,
    reason_code TEXT, reason TEXT,
    service TEXT,                    -- the service this job is a replica of
    after_job TEXT,                  -- a pipeline's previous task: runs once that job succeeded
    job_group TEXT                   -- a job group (its first job's id): placed together or not at all
);
CREATE TABLE IF NOT EXISTS services (  -- inference services: their replicas are jobs with `service` set
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT NOT NULL,
    priority TEXT NOT NULL,
    spec TEXT NOT NULL,              -- the service's spec, for the replicas it scales up to
    source TEXT NOT NULL,
    batch TEXT NOT NULL,
    min_replicas INTEGER NOT NULL,
    max_replicas INTEGER NOT NULL,
    target_qps REAL,                 -- requests per second one replica serves; NULL: fixed size
    load_qps REAL,                   -- the latest load signal
    load_at REAL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_team ON jobs(team);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch);
CREATE INDEX IF NOT EXISTS jobs_handle ON jobs(handle);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    action TEXT NOT NULL,            -- launch, plan, terminate, requeue
    handle TEXT,
    payload TEXT NOT NULL,           -- JSON: tier, target, offer, nodes, rate, reason, ...
    status TEXT NOT NULL             -- intended, done, failed
);
CREATE INDEX IF NOT EXISTS decisions_open ON decisions(status);
CREATE INDEX IF NOT EXISTS decisions_job ON decisions(job_id, seq);  -- a job's history (explain, its launch)
CREATE TABLE IF NOT EXISTS spend (
    job_id TEXT NOT NULL,
    team TEXT NOT NULL,
    tier TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    usd REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_team ON spend(team);
CREATE INDEX IF NOT EXISTS spend_job ON spend(job_id, end);  -- a job's last accrual, each round
CREATE TABLE IF NOT EXISTS spend_totals (  -- private + public $ per cap scope and UTC day / month, kept by add_spend
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,  -- day | month
    start REAL NOT NULL,  -- the period's start (epoch seconds)
    usd REAL NOT NULL,
    PRIMARY KEY (scope, kind, start)
);
CREATE TABLE IF NOT EXISTS blocks (  -- offers kept away from after a failed launch, until `until`
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    until REAL NOT NULL,
    tier TEXT NOT NULL,
    cloud TEXT, region TEXT, instance_type TEXT,   -- NULL: any
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_until ON blocks(until);
CREATE TABLE IF NOT EXISTS job_usage (  -- a finished job's figures over its whole run, worked out once when it ended
    job_id TEXT PRIMARY KEY,
    allocated_gpu_hours REAL NOT NULL,
    utilized_gpu_hours REAL NOT NULL,
    debt_usd REAL NOT NULL,
    energy_kwh REAL NOT NULL,
    carbon_kg REAL NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage_checkpoints (  -- a running launch's figures from its start up to `until`
    handle TEXT PRIMARY KEY,         -- placement.debt.Allocation.handle (`<handle>@<node>` per node of multi-node jobs)
    job_id TEXT NOT NULL,
    until REAL NOT NULL,
    observed_hours REAL NOT NULL,
    usage TEXT NOT NULL              -- placement.debt.Usage as JSON
);
CREATE TABLE IF NOT EXISTS reservations (  -- the latest round's reservations (placement.model.Reservation)
    job_id TEXT PRIMARY KEY,
    nodes TEXT NOT NULL,             -- JSON list of node names
    gpu TEXT,
    start_at REAL NOT NULL,          -- when the nodes are forecast to free (engine clock)
    until REAL NOT NULL,             -- start_at + the job's expected hours
    premium_usd REAL NOT NULL,       -- what bursting instead would have cost more
    at REAL NOT NULL                 -- the round that made it
);
CREATE TABLE IF NOT EXISTS recommendations (  -- the flags of the latest flagged run of each job (team, name)
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    job_id TEXT NOT NULL,            -- that run
    kind TEXT NOT NULL,              -- placement.debt.FlagKind
    reason TEXT NOT NULL,
    gpu_type TEXT,                   -- what it should ask for: NULL and 0 GPUs is CPU only
    gpus REAL NOT NULL,
    text TEXT NOT NULL,
    ran_on TEXT,                     -- the GPU type the run held
    peak_mem_bytes INTEGER,
    at REAL NOT NULL,
    PRIMARY KEY (team, name, kind)
);
CREATE TABLE IF NOT EXISTS memory_peaks (  -- placement.memory_history.MemoryPeak: a run's GPU memory, beside its facts
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    facts TEXT,                      -- the spec's model facts as canonical JSON; NULL: it gave none
    gpu_type TEXT,                   -- the GPU it ran on
    gpu_memory_gb REAL,
    peak_bytes INTEGER,              -- NVML: the most its processes held on one GPU; NULL: no telemetry
    out_of_memory INTEGER NOT NULL,  -- 1: it ran out of GPU memory there
    at REAL NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX IF NOT EXISTS memory_peaks_similar ON memory_peaks(out_of_memory, team, name, facts, at);
"""


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
    tier: str | None
    target: str | None
    offer_id: str | None
    handle: str | None
    nodes: tuple[str, ...]
    gpus: float | None  # per node
    cpus: float | None
    memory_gb: float | None
    rate_per_hour: float | None
    reason_code: str | None
    reason: str | None
    service: str | None = None
    after: str | None = None  # a pipeline's previous task
    group: str | None = None  # the job group, by its first job's id


@dataclass(frozen=True, slots=True)
class StoredReservation:
    """A recorded reservation, in engine-clock times."""

    job_id: str
    nodes: tuple[str, ...]
    gpu: str | None
    start_at: float
    until: float
    premium_usd: float


@dataclass(frozen=True, slots=True)
class Decision:
    seq: int
    at: float
    job_id: str
    attempt: int
    action: str
    handle: str | None
    payload: dict[str, Any]
    status: str


@dataclass(frozen=True, slots=True)
class Intent:
    """A decision to write before it is carried out, with the job fields it changes."""

    job_id: str
    attempt: int
    action: str  # launch, plan, terminate
    handle: str | None
    payload: dict[str, Any]
    job_fields: dict[str, Any]
    status: str = "intended"  # "done" for decisions that need no action (a plan for a tier with no launcher)


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


@dataclass(frozen=True, slots=True)
class NewService:
    name: str
    team: str
    priority: str
    spec: dict[str, Any]
    source: str
    min_replicas: int
    max_replicas: int
    target_qps: float | None


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    id: str
    name: str
    team: str
    priority: str
    spec: dict[str, Any]
    source: str
    min_replicas: int
    max_replicas: int
    target_qps: float | None
    load_qps: float | None
    load_at: float | None


@dataclass(frozen=True, slots=True)
class JobUsageRecord:
    """A finished job's figures over its whole run (`placement.debt.Usage`, summed over its nodes)."""

    allocated_gpu_hours: float
    utilized_gpu_hours: float
    debt_usd: float
    energy_kwh: float
    carbon_kg: float


@dataclass(frozen=True, slots=True)
class UsageCheckpoint:
    """A launch's figures over its run up to `until` (usage is additive over time: what comes later adds on)."""

    until: float
    usage: Usage
    observed_hours: float


@dataclass(frozen=True, slots=True)
class Compaction:
    """What one `compact_telemetry` did."""

    gpu_samples_folded: int
    minute_rows_written: int
    process_samples_folded: int
    expired_rows: int  # rows of any telemetry table older than the longer retention
    seconds: float


_RECORD_CACHE = 20_000  # decoded job rows kept (`Store._job_record`)
_TOTALS_READY = "spend_totals_ready"  # meta: the running spend totals cover every spend row


class StoreError(RuntimeError):
    """The store cannot be opened; the message is one line naming the file."""


class Store:
    """A thread-safe SQLite store (one connection, serialised by a lock; WAL lets readers in other processes in)."""

    def __init__(self, path: str | Path, durable: bool = True):
        """`durable=False` (a replay's what-if store): no WAL and no fsync; a crash may lose the file."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            if durable:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not just a crash
            else:
                self._db.execute("PRAGMA journal_mode=MEMORY")
                self._db.execute("PRAGMA synchronous=OFF")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise StoreError(f"the store {self.path} is not a SQLite database ({exc})") from None
            raise StoreError(f"cannot write the store {self.path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot write the store {self.path}: {exc.strerror or exc}") from None
        self._sealer = Sealer(self.path.with_name(self.path.name + ".key"))
        self._lock = threading.RLock()
        self._records: dict[tuple, JobRecord] = {}  # row -> its decoded record (`_job_record`)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "service" not in columns:  # a store written before services existed
            self._db.execute("ALTER TABLE jobs ADD COLUMN service TEXT")
        for column in ("after_job", "job_group"):  # a store written before pipelines and job groups
            if column not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('uid', lower(hex(randomblob(4))))")
        # This store's identity is part of every launch handle, so that two stores sharing a cluster (a reset
        # database, a second service) never mistake each other's work for their own.
        self.uid: str = self._db.execute("SELECT value FROM meta WHERE key = 'uid'").fetchone()[0]
        if self.meta(_TOTALS_READY) is None:  # a store from before the running totals: add them up once
            with self._tx() as db:
                db.execute("DELETE FROM spend_totals")
                for row in db.execute("SELECT team, tier, start, end, usd FROM spend").fetchall():
                    self._add_totals(db, *row)
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (_TOTALS_READY,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

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

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _columns(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Job fields as the columns store them: states by value, node lists as JSON."""
        columns = dict(fields)
        if "state" in columns:
            columns["state"] = JobState(columns["state"]).value
        if "nodes" in columns:
            columns["nodes"] = json.dumps(list(columns["nodes"]))
        if "spec" in columns:
            columns["spec"] = json.dumps(self._sealer.seal(columns["spec"]))
        return columns

    def _job(self, row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            id=row["id"], name=row["name"], team=row["team"], priority=row["priority"],
            spec=self._sealer.unseal(json.loads(row["spec"])), source=row["source"], state=JobState(row["state"]),
            attempt=row["attempt"], submitted_at=row["submitted_at"], updated_at=row["updated_at"],
            started_at=row["started_at"], finished_at=row["finished_at"], tier=row["tier"], target=row["target"],
            offer_id=row["offer_id"], handle=row["handle"],
            nodes=tuple(json.loads(row["nodes"])) if row["nodes"] else (), gpus=row["gpus"], cpus=row["cpus"], memory_gb=row["memory_gb"], rate_per_hour=row["rate_per_hour"],
            reason_code=row["reason_code"], reason=row["reason"], service=row["service"], after=row["after_job"],
            group=row["job_group"])

    # --- jobs ---------------------------------------------------------------------------------------------

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

    def set_reservations(self, reservations: Iterable[StoredReservation], now: float) -> None:
        """Replace the recorded reservations with the latest round's."""
        with self._tx() as db:
            db.execute("DELETE FROM reservations")
            db.executemany("INSERT INTO reservations (job_id, nodes, gpu, start_at, until, premium_usd, at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(r.job_id, json.dumps(list(r.nodes)), r.gpu, r.start_at, r.until, r.premium_usd, now)
                            for r in reservations])

    def reservations(self) -> list[StoredReservation]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM reservations ORDER BY start_at, job_id").fetchall()
        return [StoredReservation(r["job_id"], tuple(json.loads(r["nodes"])), r["gpu"], r["start_at"], r["until"],
                                  r["premium_usd"]) for r in rows]

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

    def set_pending_reasons(self, reasons: dict[str, tuple[str, str]], now: float) -> None:
        """The latest round's reason for each job it left pending (code, message)."""
        with self._tx() as db:
            db.executemany("UPDATE jobs SET reason_code = ?, reason = ?, updated_at = ? WHERE id = ? AND state = ?",
                           [(code, message, now, job_id, JobState.PENDING.value)
                            for job_id, (code, message) in reasons.items()])

    def update_job(self, job_id: str, now: float, *, event: str, detail: str = "", **fields: Any) -> None:
        """Change a job's fields and log an event, in one transaction."""
        fields = self._columns(fields)
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {assignments}{', ' if fields else ''}updated_at = ? WHERE id = ?",
                       [*fields.values(), now, job_id])
            db.execute("INSERT INTO events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                       (job_id, now, event, detail))

    def add_events(self, events: Iterable[tuple[str, str, str]], now: float) -> None:
        """Log (job id, kind, detail) events in one transaction."""
        with self._tx() as db:
            db.executemany("INSERT INTO events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                           [(job_id, now, kind, detail) for job_id, kind, detail in events])

    def events(self, job_id: str) -> list[tuple[float, str, str]]:
        with self._lock:
            return [(r["at"], r["kind"], r["detail"]) for r in self._db.execute(
                "SELECT at, kind, detail FROM events WHERE job_id = ? ORDER BY seq", (job_id,))]

    def counts_by_state(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: r[1] for r in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    # --- services -----------------------------------------------------------------------------------------

    def services(self) -> list[ServiceRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM services ORDER BY created_at, id").fetchall()
        return [ServiceRecord(id=r["id"], name=r["name"], team=r["team"], priority=r["priority"],
                              spec=self._sealer.unseal(json.loads(r["spec"])), source=r["source"], min_replicas=r["min_replicas"],
                              max_replicas=r["max_replicas"], target_qps=r["target_qps"], load_qps=r["load_qps"],
                              load_at=r["load_at"]) for r in rows]

    def set_load(self, service_id: str, qps: float, now: float) -> bool:
        """Record a service's load signal (requests per second over all replicas); False if no such service."""
        with self._tx() as db:
            return db.execute("UPDATE services SET load_qps = ?, load_at = ? WHERE id = ?",
                              (qps, now, service_id)).rowcount > 0

    # --- decisions: written before they are carried out ---------------------------------------------------

    def record_decisions(self, intents: list[Intent], now: float) -> list[int]:
        """Write decisions and their jobs' new fields in one transaction; returns the decisions' numbers.

        A whole round's decisions are one commit (one fsync), and still all on disk before any is acted on.
        """
        seqs = []
        with self._tx() as db:
            for intent in intents:
                cursor = db.execute(
                    "INSERT INTO decisions (at, job_id, attempt, action, handle, payload, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (now, intent.job_id, intent.attempt, intent.action, intent.handle,
                                                     json.dumps(intent.payload), intent.status))
                seqs.append(int(cursor.lastrowid))
                fields = self._columns(intent.job_fields)
                if fields:
                    assignments = ", ".join(f"{k} = ?" for k in fields)
                    db.execute(f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?",
                               [*fields.values(), now, intent.job_id])
                db.execute("INSERT INTO events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                           (intent.job_id, now, f"decided:{intent.action}", json.dumps(intent.payload)))
        return seqs

    def record_decision(self, job_id: str, attempt: int, action: str, handle: str | None, payload: dict[str, Any],
                        now: float, job_fields: dict[str, Any]) -> int:
        """One intended decision and the job's new fields, written together; returns the decision's number."""
        return self.record_decisions([Intent(job_id, attempt, action, handle, payload, job_fields)], now)[0]

    def finish_decisions(self, seqs: list[int], status: str) -> None:
        if seqs:
            with self._tx() as db:
                db.executemany("UPDATE decisions SET status = ? WHERE seq = ?", [(status, seq) for seq in seqs])

    def finish_decision(self, seq: int, status: str) -> None:
        self.finish_decisions([seq], status)

    def open_decisions(self) -> list[Decision]:
        """Decisions recorded but not known to be carried out: what a restarted service must finish."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM decisions WHERE status = 'intended' ORDER BY seq").fetchall()
        return [_decision(r) for r in rows]

    def decisions(self, job_id: str) -> list[Decision]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM decisions WHERE job_id = ? ORDER BY seq", (job_id,)).fetchall()
        return [_decision(r) for r in rows]

    # --- spend --------------------------------------------------------------------------------------------

    def add_spend(self, job_id: str, team: str, tier: str, start: float, end: float, usd: float) -> None:
        """One accrual, and the running totals of its scopes' UTC days and months, in one transaction."""
        with self._tx() as db:
            db.execute("INSERT INTO spend (job_id, team, tier, start, end, usd) VALUES (?, ?, ?, ?, ?, ?)",
                       (job_id, team, tier, start, end, usd))
            self._add_totals(db, team, tier, start, end, usd)

    @staticmethod
    def _add_totals(db: sqlite3.Connection, team: str, tier: str, start: float, end: float, usd: float) -> None:
        if not tier:
            return
        entry = SpendEntry("", team, Tier(tier), start, end, usd)
        rows = [(scope, kind, period, share) for kind, period, share in period_shares(entry)
                for scope in scopes_of(team)]
        db.executemany("INSERT INTO spend_totals (scope, kind, start, usd) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(scope, kind, start) DO UPDATE SET usd = usd + excluded.usd", rows)

    def accrued(self, now: float) -> dict[str, Accrued]:
        """Private + public $ accrued per cap scope in `now`'s UTC day and month, from the running totals: a
        round's cost does not grow with the history."""
        periods = Periods.at(now)
        with self._lock:
            rows = self._db.execute("SELECT scope, kind, start, usd FROM spend_totals WHERE (kind = 'day' AND "
                                    "start = ?) OR (kind = 'month' AND start = ?)",
                                    (periods.day_start, periods.month_start)).fetchall()
        return accrued_from_totals([tuple(r) for r in rows], now)

    def spend_until(self, job_id: str) -> float | None:
        """The end of the last accrued spend interval of a job (None before any)."""
        with self._lock:
            return self._db.execute("SELECT MAX(end) FROM spend WHERE job_id = ?", (job_id,)).fetchone()[0]

    # --- failed launches ----------------------------------------------------------------------------------

    def add_block(self, block: Block, now: float, until: float, reason: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO blocks (at, until, tier, cloud, region, instance_type, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (now, until, block.tier.value, block.cloud, block.region, block.instance_type, reason))

    def active_blocks(self, now: float) -> list[tuple[Block, float, str]]:
        """Blocks still in force: (block, until, reason), the latest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM blocks WHERE until > ? ORDER BY seq DESC", (now,)).fetchall()
        return [(Block(Tier(r["tier"]), r["cloud"], r["region"], r["instance_type"]), r["until"], r["reason"])
                for r in rows]

    def launch_failures(self, job_id: str) -> int:
        """Failed launches of a job, over its whole life."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM events WHERE job_id = ? AND kind = 'launch-failed'",
                                    (job_id,)).fetchone()[0]

    def spend_rows(self, since: float) -> list[tuple[str, str, str, float, float, float]]:
        """(job, team, tier, start, end, usd) of every spend interval ending after `since`."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT job_id, team, tier, start, end, usd FROM spend WHERE end > ? ORDER BY start", (since,))]

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                       (key, value, value))

    def spent(self, job_id: str) -> float:
        with self._lock:
            return float(self._db.execute("SELECT COALESCE(SUM(usd), 0) FROM spend WHERE job_id = ?",
                                          (job_id,)).fetchone()[0])

    # --- computational debt of finished jobs, and what similar jobs should ask for --------------------------

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

    def record_assessment(self, record: JobRecord, usage: JobUsageRecord, flags: list[SimilarJobFlag],
                          now: float) -> None:
        """A finished job's figures and, if it was flagged, its flags as the recommendations for its (team, name).

        A flagged run replaces the recommendations of earlier runs; an unflagged one leaves them. The job's usage
        checkpoints go: its figures are final.
        """
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO job_usage (job_id, allocated_gpu_hours, utilized_gpu_hours, debt_usd, "
                       "energy_kwh, carbon_kg, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (record.id, usage.allocated_gpu_hours, usage.utilized_gpu_hours, usage.debt_usd,
                        usage.energy_kwh, usage.carbon_kg, now))
            db.execute("DELETE FROM usage_checkpoints WHERE job_id = ?", (record.id,))
            if flags:
                db.execute("DELETE FROM recommendations WHERE team = ? AND name = ?", (record.team, record.name))
                db.executemany(
                    "INSERT INTO recommendations (team, name, job_id, kind, reason, gpu_type, gpus, text, ran_on, "
                    "peak_mem_bytes, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(record.team, record.name, f.job_id, f.kind.value, f.reason, f.recommendation.gpu_type,
                      f.recommendation.gpus, f.recommendation.text, f.ran_on, f.peak_mem_bytes, now) for f in flags])

    def usage_checkpoints(self, handles: Iterable[str]) -> dict[str, UsageCheckpoint]:
        """The latest checkpoint of those of these launches that have one."""
        return {r["handle"]: UsageCheckpoint(r["until"], Usage(**json.loads(r["usage"])), r["observed_hours"])
                for r in self._rows_where_in("usage_checkpoints", "handle", handles)}

    def set_usage_checkpoints(self, checkpoints: Iterable[tuple[str, str, UsageCheckpoint]]) -> None:
        """Replace launches' checkpoints: (handle, job id, checkpoint) each, in one transaction."""
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO usage_checkpoints (handle, job_id, until, observed_hours, usage) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [(handle, job_id, c.until, c.observed_hours, json.dumps(dataclasses.asdict(c.usage)))
                            for handle, job_id, c in checkpoints])

    def recommendations(self) -> dict[tuple[str, str], list[SimilarJobFlag]]:
        """Per (team, job name): the flags of its latest flagged run, by kind."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM recommendations ORDER BY team, name, kind").fetchall()
        result: dict[tuple[str, str], list[SimilarJobFlag]] = {}
        for r in rows:
            result.setdefault((r["team"], r["name"]), []).append(SimilarJobFlag(
                r["job_id"], FlagKind(r["kind"]), r["reason"], Recommendation(r["gpu_type"], r["gpus"], r["text"]),
                r["ran_on"], r["peak_mem_bytes"]))
        return result

    def record_memory_peak(self, peak: MemoryPeak, attempt: int) -> None:
        """One run's GPU memory (a finished run's measured peak, or the GPU a run ran out of memory on)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO memory_peaks (job_id, attempt, team, name, facts, gpu_type, "
                       "gpu_memory_gb, peak_bytes, out_of_memory, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (peak.job_id, attempt, peak.team, peak.name, peak.facts, peak.gpu_type, peak.gpu_memory_gb,
                        peak.peak_bytes, int(peak.out_of_memory), peak.at))

    def memory_peaks(self) -> list[MemoryPeak]:
        """The latest measured run of each team, name and model facts, and every run that ran out of memory."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM memory_peaks m WHERE out_of_memory = 1 OR at = (SELECT MAX(at) FROM memory_peaks n "
                "WHERE n.out_of_memory = 0 AND n.team = m.team AND n.name = m.name AND n.facts IS m.facts) "
                "ORDER BY at, job_id, attempt").fetchall()
        return [MemoryPeak(r["job_id"], r["team"], r["name"], r["facts"], r["gpu_type"], r["gpu_memory_gb"],
                           r["peak_bytes"], bool(r["out_of_memory"]), r["at"]) for r in rows]

    def job_usage(self, job_ids: Iterable[str]) -> dict[str, JobUsageRecord]:
        """The stored figures of those of these finished jobs that have them."""
        return {r["job_id"]: JobUsageRecord(r["allocated_gpu_hours"], r["utilized_gpu_hours"], r["debt_usd"],
                                            r["energy_kwh"], r["carbon_kg"])
                for r in self._rows_where_in("job_usage", "job_id", job_ids)}

    def _rows_where_in(self, table: str, column: str, values: Iterable[str]) -> list[sqlite3.Row]:
        """The rows of `table` whose `column` is one of `values`, queried in chunks under SQLite's parameter limit."""
        values = list(values)
        rows: list[sqlite3.Row] = []
        with self._lock:
            for first in range(0, len(values), 500):
                chunk = values[first:first + 500]
                rows += self._db.execute(
                    f"SELECT * FROM {table} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        return rows

    # --- GPU telemetry: samples per GPU and per process, and each node's agent -------------------------------
    # Its tables are created on first use, so this section stands apart from the schema above.

    _telemetry_ready = False

    def _telemetry_db(self) -> sqlite3.Connection:
        """The connection, with the telemetry tables in place (call under the lock)."""
        if not self._telemetry_ready:
            self._db.executescript(_TELEMETRY_SCHEMA)
            self._telemetry_ready = True
        return self._db

    def add_telemetry(self, batch: Batch) -> None:
        """One agent's drained batch, in one transaction (one fsync however many samples)."""
        with self._lock:
            self._telemetry_db()
        with self._tx() as db:
            db.executemany("INSERT INTO gpu_samples (node, gpu_index, t, util_gpu_pct, util_mem_pct, mem_used_bytes, "
                           "mem_total_bytes, power_w) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(g.node, g.gpu_index, g.t, g.util_gpu_pct, g.util_mem_pct, g.mem_used_bytes,
                             g.mem_total_bytes, g.power_w) for g in batch.gpus])
            db.executemany("INSERT INTO process_samples (node, gpu_index, t, pid, handle, mem_used_bytes) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           [(p.node, p.gpu_index, p.t, p.pid, p.handle, p.mem_used_bytes) for p in batch.processes])

    def gpu_samples(self, since: float, until: float, nodes: Iterable[str] | None = None) -> list[GpuSample]:
        """GPU samples taken in [since, until], ordered by node, GPU and time; optionally of some nodes only."""
        query, args = "SELECT * FROM gpu_samples WHERE t >= ? AND t <= ?", [since, until]
        if nodes is not None:
            nodes = list(nodes)
            query += f" AND node IN ({','.join('?' * len(nodes))})"
            args += nodes
        with self._lock:
            rows = self._telemetry_db().execute(query + " ORDER BY node, gpu_index, t", args).fetchall()
        return [GpuSample(r["node"], r["gpu_index"], r["t"], r["util_gpu_pct"], r["util_mem_pct"],
                          r["mem_used_bytes"], r["mem_total_bytes"], r["power_w"]) for r in rows]

    @contextmanager
    def consistent_reads(self) -> Iterator[None]:
        """Reads inside see one state of the store: no write (a compaction) lands between them."""
        with self._lock:
            yield

    def oldest_gpu_sample(self) -> float | None:
        """When the oldest raw GPU sample still stored was taken."""
        with self._lock:
            row = self._telemetry_db().execute("SELECT MIN(t) FROM gpu_samples").fetchone()
        return row[0] if row else None

    def gpu_minutes(self, since: float, until: float, nodes: Iterable[str] | None = None) -> list[GpuMinute]:
        """Folded per-minute GPU rows whose holds may reach into [since, until], by node, GPU and time."""
        query, args = "SELECT * FROM gpu_minutes WHERE t >= ? AND t <= ?", [since - 60.0, until]
        if nodes is not None:
            nodes = list(nodes)
            query += f" AND node IN ({','.join('?' * len(nodes))})"
            args += nodes
        with self._lock:
            rows = self._telemetry_db().execute(query + " ORDER BY node, gpu_index, t", args).fetchall()
        return [GpuMinute(r["node"], r["gpu_index"], r["t"], r["seconds"], r["util_gpu_pct"], r["power_w"],
                          r["mem_used_bytes"], r["mem_total_bytes"]) for r in rows]

    def process_samples(self, since: float, until: float, handles: Iterable[str] | None = None
                        ) -> list[ProcessSample]:
        """GPU process samples taken in [since, until], by time; optionally of some launch handles only.

        Where samples were folded, one sample per (node, GPU, launch, minute) stands for them: at the first
        instant of the minute a sample was taken, holding the most memory the launch held at once in it.
        """
        where, args = "t >= ? AND t <= ?", [since, until]
        if handles is not None:
            handles = list(handles)
            where += f" AND handle IN ({','.join('?' * len(handles))})"
            args += handles
        columns = "node, gpu_index, t, pid, handle, mem_used_bytes"
        with self._lock:
            rows = self._telemetry_db().execute(
                f"SELECT {columns} FROM process_samples WHERE {where} UNION ALL "
                f"SELECT {columns} FROM process_minutes WHERE {where} ORDER BY t", args + args).fetchall()
        return [ProcessSample(r["node"], r["gpu_index"], r["t"], r["pid"], r["handle"], r["mem_used_bytes"])
                for r in rows]

    def compact_telemetry(self, fold_before: float, delete_before: float, max_gap_s: float) -> Compaction:
        """Fold raw samples taken before `fold_before` into per-minute rows; delete rows older than `delete_before`.

        GPU samples become `gpu_minutes` rows (`placement.debt.fold_minutes`: the holds of each GPU's
        samples per minute, with mean utilization and power and the largest memory), merged into a row
        an earlier fold began. Process samples keep, per node, GPU, launch and minute, the most memory
        the launch held at once. `fold_before` is taken down to a whole minute. One transaction; rows older
        than `delete_before` are deleted first.
        """
        started = time.perf_counter()
        cutoff = math.floor(fold_before / 60.0) * 60.0
        with self._lock:
            self._telemetry_db()
        with self._tx() as db:
            # Expired rows go first: folding them would be work thrown away.
            expired = sum(db.execute(f"DELETE FROM {table} WHERE t < ?", (delete_before,)).rowcount
                          for table in ("gpu_minutes", "process_minutes", "gpu_samples", "process_samples"))
            raw = [GpuSample(*r) for r in db.execute(
                "SELECT node, gpu_index, t, util_gpu_pct, util_mem_pct, mem_used_bytes, mem_total_bytes, power_w "
                "FROM gpu_samples WHERE t < ? ORDER BY node, gpu_index, t", (cutoff,))]
            gpus = sorted({(g.node, g.gpu_index) for g in raw})
            successors = {}
            for node, gpu in gpus:
                following = db.execute("SELECT t FROM gpu_samples WHERE node = ? AND gpu_index = ? AND t >= ? "
                                       "ORDER BY t LIMIT 1", (node, gpu, cutoff)).fetchone()
                if following is not None:
                    successors[(node, gpu)] = following[0]
            rows, folded_before = fold_minutes(raw, successors, cutoff, max_gap_s)
            db.executemany(
                "INSERT INTO gpu_minutes (node, gpu_index, minute, t, seconds, util_gpu_pct, power_w, mem_used_bytes, "
                "mem_total_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (node, gpu_index, minute) DO UPDATE "
                "SET t = MIN(t, excluded.t), seconds = seconds + excluded.seconds, "
                "util_gpu_pct = (util_gpu_pct * seconds + excluded.util_gpu_pct * excluded.seconds) "
                "/ (seconds + excluded.seconds), "
                "power_w = CASE WHEN power_w IS NULL THEN excluded.power_w WHEN excluded.power_w IS NULL THEN power_w "
                "ELSE (power_w * seconds + excluded.power_w * excluded.seconds) / (seconds + excluded.seconds) END, "
                "mem_used_bytes = MAX(mem_used_bytes, excluded.mem_used_bytes), "
                "mem_total_bytes = excluded.mem_total_bytes",
                [(m.node, m.gpu_index, int(m.t // 60.0), m.t, m.seconds, m.util_gpu_pct, m.power_w, m.mem_used_bytes,
                  m.mem_total_bytes) for m in rows])
            gpu_folded = sum(db.execute("DELETE FROM gpu_samples WHERE node = ? AND gpu_index = ? AND t < ?",
                                        (node, gpu, before)).rowcount for (node, gpu), before in folded_before.items())
            # Per launch, GPU and minute: the most memory held at once (its processes summed per instant).
            db.execute(
                "INSERT INTO process_minutes (node, gpu_index, t, pid, handle, mem_used_bytes) "
                "SELECT node, gpu_index, MIN(t), MIN(pid), handle, MAX(held) FROM ("
                "  SELECT node, gpu_index, t, MIN(pid) AS pid, handle, SUM(mem_used_bytes) AS held "
                "  FROM process_samples WHERE t < ? GROUP BY node, gpu_index, handle, t) "
                "GROUP BY node, gpu_index, handle, CAST(t / 60 AS INTEGER)", (cutoff,))
            process_folded = db.execute("DELETE FROM process_samples WHERE t < ?", (cutoff,)).rowcount
        return Compaction(gpu_folded, len(rows), process_folded, expired, time.perf_counter() - started)

    def set_agent_status(self, status: AgentStatus, now: float) -> None:
        """The latest word of a node's telemetry agent: whether it has NVML, why not, its own cost."""
        with self._lock:
            self._telemetry_db()
        with self._tx() as db:
            db.execute("INSERT INTO telemetry_agents (node, available, reason, interval_s, samples, dropped, "
                       "cpu_s_per_sample, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(node) DO UPDATE "
                       "SET available = excluded.available, reason = excluded.reason, interval_s = excluded.interval_s, "
                       "samples = excluded.samples, dropped = excluded.dropped, "
                       "cpu_s_per_sample = excluded.cpu_s_per_sample, updated_at = excluded.updated_at",
                       (status.node, int(status.available), status.reason, status.interval_s, status.samples,
                        status.dropped, status.cpu_s_per_sample, now))

    def agent_statuses(self) -> list[tuple[AgentStatus, float]]:
        """Every node's latest agent status and when it was reported, by node."""
        with self._lock:
            rows = self._telemetry_db().execute("SELECT * FROM telemetry_agents ORDER BY node").fetchall()
        return [(AgentStatus(r["node"], bool(r["available"]), r["reason"], r["interval_s"], r["samples"],
                             r["dropped"], r["cpu_s_per_sample"]), r["updated_at"]) for r in rows]

    def prune_telemetry(self, before: float) -> int:
        """Drop samples taken before `before`; returns how many GPU and process samples went."""
        with self._lock:
            self._telemetry_db()
        with self._tx() as db:
            return (db.execute("DELETE FROM gpu_samples WHERE t < ?", (before,)).rowcount
                    + db.execute("DELETE FROM process_samples WHERE t < ?", (before,)).rowcount)


_TELEMETRY_SCHEMA = """
CREATE TABLE IF NOT EXISTS gpu_samples (      -- clouds.telemetry.GpuSample
    node TEXT NOT NULL, gpu_index INTEGER NOT NULL, t REAL NOT NULL,
    util_gpu_pct REAL NOT NULL, util_mem_pct REAL NOT NULL,
    mem_used_bytes INTEGER NOT NULL, mem_total_bytes INTEGER NOT NULL,
    power_w REAL                                 -- NULL where the board does not report power
);
CREATE INDEX IF NOT EXISTS gpu_samples_t ON gpu_samples(t);
CREATE INDEX IF NOT EXISTS gpu_samples_node_t ON gpu_samples(node, t);  -- a node's window; a GPU's next sample
CREATE TABLE IF NOT EXISTS process_samples (  -- clouds.telemetry.ProcessSample
    node TEXT NOT NULL, gpu_index INTEGER NOT NULL, t REAL NOT NULL, pid INTEGER NOT NULL,
    handle TEXT,                                 -- the launch it belongs to; NULL: unattributed
    mem_used_bytes INTEGER
);
CREATE INDEX IF NOT EXISTS process_samples_t ON process_samples(t);
CREATE TABLE IF NOT EXISTS gpu_minutes (      -- placement.debt.GpuMinute: raw samples folded per GPU and minute
    node TEXT NOT NULL, gpu_index INTEGER NOT NULL,
    minute INTEGER NOT NULL,                     -- floor(t / 60)
    t REAL NOT NULL,                             -- the first instant its holds cover
    seconds REAL NOT NULL,                       -- how long its holds cover in the minute
    util_gpu_pct REAL NOT NULL, power_w REAL,    -- means over those seconds
    mem_used_bytes INTEGER NOT NULL, mem_total_bytes INTEGER NOT NULL,  -- the largest reading
    PRIMARY KEY (node, gpu_index, minute)
);
CREATE INDEX IF NOT EXISTS gpu_minutes_t ON gpu_minutes(t);
CREATE TABLE IF NOT EXISTS process_minutes (  -- process samples folded per node, GPU, launch and minute
    node TEXT NOT NULL, gpu_index INTEGER NOT NULL, t REAL NOT NULL, pid INTEGER NOT NULL, handle TEXT,
    mem_used_bytes INTEGER                       -- the most the launch held at once in the minute
);
CREATE INDEX IF NOT EXISTS process_minutes_t ON process_minutes(t);
CREATE TABLE IF NOT EXISTS telemetry_agents (
    node TEXT PRIMARY KEY, available INTEGER NOT NULL, reason TEXT, interval_s REAL NOT NULL,
    samples INTEGER NOT NULL, dropped INTEGER NOT NULL, cpu_s_per_sample REAL, updated_at REAL NOT NULL
);
"""


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(seq=row["seq"], at=row["at"], job_id=row["job_id"], attempt=row["attempt"],
                    action=row["action"], handle=row["handle"], payload=json.loads(row["payload"]),
                    status=row["status"])
