"""The durable record of the service: jobs, their events, every decision, and spend.

SQLite in WAL mode, one file. Every write is committed before the call returns, so a job is durable before
`submit` acknowledges it and a decision is on disk before the reconciler acts on it. The service keeps no state it
cannot rebuild from here and from the providers.

The tables come in groups, one module each: `schema` (the tables and the migrations of older stores), `jobs`
(jobs, their events, typed `JobChange`s), `decisions` (the intent log), `spend` (the ledger and running totals),
`telemetry` (samples, their compaction, usage checkpoints), `assessments` (finished jobs' figures and
recommendations), `services` and `capacity` (reservations, blocks). `Store` is all of them over one connection;
`protocols` has the small interfaces of the parts. Nothing here imports Ray or SkyPilot.
"""

from __future__ import annotations

from pathlib import Path

from placement.store.assessments import AssessmentTables, JobUsageRecord
from placement.store.capacity import CapacityTables, StoredReservation
from placement.store.decisions import Decision, DecisionLog, Intent
from placement.store.jobs import ACTIVE, KEEP, JobChange, JobReasonCode, JobRecord, JobState, JobTable, NewJob
from placement.store.schema import StoreError, open_database
from placement.store.services import NewService, ServiceRecord, ServiceTable
from placement.store.spend import SpendLedger
from placement.store.telemetry import Compaction, TelemetryTables, UsageCheckpoint


class Store(JobTable, ServiceTable, DecisionLog, SpendLedger, CapacityTables, AssessmentTables, TelemetryTables):
    """A thread-safe SQLite store (one connection, serialised by a lock; WAL lets readers in other processes in):
    every table group over one open file."""

    def __init__(self, path: str | Path, durable: bool = True):
        """`durable=False` (a replay's what-if store): no WAL and no fsync; a crash may lose the file."""
        database = open_database(path, durable)
        super().__init__(database)
        self.path = database.path
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('uid', lower(hex(randomblob(4))))")
        # This store's identity is part of every launch handle, so that two stores sharing a cluster (a reset
        # database, a second service) never mistake each other's work for their own.
        self.uid: str = self._db.execute("SELECT value FROM meta WHERE key = 'uid'").fetchone()[0]
        self.ensure_totals()

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = [
    "ACTIVE", "KEEP", "Compaction", "Decision", "Intent", "JobChange", "JobReasonCode", "JobRecord", "JobState",
    "JobUsageRecord", "NewJob", "NewService", "ServiceRecord", "Store", "StoreError", "StoredReservation",
    "UsageCheckpoint",
]
