"""The spend ledger: one row per accrual of a job, and running totals per cap scope and UTC day and month."""

from __future__ import annotations

import sqlite3

from placement.model import Tier
from placement.spend import Accrued, Periods, SpendEntry, accrued_from_totals, period_shares, scopes_of
from placement.store.tables import TableGroup

_IDS_PER_QUERY = 500  # job ids bound into one query (SQLite's limit on variables is 999 in older builds)
_TOTALS_READY = "spend_totals_ready"  # meta: the running spend totals cover every spend row


class SpendLedger(TableGroup):
    """The spend and spend_totals tables."""

    def ensure_totals(self) -> None:
        """Add up the running totals once for a store from before them."""
        if self.meta(_TOTALS_READY) is None:
            with self._tx() as db:
                db.execute("DELETE FROM spend_totals")
                for row in db.execute("SELECT team, tier, start, end, usd FROM spend").fetchall():
                    _add_totals(db, *row)
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (_TOTALS_READY,))

    def add_spend(self, job_id: str, team: str, tier: Tier | None, start: float, end: float, usd: float) -> None:
        """One accrual, and the running totals of its scopes' UTC days and months, in one transaction.

        A job with no tier is stored with an empty one and counts towards no total."""
        self.add_spends([(job_id, team, tier, start, end, usd)])

    def add_spends(self, accruals: list[tuple[str, str, Tier | None, float, float, float]]) -> None:
        """Accruals (job, team, tier, start, end, $) and their running totals, in order, in one transaction."""
        if not accruals:
            return
        with self._tx() as db:
            for job_id, team, tier, start, end, usd in accruals:
                tier_text = Tier(tier).value if tier else ""
                db.execute("INSERT INTO spend (job_id, team, tier, start, end, usd) VALUES (?, ?, ?, ?, ?, ?)",
                           (job_id, team, tier_text, start, end, usd))
                _add_totals(db, team, tier_text, start, end, usd)

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

    def spend_until_each(self, job_ids: list[str]) -> dict[str, float]:
        """`spend_until` of each job that has spend, in one query per 500 jobs."""
        until: dict[str, float] = {}
        with self._lock:
            for at in range(0, len(job_ids), _IDS_PER_QUERY):
                chunk = job_ids[at:at + _IDS_PER_QUERY]
                until.update((job_id, end) for job_id, end in self._db.execute(
                    f"SELECT job_id, MAX(end) FROM spend WHERE job_id IN ({','.join('?' * len(chunk))}) "
                    "GROUP BY job_id", chunk) if end is not None)
        return until

    def spend_rows(self, since: float) -> list[tuple[str, str, str, float, float, float]]:
        """(job, team, tier, start, end, usd) of every spend interval ending after `since`."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT job_id, team, tier, start, end, usd FROM spend WHERE end > ? ORDER BY start", (since,))]

    def spent(self, job_id: str) -> float:
        with self._lock:
            return float(self._db.execute("SELECT COALESCE(SUM(usd), 0) FROM spend WHERE job_id = ?",
                                          (job_id,)).fetchone()[0])


def _add_totals(db: sqlite3.Connection, team: str, tier: str, start: float, end: float, usd: float) -> None:
    if not tier:
        return
    entry = SpendEntry("", team, Tier(tier), start, end, usd)
    rows = [(scope, kind, period, share) for kind, period, share in period_shares(entry)
            for scope in scopes_of(team)]
    db.executemany("INSERT INTO spend_totals (scope, kind, start, usd) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT(scope, kind, start) DO UPDATE SET usd = usd + excluded.usd", rows)
