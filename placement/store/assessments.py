"""What finished jobs showed: their figures over the whole run (computational debt), the recommendations for
similar jobs, and the GPU memory each run held."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from placement.debt import FlagKind, Recommendation
from placement.memory_history import MemoryPeak
from placement.rightsizing import SimilarJobFlag
from placement.store.jobs import JobRecord
from placement.store.tables import TableGroup


@dataclass(frozen=True, slots=True)
class JobUsageRecord:
    """A finished job's figures over its whole run (`placement.debt.Usage`, summed over its nodes)."""

    allocated_gpu_hours: float
    utilized_gpu_hours: float
    debt_usd: float
    energy_kwh: float
    carbon_kg: float


class AssessmentTables(TableGroup):
    """The job_usage, recommendations and memory_peaks tables."""

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
