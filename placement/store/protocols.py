"""The small interfaces of the store's parts, for callers that need only one of them (and for a server database
that would replace SQLite part by part). `Store` satisfies every one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from clouds.telemetry_samples import AgentStatus, Batch, GpuSample, ProcessSample
from placement.model import Tier
from placement.spend import Accrued
from placement.store.decisions import Decision, Intent
from placement.store.jobs import JobChange, JobRecord, JobState


@runtime_checkable
class JobLog(Protocol):
    """Where jobs stand, and their state changes with an event each."""

    def job(self, job_id: str) -> JobRecord | None: ...

    def jobs(self, *, states: Iterable[JobState] | None = None, team: str | None = None,
             service: str | None = None) -> list[JobRecord]: ...

    def update_job(self, job_id: str, now: float, change: JobChange, *, event: str, detail: str = "") -> None: ...

    def events(self, job_id: str) -> list[tuple[float, str, str]]: ...


@runtime_checkable
class IntentLog(Protocol):
    """Decisions written before they are carried out, and marked when they are."""

    def record_decisions(self, intents: list[Intent], now: float) -> list[int]: ...

    def finish_decisions(self, seqs: list[int], status: str) -> None: ...

    def open_decisions(self) -> list[Decision]: ...

    def decisions(self, job_id: str) -> list[Decision]: ...


@runtime_checkable
class SpendBook(Protocol):
    """Accrued spend: per job, per interval, and per cap scope's day and month."""

    def add_spend(self, job_id: str, team: str, tier: Tier | None, start: float, end: float, usd: float) -> None: ...

    def accrued(self, now: float) -> dict[str, Accrued]: ...

    def add_spends(self, accruals: list[tuple[str, str, Tier | None, float, float, float]]) -> None: ...

    def spend_until(self, job_id: str) -> float | None: ...

    def spend_until_each(self, job_ids: list[str]) -> dict[str, float]: ...

    def spend_rows(self, since: float) -> list[tuple[str, str, str, float, float, float]]: ...


@runtime_checkable
class TelemetryStore(Protocol):
    """What agents report, and the raw samples read back."""

    def add_telemetry(self, batch: Batch) -> None: ...

    def set_agent_status(self, status: AgentStatus, now: float) -> None: ...

    def gpu_samples(self, since: float, until: float, nodes: Iterable[str] | None = None) -> list[GpuSample]: ...

    def process_samples(self, since: float, until: float, handles: Iterable[str] | None = None
                        ) -> list[ProcessSample]: ...


__all__ = ["IntentLog", "JobLog", "SpendBook", "TelemetryStore"]
