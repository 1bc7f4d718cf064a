"""The round's `State` (`placement.solve.state`), built from what the service knows, or from files for `plan`.

One builder, so the service, `placement plan` and `placement replay` (which runs
the real service) give the core the same kind of facts and it decides alike.
Reading and translating only: which work is idle, what is pending, what failed,
what is spent, as the store and the providers say; no decision is made here.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from clouds.base import Provider
from placement.debt import JobUsage
from placement.model import Demand, Job, Offer, Running, Tier
from placement.solve.downscale import RunningWork, WorkKind
from placement.solve.fairshare import HORIZON_HALF_LIVES, UsageSpan
from placement.solve.state import Cooldown, Failover, LaunchFailures, Replica, RunningJob, ServiceFacts, State
from placement.spec import duration_hours
from placement.store import ACTIVE, JobRecord, JobState, ServiceRecord, Store
from policies.model import Policy

OVER_SINCE = "caps.over_since"  # store meta key: scope -> when it went over its limit (a restart keeps the grace)
_REPLICA = re.compile(r"-replica-(\d+)-\d+$")  # `<service>-replica-<k>-<store number>`


def offline_state(jobs: Iterable[Job], offers: Iterable[Offer], pool_quotas: Mapping[str, float],
                  now: float) -> State:
    """What `placement plan` knows: the files' jobs and the inventory's and catalogs' offers, nothing running
    and nothing spent yet, at `now`."""
    return State(now=now, pending=tuple(jobs), offers=tuple(offers), pool_quotas=tuple(sorted(pool_quotas.items())))


class StateBuilder:
    """The service's State: pending and running records, live offers, spend, failures and services."""

    def __init__(self, store: Store, providers: Mapping[Tier, Provider], static_offers: tuple[Offer, ...],
                 offers_by_id: Mapping[str, Offer], pool_quotas: tuple[tuple[str, float], ...], failover: Failover):
        self.store = store
        self.providers = providers
        self.static_offers = static_offers
        self.offers_by_id = offers_by_id  # the static offers by id: what running work pays now, its spot twins
        self.pool_quotas = pool_quotas
        self.failover = failover

    def build(self, now: float, policy: Policy, parse: Callable[[list[JobRecord]], Iterable[Job]],
              idle: frozenset[str] = frozenset(), duration_ratios: tuple = ()) -> State:
        """`parse`: the pending records as the core's jobs (the engine's parse cache, rightsizing, measured
        memory); `idle`: running jobs whose GPUs telemetry saw idle over the policy's window."""
        pending = self.store.jobs(states=[JobState.PENDING])
        holding = self.store.jobs(states=[*ACTIVE, JobState.PLANNED])
        services = self.store.services()
        by_id = {s.id: s for s in services}
        running = tuple(running_job(r, policy, by_id, self.offers_by_id, r.id in idle, now) for r in holding if r.tier)
        offers = self.offers(holding)
        return State(
            now=now, pending=tuple(parse(pending)), running=running, offers=offers, pool_quotas=self.pool_quotas,
            cooldowns=self.cooldowns(offers, now), accrued=self.store.accrued(now),
            over_since=json.loads(self.store.meta(OVER_SINCE) or "{}"), failures=self.failures(pending),
            services=tuple(self.service_facts(s) for s in services), duration_ratios=duration_ratios,
            reserved=frozenset(r.job_id for r in self.store.reservations()),
            **self.predecessors(pending), failover=self.failover, usage=self.usage(now, policy))

    def usage(self, now: float, policy: Policy) -> tuple[UsageSpan, ...]:
        """The runs that held owned GPUs within the fair-share window (none when fair sharing is off): the core
        weighs them (`placement.solve.fairshare`). The store keeps one start per job: a run stopped and
        requeued counts no more, and from its latest start once it runs again."""
        if not policy.fair_share.enabled:
            return ()
        since = now - HORIZON_HALF_LIVES * policy.fair_share.half_life_hours * 3600.0
        return tuple(usage_span(r) for r in self.store.jobs_overlapping(since)
                     if r.tier in (Tier.ONPREM, Tier.PRIVATE) and r.gpus)

    def offers(self, holding: list[JobRecord]) -> tuple[Offer, ...]:
        """Each tier's offers: live from its provider (on-prem nodes with what running work holds taken), else
        the static ones (a tier with no provider is still placed: its placements are recorded as planned)."""
        reserved: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for record in holding:
            for node in record.nodes:
                held = reserved[node]
                held[0] += record.gpus or 0.0
                held[1] += record.cpus or 0.0
                held[2] += record.memory_gb or 0.0
        offers: list[Offer] = []
        for tier in Tier:
            provider = self.providers.get(tier)
            offers += provider.offers({k: tuple(v) for k, v in reserved.items()}) if provider else \
                [o for o in self.static_offers if o.tier is tier]
        return tuple(offers)

    def cooldowns(self, offers: tuple[Offer, ...], now: float) -> tuple[Cooldown, ...]:
        """The blocks the reconciler recorded with failed launches, as the offers each covers."""
        return tuple(Cooldown(frozenset(o.id for o in offers if block.covers(o)), until, reason)
                     for block, until, reason in self.store.active_blocks(now))

    def failures(self, pending: list[JobRecord]) -> tuple[LaunchFailures, ...]:
        """Failed launches of pending jobs that were launched at least once, and the last error."""
        facts = []
        for record in pending:
            if record.attempt <= 0:
                continue
            failed = [detail for _, kind, detail in self.store.events(record.id) if kind == "launch-failed"]
            if failed:
                facts.append(LaunchFailures(record.id, len(failed), failed[-1]))
        return tuple(facts)

    def service_facts(self, service: ServiceRecord) -> ServiceFacts:
        every = self.store.jobs(service=service.id)
        replicas = tuple(Replica(r.id, replica_number(r.id), r.state is JobState.PENDING, r.submitted_at)
                         for r in every if not r.state.terminal)
        return ServiceFacts(service.id, service.name, service.min_replicas, service.max_replicas, service.target_qps,
                            service.load_qps, replicas, 1 + max((replica_number(r.id) for r in every), default=0))

    def predecessors(self, pending: list[JobRecord]) -> dict[str, frozenset[str]]:
        """The pipeline predecessors of these jobs that succeeded, and those that failed or were cancelled."""
        succeeded, failed = set(), set()
        for job_id in {r.after for r in pending if r.after}:
            record = self.store.job(job_id)
            if record is not None and record.state is JobState.SUCCEEDED:
                succeeded.add(job_id)
            elif record is None or record.state in (JobState.FAILED, JobState.CANCELLED):
                failed.add(job_id)
        return {"succeeded": frozenset(succeeded), "failed": frozenset(failed)}


