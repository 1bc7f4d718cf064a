"""The intent log: every decision, written with the job's new fields before it is carried out.

A decision's `handle` names the work it starts (`<job>-a<attempt>-<store uid>`): a launch that is retried after
a crash asks the provider for that name first, so nothing is launched twice. `open_decisions` is what a
restarted service must finish.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from placement.store.jobs import JobChange, add_event, apply_change
from placement.store.tables import TableGroup


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
    change: JobChange = field(default_factory=JobChange)
    status: str = "intended"  # "done" for decisions that need no action (a plan for a tier with no launcher)


class DecisionLog(TableGroup):
    """The decisions table; recording one also changes its job and logs a `decided:<action>` event."""

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
                if intent.change != JobChange():
                    apply_change(db, self._sealer, intent.job_id, intent.change, now)
                add_event(db, intent.job_id, now, f"decided:{intent.action}", json.dumps(intent.payload))
        return seqs

    def record_decision(self, job_id: str, attempt: int, action: str, handle: str | None, payload: dict[str, Any],
                        now: float, change: JobChange) -> int:
        """One intended decision and the job's new fields, written together; returns the decision's number."""
        return self.record_decisions([Intent(job_id, attempt, action, handle, payload, change)], now)[0]

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


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(seq=row["seq"], at=row["at"], job_id=row["job_id"], attempt=row["attempt"],
                    action=row["action"], handle=row["handle"], payload=json.loads(row["payload"]),
                    status=row["status"])
