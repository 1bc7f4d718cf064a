"""The job as the core is told it: a stored spec parsed once, rightsized from similar jobs' flags, with the GPU
memory that runs measured.

The engine's rounds read it for pending jobs; `status` and `explain` read it for the notes it carries. A
recommendation or a measured peak that cannot be applied never keeps a job (or a round) from placing.
"""

from __future__ import annotations

import dataclasses
import logging

from placement.memory_history import MemoryHistory, facts_key, remember
from placement.model import Job
from placement.rightsizing import Rightsizing, SimilarJobFlag, rightsize
from placement.spec import spec_from_data, to_job
from placement.store import JobRecord, Store
from policies.model import Policy

log = logging.getLogger(__name__)

SimilarFlags = dict[tuple[str, str], list[SimilarJobFlag]]  # (team, name) -> the flags of its latest flagged run


class JobReader:
    def __init__(self, store: Store, policy: Policy):
        self.store = store
        self.policy = policy
        self._jobs: dict[str, Job] = {}  # parsed jobs by id: the engine's only memory between rounds

    def keep_only(self, job_ids: set[str]) -> None:
        """Forget the parsed jobs but these (the pending ones: only they are parsed again next round)."""
        self._jobs = {job_id: self._jobs[job_id] for job_id in job_ids if job_id in self._jobs}

    def parsed(self, record: JobRecord) -> Job:
        """The job as its spec asks (parsed once while it is pending)."""
        job = self._jobs.get(record.id)
        if job is None:
            loaded = spec_from_data(record.spec, record.source, priority_classes=list(self.policy.priorities))
            job = self._jobs[record.id] = dataclasses.replace(to_job(loaded, record.id), after=record.after,
                                                              group=record.group)
        return job

    def rightsized(self, record: JobRecord, similar: SimilarFlags) -> tuple[Job, tuple[Rightsizing, ...]]:
        """The job with the alternatives its similar jobs' flags bring (`placement.rightsizing.rightsize`), and notes."""
        flags = [f for f in similar.get((record.team, record.name), ()) if f.job_id != record.id]
        if not flags:
            return self.parsed(record), ()
        try:
            return rightsize(self.parsed(record), flags, self.policy.debt, self.policy.debt.apply_recommendations)
        except Exception:  # a recommendation that cannot be applied must not keep the job (or the round) from placing
            log.exception("rightsizing %s from similar jobs' flags failed; placing it as submitted", record.id)
            return self.parsed(record), ()

    def recommendations(self) -> SimilarFlags:
        try:
            return self.store.recommendations()
        except Exception:  # an unreadable row must not stop placement
            log.exception("reading similar jobs' recommendations failed; placing without them")
            return {}

    def job(self, record: JobRecord, now: float, similar: SimilarFlags, peaks: MemoryHistory) -> Job:
        """The pending job as a round places it: rightsized, remembered, and how long it has waited."""
        job, _ = self.rightsized(record, similar)
        job, _ = self.remembered(record, job, peaks)
        return dataclasses.replace(job, waited_hours=max(now - record.submitted_at, 0.0) / 3600.0)

    def remembered(self, record: JobRecord, job: Job, peaks: MemoryHistory) -> tuple[Job, tuple[str, ...]]:
        """The job with the GPU memory its own and similar runs measured (`placement.memory_history.remember`)."""
        try:
            return remember(job, facts_key(record.spec), peaks, self.policy.memory.margin)
        except Exception:  # a bad stored row must not keep the job (or the round) from placing
            log.exception("applying measured GPU memory to %s failed; placing it on its estimate", record.id)
            return job, ()

    def memory_peaks(self) -> MemoryHistory:
        try:
            return MemoryHistory(self.store.memory_peaks())
        except Exception:  # an unreadable row must not stop placement
            log.exception("reading measured GPU memory failed; placing on estimates")
            return MemoryHistory(())
