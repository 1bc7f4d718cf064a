"""GPU telemetry: raw samples per GPU and per process, their per-minute folds, each node's agent, and the usage
checkpoints of running launches.

The telemetry tables are created on first use, so a store that never sees telemetry stays without them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from clouds.telemetry_samples import AgentStatus, Batch, GpuSample, ProcessSample
from placement.debt import GpuMinute, Usage, fold_minutes
from placement.store.schema import TELEMETRY_SCHEMA
from placement.store.tables import TableGroup


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


class TelemetryTables(TableGroup):
    """The telemetry tables and the usage checkpoints."""

    _telemetry_ready = False

    def _telemetry_db(self) -> sqlite3.Connection:
        """The connection, with the telemetry tables in place (call under the lock)."""
        if not self._telemetry_ready:
            self._db.executescript(TELEMETRY_SCHEMA)
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
