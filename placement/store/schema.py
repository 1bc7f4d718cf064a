"""The store's tables, and the migrations that bring a store written by an earlier version up to them.

`open_database` is the one place a store file is opened: it sets the journal mode, creates what is missing and
adds the columns later versions brought. The telemetry tables are created on first use
(`placement.store.telemetry`), so a store that never sees telemetry stays without them.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from placement.secrets import Sealer

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(state, finished_at);  -- finished_runs_mark, each round
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

TELEMETRY_SCHEMA = """
CREATE TABLE IF NOT EXISTS gpu_samples (      -- clouds.telemetry_samples.GpuSample
    node TEXT NOT NULL, gpu_index INTEGER NOT NULL, t REAL NOT NULL,
    util_gpu_pct REAL NOT NULL, util_mem_pct REAL NOT NULL,
    mem_used_bytes INTEGER NOT NULL, mem_total_bytes INTEGER NOT NULL,
    power_w REAL                                 -- NULL where the board does not report power
);
CREATE INDEX IF NOT EXISTS gpu_samples_t ON gpu_samples(t);
CREATE INDEX IF NOT EXISTS gpu_samples_node_t ON gpu_samples(node, t);  -- a node's window; a GPU's next sample
CREATE TABLE IF NOT EXISTS process_samples (  -- clouds.telemetry_samples.ProcessSample
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

_ADDED_JOB_COLUMNS = ("service", "after_job", "job_group")  # services, pipelines and job groups came later


class StoreError(RuntimeError):
    """The store cannot be opened; the message is one line naming the file."""


@dataclass(frozen=True)
class Database:
    """One open store file: its connection (shared by the table groups, serialised by `lock`) and the sealer of
    the secrets in its specs."""

    path: Path
    connection: sqlite3.Connection
    sealer: Sealer
    lock: threading.RLock = field(default_factory=threading.RLock)


def open_database(path: str | Path, durable: bool = True) -> Database:
    """Open (or create) a store file with every table in place.

    `durable=False` (a replay's what-if store): no WAL and no fsync; a crash may lose the file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        db.row_factory = sqlite3.Row
        if durable:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not just a crash
        else:
            db.execute("PRAGMA journal_mode=MEMORY")
            db.execute("PRAGMA synchronous=OFF")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise StoreError(f"the store {path} is not a SQLite database ({exc})") from None
        raise StoreError(f"cannot write the store {path}: {exc}") from None
    except OSError as exc:
        raise StoreError(f"cannot write the store {path}: {exc.strerror or exc}") from None
    _migrate(db)
    return Database(path, db, Sealer(path.with_name(path.name + ".key")))


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a store written by an earlier version up to the schema: the job columns added since."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    for column in _ADDED_JOB_COLUMNS:
        if column not in columns:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
