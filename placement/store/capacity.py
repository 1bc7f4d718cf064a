"""What a round keeps capacity for, or away from: the latest reservations, and offers blocked after failed
launches."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from clouds.base import Block
from placement.model import Tier
from placement.store.tables import TableGroup


@dataclass(frozen=True, slots=True)
class StoredReservation:
    """A recorded reservation, in engine-clock times."""

    job_id: str
    nodes: tuple[str, ...]
    gpu: str | None
    start_at: float
    until: float
    premium_usd: float


class CapacityTables(TableGroup):
    """The reservations and blocks tables."""

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