def replica_number(job_id: str) -> int:
    """`<service>-replica-<k>-<store number>` -> k (0 for a job id of another shape)."""
    match = _REPLICA.search(job_id)
    return int(match.group(1)) if match else 0


def idle_jobs(usage: Iterable[JobUsage], window_s: float) -> frozenset[str]:
    """Jobs that held GPUs which telemetry watched for most of the window and saw do no work at all."""
    parts: dict[str, list[JobUsage]] = defaultdict(list)
    for part in usage:
        if part.allocation.gpus > 0:
            parts[part.allocation.job_id].append(part)
    return frozenset(job for job, ps in parts.items()
                     if all(p.observed_hours * 3600.0 >= window_s / 2 and p.usage.utilized_gpu_hours <= 0 for p in ps))


def running_job(record: JobRecord, policy: Policy, services: Mapping[str, ServiceRecord],
                offers: Mapping[str, Offer], idle: bool, now: float) -> RunningJob:
    """A record holding capacity as the core weighs it: placement's `Running`, and, if launched, caps' work."""
    pool = record.target.split("/")[0] if record.tier is Tier.PRIVATE and record.target else None
    placed = Running(job_id=record.id, team=record.team, tier=record.tier, offer_id=record.offer_id or "",
                     gpus=(record.gpus or 0.0) * max(len(record.nodes), 1), rate_per_hour=record.rate_per_hour or 0.0,
                     pool=pool, **forecast_facts(record, now, offers))
    if record.state not in ACTIVE:
        return RunningJob(placed)
    return RunningJob(placed, running_work(record, policy, services, offers, idle, now), *billing(record, offers))


