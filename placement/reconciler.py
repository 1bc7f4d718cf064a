"""Carries out the core's decisions through providers, and watches what runs (the act side of decide/act).

It records facts (a failed launch with its attempt and error, the block of what
failed with its cool-down) and never decides what follows from them: giving up
on a job after `Failover.max_attempts` failures is the core's
(`placement.solve.decide.give_ups_of`).

Every action follows one order: write the decision (and the job's new state)
to the store, then call the provider, then mark the decision done. A service
killed between the two writes leaves an `intended` decision behind;
`resume()` finishes it. Launches are idempotent by handle, so replaying one
never starts the work twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

from clouds.base import Block, LaunchError, LaunchRequest, Provider, WorkStatus
from clouds.gpus import gpu_memory_gb
from placement.memory_history import OUT_OF_MEMORY, MemoryPeak, facts_key, ran_out_of_memory
from placement.model import Offer, OutcomeCode, Placement, Plan, Tier
from placement.solve.downscale import ActionKind, DownscaleAction
from placement.solve.state import Failover
from placement.store import ACTIVE, Decision, Intent, JobChange, JobRecord, JobState, Store

log = logging.getLogger(__name__)


def handle_for(store_uid: str, job_id: str, attempt: int) -> str:
    """The name of one launch of a job: found again, never duplicated, after a restart."""
    return f"{job_id}-a{attempt}-{store_uid}"


_ENDED = (WorkStatus.SUCCEEDED, WorkStatus.FAILED, WorkStatus.STOPPED)


class Reconciler:
    def __init__(self, store: Store, providers: dict[Tier, Provider], clock: Callable[[], float],
                 on_error: Callable[[str, str], None] = lambda provider, kind: None,
                 offers: Mapping[str, Offer] | None = None, failover: Failover = Failover()):
        """`offers`: the offers launches may name (public and private), by id: what to launch, what to block."""
        self.store = store
        self.providers = providers
        self.clock = clock
        self.on_error = on_error
        self.offers = offers or {}
        self.failover = failover
        self._said: set[str] = set()  # loud errors already logged, said once each
        self._blocked_now: list[Block] = []  # blocks found while applying the current plan

    # --- acting on a plan ---------------------------------------------------------------------------------

    def apply(self, plan: Plan, records: dict[str, JobRecord]) -> None:
        """Record the whole plan in one transaction, then launch; tiers without a launcher are only recorded."""
        intents, launches = [], []
        for placement in plan.placements:
            record = records[placement.job_id]
            attempt = record.attempt + 1
            provider = self.providers.get(placement.tier)
            if provider is None:
                intents.append(Intent(record.id, attempt, "plan", None, _payload(placement),
                                      _placed_fields(placement, attempt, JobState.PLANNED, None), status="done"))
                continue
            handle = handle_for(self.store.uid, record.id, attempt)
            intents.append(Intent(record.id, attempt, "launch", handle, _payload(placement),
                                  _placed_fields(placement, attempt, JobState.LAUNCHING, handle)))
            launches.append((len(intents) - 1, record, attempt, handle, placement, provider))
        seqs = self.store.record_decisions(intents, self.clock())
        self._blocked_now: list[Block] = []
        launched, superseded = [], []
        for i, record, attempt, handle, placement, provider in launches:
            offer = self.offers.get(placement.offer_id)
            block = next((b for b in self._blocked_now if offer is not None and b.covers(offer)), None)
            if block is not None:  # an earlier launch of this round found the whole scope unusable
                superseded.append(seqs[i])
                self.store.update_job(record.id, self.clock(), JobChange(
                    state=JobState.PENDING, handle=None, nodes=(), tier=None, target=None,
                    reason_code=OutcomeCode.LAUNCH_FAILED, reason=f"{block} failed earlier this round"),
                    event="not-launched", detail=str(block))
            elif self._launch(seqs[i], record, attempt, handle, placement, provider, finish=False):
                launched.append(seqs[i])
        self.store.finish_decisions(launched, "done")
        self.store.finish_decisions(superseded, "superseded")

    def _launch(self, seq: int, record: JobRecord, attempt: int, handle: str, placement: Placement,
                provider: Provider, finish: bool = True) -> bool:
        """Carry out one recorded launch; True if it was made (marked done here unless `finish` is False)."""
        request = LaunchRequest(handle=handle, job_id=record.id, attempt=attempt, placement=placement,
                                spec=record.spec, metadata={
                                    "team": record.team, "priority": record.priority, "tier": placement.tier.value,
                                    "target": placement.target, "usd_per_hour": f"{placement.rate_per_hour:.4f}",
                                    "expected_usd": f"{placement.expected_cost:.2f}", "engine": "placement",
                                    "store": self.store.uid},
                                offer=self.offers.get(placement.offer_id))
        try:
            provider.launch(request)
        except LaunchError as exc:
            self.store.finish_decision(seq, "failed")
            self._launch_failed(record, placement.offer_id, provider, exc)
            return False
        if finish:
            self.store.finish_decision(seq, "done")
        return True

    def _launch_failed(self, record: JobRecord, offer_id: str | None, provider: Provider, error: LaunchError) -> None:
        """Block what failed for a cool-down, then put the job back to pending (the next round's `decide` gives
        up on it once it failed `max_attempts` times); a failure the provider calls final fails the job."""
        now = self.clock()
        self.on_error(provider.name, "launch")
        offer = self.offers.get(offer_id or "")
        block = Block.around(offer, error.scope) if offer is not None and error.scope is not None else None
        if block is not None:
            self.store.add_block(block, now, now + self.failover.cooldown_s, str(error))
            self._blocked_now.append(block)
        if error.loud and str(block) not in self._said:
            self._said.add(str(block))
            log.error("%s: %s (offers under %s are avoided for %.0f s)", provider.name, error, block or "-",
                      self.failover.cooldown_s)
        failures = self.store.launch_failures(record.id) + 1
        if not error.retryable:
            change = JobChange(state=JobState.FAILED, finished_at=now, reason_code=OutcomeCode.LAUNCH_FAILED,
                               reason=str(error))
        else:
            avoided = f"; {block} is avoided for {self.failover.cooldown_s / 60:.0f} min" if block else ""
            change = JobChange(state=JobState.PENDING, reason_code=OutcomeCode.LAUNCH_FAILED,
                               reason=f"launch {failures} failed: {error}{avoided}; the next round tries the next best "
                                      f"offer")
        self.store.update_job(record.id, now, dataclasses.replace(change, handle=None, nodes=(), tier=None, target=None),
                              event="launch-failed", detail=str(error))

    def resume(self) -> None:
        """Finish what a previous life of the service recorded but may not have done."""
        for decision in self.store.open_decisions():
            record = self.store.job(decision.job_id)
            if record is None:
                continue
            if decision.action == "launch" and record.state is JobState.LAUNCHING:
                placement = _placement(decision)
                self._launch(decision.seq, record, decision.attempt, decision.handle, placement,
                             self.providers[placement.tier])
            elif decision.action == "launch" and record.handle == decision.handle:
                self.store.finish_decision(decision.seq, "done")  # observed running (or ended) since
            elif decision.action == "terminate" and decision.handle:
                self.providers[Tier(decision.payload["tier"])].terminate(
                    decision.handle, grace_seconds=decision.payload.get("grace_seconds", 0.0))
                self.store.finish_decision(decision.seq, "done")
            else:
                self.store.finish_decision(decision.seq, "superseded")

    def cancel(self, record: JobRecord, reason: str = "cancelled") -> None:
        if record.state.terminal:
            return
        ended = JobChange(state=JobState.CANCELLED, finished_at=self.clock(), reason_code=None, reason=reason)
        if record.state in ACTIVE and record.handle and record.tier and record.tier in self.providers:
            seq = self.store.record_decision(record.id, record.attempt, "terminate", record.handle,
                                             {"tier": record.tier, "reason": reason}, self.clock(), ended)
            self.providers[record.tier].terminate(record.handle)
            self.store.finish_decision(seq, "done")
        else:
            self.store.update_job(record.id, self.clock(), ended, event="cancelled", detail=reason)

    def downscale(self, actions: list[DownscaleAction]) -> None:
        """Carry out the core's downscaling actions: each is recorded
        with its reason before the work is stopped, gracefully (`grace_seconds` to checkpoint).

        A scaled-down replica ends (cancelled); stopped batch work goes back to pending with the reason,
        and work moved to spot goes back to pending as spot-only, so the next placement finds it a spot offer.
        """
        now = self.clock()
        for action in actions:
            record = self.store.job(action.job_id)
            if record is None or record.state not in ACTIVE or not record.handle or not record.tier:
                continue
            if action.kind is ActionKind.SCALE_DOWN:
                fields = JobChange(state=JobState.CANCELLED, finished_at=now, reason_code=None, reason=action.reason)
            else:
                fields = JobChange(state=JobState.PENDING, handle=None, nodes=(), tier=None, target=None,
                                   reason_code=OutcomeCode.DOWNSCALED, reason=action.reason)
                if action.kind is ActionKind.MOVE_TO_SPOT:
                    spec = dict(record.spec)
                    spec["resources"] = dict(spec.get("resources") or {}) | {"use_spot": True}
                    fields = dataclasses.replace(fields, spec=spec)
            seq = self.store.record_decision(record.id, record.attempt, "terminate", record.handle,
                                             {"tier": record.tier, "reason": action.reason, "downscale": action.kind.value,
                                              "grace_seconds": action.grace_seconds}, now, fields)
            self.providers[record.tier].terminate(record.handle, grace_seconds=action.grace_seconds)
            self.store.finish_decision(seq, "done")

    def migrate(self, plan: Plan, grace_seconds: float) -> None:
        """Move running cloud work back on-prem (`plan.migrations`): each move is recorded, the cloud work is
        stopped gracefully (`grace_seconds` to checkpoint), and the job is launched again, as a new attempt, on
        the on-prem nodes the round kept for it."""
        now = self.clock()
        moved = []
        for move in plan.migrations:
            record = self.store.job(move.job_id)
            if record is None or record.state not in ACTIVE or not record.handle or not record.tier:
                continue
            fields = JobChange(state=JobState.PENDING, handle=None, nodes=(), tier=None, target=None,
                               reason_code=OutcomeCode.MIGRATING, reason=move.reason)
            seq = self.store.record_decision(record.id, record.attempt, "terminate", record.handle,
                                             {"tier": record.tier, "reason": move.reason, "migrate": True,
                                              "to": list(move.nodes), "saves_usd": round(move.saves_usd, 4),
                                              "grace_seconds": grace_seconds}, now, fields)
            self.providers[record.tier].terminate(record.handle, grace_seconds=grace_seconds)
            self.store.finish_decision(seq, "done")
            moved.append(move)
        if moved:
            records = {m.job_id: self.store.job(m.job_id) for m in moved}
            self.apply(dataclasses.replace(plan, placements=tuple(m.placement for m in moved), queued=()), records)

    def preempt(self, plan: Plan, grace_seconds: float) -> None:
        """Carry out `plan.preemptions`: each victim's stop is recorded with its reason (`Preempted(by=JOB,
        gain=$X)`) before it is stopped gracefully (`grace_seconds` to checkpoint) and requeued, its next
        launch a new attempt; then the job that displaced it is launched on the nodes the round chose."""
        now = self.clock()
        starting = []
        for preemption in plan.preemptions:
            records = [self.store.job(v) for v in preemption.victims]
            if any(r is None or r.state not in ACTIVE or not r.handle or not r.tier for r in records):
                continue  # a victim ended or moved since the snapshot: the job waits for the next round
            for record in records:
                fields = JobChange(state=JobState.PENDING, handle=None, nodes=(), tier=None, target=None,
                                   reason_code=OutcomeCode.PREEMPTED, reason=preemption.reason)
                seq = self.store.record_decision(record.id, record.attempt, "terminate", record.handle,
                                                 {"tier": record.tier, "reason": preemption.reason,
                                                  "preempted_by": preemption.job_id,
                                                  "gain_usd": round(preemption.gain_usd, 4),
                                                  "grace_seconds": grace_seconds}, now, fields)
                self.providers[record.tier].terminate(record.handle, grace_seconds=grace_seconds)
                self.store.finish_decision(seq, "done")
            starting.append(preemption)
        if starting:
            records = {p.job_id: self.store.job(p.job_id) for p in starting}
            self.apply(dataclasses.replace(plan, placements=tuple(p.placement for p in starting), queued=()), records)

    # --- watching -----------------------------------------------------------------------------------------

    def observe(self) -> None:
        """Poll providers for active work: record starts, ends, lost nodes; accrue spend."""
        now = self.clock()
        active = self.store.jobs(states=ACTIVE)
        by_tier: dict[Tier, list[JobRecord]] = {}
        for record in active:
            if record.handle and record.tier:
                by_tier.setdefault(record.tier, []).append(record)
        for tier, records in by_tier.items():
            provider = self.providers.get(tier)
            if provider is None:
                continue
            try:
                seen = provider.observe([r.handle for r in records])
            except Exception as exc:  # a provider outage must not stop the loop
                log.warning("observing %s failed: %s", provider.name, exc)
                self.on_error(provider.name, "observe")
                continue
            self._accrue(records, now)
            for record in records:
                observation = seen[record.handle]
                if observation.status is WorkStatus.LAUNCH_FAILED:
                    self._launch_failed(record, record.offer_id, provider,
                                        observation.error or LaunchError(observation.message))
                elif (observation.status is WorkStatus.MISSING and record.state is JobState.LAUNCHING
                      and now - record.updated_at > self.failover.launch_timeout_s):
                    self._launch_failed(record, record.offer_id, provider, LaunchError(
                        f"the launch left no trace in {self.failover.launch_timeout_s / 60:.0f} min"))
                else:
                    self._transition(record, observation.status, observation.message, now)
                    if tier is not Tier.ONPREM and observation.status in _ENDED:
                        provider.terminate(record.handle)  # the end is recorded; stop paying for the machines

    def _accrue(self, records: list[JobRecord], now: float) -> None:
        """What running work spent since its last accrual, one spend row each, in one transaction."""
        running = [r for r in records if r.state is JobState.RUNNING and r.rate_per_hour and r.started_at is not None]
        if not running:
            return
        until = self.store.spend_until_each([r.id for r in running])
        accruals = []
        for record in running:
            since = max(until.get(record.id) or record.started_at, record.started_at)
            if now > since:
                accruals.append((record.id, record.team, record.tier, since, now,
                                 record.rate_per_hour * (now - since) / 3600.0))
        self.store.add_spends(accruals)

    def _transition(self, record: JobRecord, status: WorkStatus, message: str, now: float) -> None:
        if status is WorkStatus.RUNNING and record.state is not JobState.RUNNING:
            self.store.update_job(record.id, now, JobChange(state=JobState.RUNNING, started_at=now),
                                  event="running", detail=message)
        elif status is WorkStatus.SUCCEEDED:
            self.store.update_job(record.id, now, JobChange(state=JobState.SUCCEEDED, finished_at=now,
                                                            reason_code=None, reason=None),
                                  event="succeeded", detail=message)
        elif status is WorkStatus.FAILED and ran_out_of_memory(message):
            self._out_of_memory(record, message, now)
        elif status in (WorkStatus.FAILED, WorkStatus.STOPPED):
            self.store.update_job(record.id, now, JobChange(state=JobState.FAILED, finished_at=now,
                                                            reason_code=OutcomeCode.FAILED,
                                                            reason=brief(message) or status.value),
                                  event=status.value, detail=message)
        elif status is WorkStatus.LOST or (status is WorkStatus.MISSING and record.state is JobState.RUNNING):
            self.store.update_job(record.id, now, JobChange(
                state=JobState.PENDING, handle=None, nodes=(), target=None, tier=None,
                reason_code=OutcomeCode.REQUEUED, reason=f"its node was lost ({message}); placing it again"),
                event="requeued", detail=message)

    def _out_of_memory(self, record: JobRecord, message: str, now: float) -> None:
        """Keep the GPU the run ran out of memory on, then put the job back to pending: the next round places it
        on a GPU with more memory (`placement.memory_history.remember`), or it waits for one."""
        launch = next((d for d in reversed(self.store.decisions(record.id)) if d.action == "launch"), None)
        gpu = launch.payload.get("gpu") if launch is not None else None
        offer = self.offers.get(record.offer_id or "")
        memory = offer.gpu_memory_gb if offer is not None and offer.gpu else (gpu_memory_gb(gpu) if gpu else None)
        facts = None
        try:
            facts = facts_key(record.spec)
        except ValueError:  # a spec stored before its facts were checked: the team and name still match
            log.warning("%s: its gpu_memory facts do not parse; kept by team and name", record.id)
        self.store.record_memory_peak(MemoryPeak(record.id, record.team, record.name, facts, gpu, memory, None, True,
                                                 now), record.attempt)
        on = f"{gpu} ({memory:g} GB per GPU)" if gpu and memory else (gpu or "its GPU")
        self.store.update_job(record.id, now, JobChange(
            state=JobState.PENDING, handle=None, nodes=(), target=None, tier=None, reason_code=OUT_OF_MEMORY,
            reason=f"ran out of GPU memory on {on}; placing it again on a GPU with more memory"),
            event="out-of-memory", detail=brief(message))


def brief(message: str, lines: int = 3, limit: int = 400) -> str:
    """A provider's failure message cut to its first line and last few lines (Ray appends whole logs)."""
    parts = [line for line in message.strip().splitlines() if line.strip()]
    text = "\n".join(parts if len(parts) <= lines + 1 else [parts[0], "...", *parts[-lines:]])
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _payload(placement: Placement) -> dict:
    payload = dataclasses.asdict(placement)
    payload["tier"] = placement.tier.value
    payload["nodes"] = list(placement.nodes)
    return payload


def _placement(decision: Decision) -> Placement:
    fields = dict(decision.payload)
    fields["tier"] = Tier(fields["tier"])
    fields["nodes"] = tuple(fields["nodes"])
    return Placement(**fields)


def _placed_fields(placement: Placement, attempt: int, state: JobState, handle: str | None) -> JobChange:
    return JobChange(state=state, attempt=attempt, tier=placement.tier, target=placement.target,
                     offer_id=placement.offer_id, handle=handle, nodes=placement.nodes,
                     gpus=placement.gpus_per_node, cpus=placement.cpus_per_node,
                     memory_gb=placement.memory_gb_per_node, rate_per_hour=placement.rate_per_hour,
                     reason_code=None, reason=None)
