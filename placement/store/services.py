"""Inference services: their sizes and load signals (their replicas are jobs with `service` set)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from placement.store.tables import TableGroup


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


class ServiceTable(TableGroup):
    """The services table; a service and its first replicas are stored together by `JobTable.add_jobs`."""

    def services(self) -> list[ServiceRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM services ORDER BY created_at, id").fetchall()
        return [ServiceRecord(id=r["id"], name=r["name"], team=r["team"], priority=r["priority"],
                              spec=self._sealer.unseal(json.loads(r["spec"])), source=r["source"],
                              min_replicas=r["min_replicas"], max_replicas=r["max_replicas"],
                              target_qps=r["target_qps"], load_qps=r["load_qps"], load_at=r["load_at"])
                for r in rows]

    def set_load(self, service_id: str, qps: float, now: float) -> bool:
        """Record a service's load signal (requests per second over all replicas); False if no such service."""
        with self._tx() as db:
            return db.execute("UPDATE services SET load_qps = ?, load_at = ? WHERE id = ?",
                              (qps, now, service_id)).rowcount > 0