def usage_span(record: JobRecord) -> UsageSpan:
    """A started run's owned GPUs over its run so far (all its nodes)."""
    nodes = len(record.nodes) if record.nodes else int(record.spec.get("num_nodes") or 1)
    return UsageSpan(record.team, (record.gpus or 0.0) * nodes, record.started_at or 0.0, record.finished_at)


def billing(record: JobRecord, offers: Mapping[str, Offer]) -> tuple[Offer | None, Demand, int]:
    """The offer a running record pays for (None: not a priced static offer), what it holds per node, its nodes."""
    offer = offers.get(record.offer_id or "") if record.rate_per_hour is not None else None
    demand = Demand(accelerator=offer.gpu, accelerator_count=record.gpus or 0.0, cpus=record.cpus or 0.0,
                    memory_gb=record.memory_gb or 0.0) if offer is not None else Demand()
    return offer, demand, int(record.spec.get("num_nodes") or 1)


def running_work(record: JobRecord, policy: Policy, services: Mapping[str, ServiceRecord],
                 offers: Mapping[str, Offer], idle: bool, now: float) -> RunningWork:
    """What the downscaler weighs of a running record: rate, value of an hour, hours left, kind, spot twin."""
    placement = record.spec.get("placement") or {}
    gpus = (record.gpus or 0.0) * max(len(record.nodes), 1)
    units = gpus if gpus else (record.cpus or 0.0) / policy.cpus_per_gpu_equivalent
    service = services.get(record.service or "")
    spot = spot_twin(record, offers)
    expected = float(placement.get("expected_hours", 1.0))
    ran = (now - record.started_at) / 3600.0 if record.started_at else 0.0
    return RunningWork(
        job_id=record.id, team=record.team, tier=record.tier, rate_per_hour=record.rate_per_hour or 0.0,
        value_per_hour=policy.delay_rate(record.priority) * max(units, 0.1) if record.priority in
        policy.priorities else 0.0,
        remaining_hours=None if service else max(expected - ran, 0.0),
        kind=WorkKind.REPLICA if service else WorkKind.BATCH, service=service.id if service else None,
        min_replicas=service.min_replicas if service else 0,
        spot_ok=bool(placement.get("spot_ok")) and spot is not None and not service,
        spot_rate_per_hour=spot.price_per_hour if spot is not None else None, idle=idle)


def spot_twin(record: JobRecord, offers: Mapping[str, Offer]) -> Offer | None:
    """The same instance type in the same place on the spot market, if the catalog sells it there."""
    offer_id = record.offer_id or ""
    if not offer_id.endswith("/on-demand"):
        return None
    return offers.get(offer_id.removesuffix("/on-demand") + "/spot")


def forecast_facts(record: JobRecord, now: float, offers: Mapping[str, Offer]) -> dict[str, Any]:
    """What the capacity forecast needs of running work: nodes, what it holds on each, run time so far, and
    its expected hours (none for a service replica, which runs until scaled down); and what moving it back
    on-prem needs: whether it can restart (`spot_ok`, `use_spot` or `migratable`, one node only), what a
    restart costs, its GPU type."""
    placement = record.spec.get("placement") or {}
    expected = None if record.service else float(placement.get("expected_hours", 1.0))
    started = record.started_at if record.started_at is not None else now  # planned or starting: the clock starts now
    offer = offers.get(record.offer_id or "")
    restartable = bool(placement.get("migratable") or placement.get("spot_ok")
                       or (record.spec.get("resources") or {}).get("use_spot"))
    return {"name": record.name, "nodes": record.nodes if record.tier is Tier.ONPREM else (),
            "per_node": (record.gpus or 0.0, record.cpus or 0.0, record.memory_gb or 0.0),
            "elapsed_hours": max(now - started, 0.0) / 3600.0, "expected_hours": expected,
            "priority": record.priority, "gpu": offer.gpu if offer is not None else None,
            "migratable": restartable and record.state is JobState.RUNNING and not record.service
            and int(record.spec.get("num_nodes") or 1) == 1 and offer is not None,
            "restart_hours": placement.get("restart_hours"),
            "preemptible": bool(placement.get("preemptible", True)) and record.state is JobState.RUNNING
            and not record.service,
            "max_wait_hours": duration_hours(placement["max_wait"]) if placement.get("max_wait") is not None
            else None}
