"""What every table group shares: the one connection of a store file, its lock, and transactions over it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from placement.store.schema import Database


class TableGroup:
    """A group of tables over a store's one connection. `Store` is all groups over one `Database`; a group alone
    (`SpendLedger(open_database(path))`) works on the same file for a caller that needs only its part."""

    def __init__(self, database: Database):
        self._database = database
        self._db = database.connection
        self._lock = database.lock
        self._sealer = database.sealer

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

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                       (key, value, value))

    @contextmanager
    def consistent_reads(self) -> Iterator[None]:
        """Reads inside see one state of the store: no write (a compaction) lands between them."""
        with self._lock:
            yield
