"""The service as a detached, named Ray actor, and how clients find or start it.

The actor restarts itself after a crash (`max_restarts=-1`); its `__init__`
then rebuilds everything from the store and finishes recorded decisions, so
callers only see a pause. It is pinned to the head node, which outlives the
worker nodes it places work on. It is threaded: `status` answers while a round
runs; rounds and cancels take a lock so only one of them acts at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import ray

from placement.metrics import over_max_wait
from placement.service import Engine, RoundReport
from placement.wiring import ServiceConfig
from placement.web.history import History, RoundPoint, SpendPoint
from placement.web.server import StatusPageServer

SERVICE_NAME = "placement-service"
NAMESPACE = "placement"
DEBT_WINDOW_S, DEBT_WINDOW = 3600.0, "1h"  # the dashboard's debt, energy and carbon are over the last hour
PAGE_DEBT_WINDOW_S = 86400.0  # the status page's debt is over the last day
AGENT_IDLE_EXIT_S = 300.0  # a telemetry agent nobody drained for this long has lost its service: it exits
log = logging.getLogger(__name__)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16,
            resources={"node:__internal_head__": 0.001})
class PlacementService:
    def __init__(self, config: ServiceConfig):
        from ray.job_submission import JobSubmissionClient

        from clouds.inventory import load_inventory
        from clouds.offers import DEFAULT_INVENTORY
        from clouds.onprem import RayNodesProvider
        from placement.metrics import ServiceMetrics
        from placement.model import Tier

        self._metrics = ServiceMetrics()
        inventory = load_inventory(config.inventory or DEFAULT_INVENTORY)
        onprem = RayNodesProvider(JobSubmissionClient(dashboard_http(config.dashboard_url)), inventory)
        self._lock = threading.Lock()
        with self._lock:  # recorded decisions are finished by the first round, not here: queries answer at once
            self._engine = Engine(config, {Tier.ONPREM: onprem}, on_error=self._metrics.record_reconciler_error,
                                  resume=False)
        self._resumed = False
        self._telemetry = TelemetryFeed(self._engine.store, config.telemetry_interval_s,
                                        idle_exit_s=max(AGENT_IDLE_EXIT_S, 10 * (config.round_interval_s or 0))) \
            if config.telemetry_interval_s else None
        # Debt figures are exported after a round at most this often: new samples arrive no faster.
        self._debt_every_s = config.telemetry_interval_s or config.round_interval_s or 60.0
        self._debt_exported_at = -float("inf")
        self._history = History(time.time())
        self._page = _status_page(config, self._engine, self._history)
        self._wake = threading.Event()
        if config.round_interval_s:
            threading.Thread(target=self._loop, args=(config.round_interval_s,), daemon=True,
                             name="placement-rounds").start()

    def _loop(self, interval: float) -> None:
        """A round at once (a restarted service finishes what it recorded and places what waits without
        waiting out an interval, however often it is restarted), then one per interval or submit."""
        while True:
            try:
                self.run_round()
            except Exception:  # nothing stops the loop: the next round tries again
                log.exception("placement round failed")
            self._wake.wait(timeout=interval)
            self._wake.clear()

    def run_round(self) -> dict[str, Any]:
        with self._lock:
            if not self._resumed:
                self._engine.reconciler.resume()
                self._resumed = True
            report = self._engine.round()
        self._record(report)
        try:
            self._observe(report)
        except Exception:  # what operators see never stops placement
            log.exception("recording the spend, queue and telemetry metrics failed")
        if self._telemetry is not None:
            try:
                self._telemetry.collect(report.at)
            except Exception:  # telemetry is an observer: it never stops placement
                log.exception("collecting GPU telemetry failed")
        if time.monotonic() - self._debt_exported_at >= self._debt_every_s:
            try:
                self._export_debt()
            except Exception:
                log.exception("exporting computational debt failed")
        return {"placed": len(report.plan.placements), "queued": len(report.plan.queued),
                "seconds": report.seconds, "method": report.plan.stats.method}

    def _record(self, report: RoundReport) -> None:
        downscaled = Counter((a.kind.value, a.team) for a in report.downscaled)
        self._metrics.record_round(
            round_seconds=report.seconds, solve_seconds=report.plan.stats.total_seconds,
            pending_by_reason=report.pending_by_reason, placements_by_tier=report.placed_by_tier,
            gpus_by_tier_team=report.gpus_by_tier_team,
            # a capped scope with nothing running spends 0 (a series, so its ratio to the cap can be taken)
            spend_rate_by_scope={**dict.fromkeys(report.limit_by_scope, 0.0), **report.spend_rate_by_scope},
            cap_by_scope=report.limit_by_scope, jobs_by_state=report.jobs_by_state,
            downscaled_by_action_team=dict(downscaled),
            preempted_by_cause_team=dict(Counter(("reclaim" if p.reclaim else "priority", team)
                                                 for p in report.plan.preemptions for team in p.victim_teams)))
        self._metrics.record_sharing({s.team: (s.share, s.weight) for s in report.shares},
                                     report.borrowed_by_tier_team)

    def _observe(self, report: RoundReport) -> None:
        """What alerts and the status page need beyond the round's own figures."""
        self._metrics.record_spend(self._engine.spend())
        snapshot = self._engine.last_snapshot
        self._metrics.record_queue(over_max_wait(snapshot.jobs if snapshot is not None else ()))
        self._metrics.record_telemetry_agents({status.node: at for status, at in self._engine.store.agent_statuses()})
        stats = report.plan.stats
        self._history.add_round(
            RoundPoint(report.at, report.seconds, stats.total_seconds, stats.method, len(report.plan.placements),
                       len(report.plan.queued)),
            SpendPoint(report.at, dict(report.spend_rate_by_scope), dict(report.limit_by_scope)))

    def status_page(self) -> dict[str, str] | None:
        """The status page's address and the link that logs a browser in; None if the service serves none."""
        return {"url": self._page.url, "link": self._page.link()} if self._page is not None else None

    def _export_debt(self) -> None:
        teams = self._engine.team_debt(DEBT_WINDOW_S)
        self._debt_exported_at = time.monotonic()
        self._metrics.record_debt(
            window=DEBT_WINDOW, utilized_gpus_by_team={t: d.utilized_gpus for t, d in teams.items()},
            debt_usd_by_team={t: d.debt_usd for t, d in teams.items()},
            energy_kwh_by_team={t: d.energy_kwh for t, d in teams.items()},
            carbon_kg_by_team={t: d.carbon_kg for t, d in teams.items()})

    def submit(self, documents: list[dict[str, Any]], batch: str) -> list[str]:
        ids = self._engine.submit(documents, batch)
        self._wake.set()  # new work: place it now rather than at the next tick
        return ids

    def status(self, job_id: str | None = None, team: str | None = None) -> list[dict[str, Any]]:
        return self._engine.status(job_id, team)

    def spend(self, team: str | None = None) -> list[dict[str, Any]]:
        return self._engine.spend(team)

    def report_load(self, service_id: str, qps: float) -> None:
        self._engine.report_load(service_id, qps)
        self._wake.set()

    def explain(self, job_id: str) -> dict[str, Any]:
        return self._engine.explain(job_id)

    def debt(self, team: str | None = None, since_s: float = 7 * 86400, series: bool = False) -> dict[str, Any]:
        return self._engine.debt(team, since_s, series=series)

    def cancel(self, job_ids: list[str]) -> list[str]:
        with self._lock:
            return self._engine.cancel(job_ids)

    def stop_agents(self) -> None:
        """Stop this service's telemetry agents (they are detached: `placement down` asks before it stops it)."""
        if self._telemetry is not None:
            self._telemetry.stop()

    def logs(self, job_id: str) -> str:
        return self._engine.logs(job_id)

    def file_roots(self) -> list[str]:
        """The service host's directories jobs may upload from (the policy's files.allowed_roots), so that the
        CLI can name the file and line of a source the service would refuse."""
        return list(self._engine.policy.files.allowed_roots)

    def store_path(self) -> str:
        return str(self._engine.store.path)

    def launch_secrets(self, handle: str) -> dict[str, str]:
        """The secret values of the job whose current launch is `handle` (asked by its entrypoint,
        placement.secret_exec, over the authenticated cluster); nothing for a finished or unknown launch."""
        from placement.secrets import split_env

        record = self._engine.store.job_by_handle(handle)
        if record is None or record.state.terminal:
            raise ValueError(f"no running launch {handle!r}")
        return split_env(record.spec)[1]

    def pid(self) -> int:
        import os

        return os.getpid()


class TelemetryFeed:
    """One telemetry agent per GPU node of the Ray cluster; each round, what they sampled goes to the store.

    Drains are asynchronous: one still unanswered after `wait_s` (an agent starting up, a busy node)
    is collected next round rather than holding the round up. A node without NVML has an agent that
    says so (stored as its status) and sends nothing.
    """

    def __init__(self, store: Any, interval_s: float, wait_s: float = 2.0, idle_exit_s: float = AGENT_IDLE_EXIT_S):
        self._store = store
        self._interval_s = interval_s
        self._wait_s = wait_s
        self._idle_exit_s = idle_exit_s
        self._agents: dict[str, Any] = {}  # node name -> agent handle
        self._pending: dict[str, tuple[Any, Any]] = {}  # node name -> (drain, status) refs in flight
        self._start_agents()

    def _start_agents(self) -> None:
        """Pinned to their nodes like `clouds.telemetry.start_agent`'s, detached and named after the store and
        the node, so a restarted service finds its agents again (with the readings they buffered meanwhile)
        instead of starting new ones; another service's store never meets them. They do not restart (one
        that died is started anew next round) and exit by themselves once no service drains them."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from clouds.onprem import node_name
        from clouds.telemetry import NvmlSampler, TelemetryAgent

        for node in ray.nodes():
            name = node_name(node)
            if node.get("Alive") and node.get("Resources", {}).get("GPU") and name not in self._agents:
                self._agents[name] = TelemetryAgent.options(
                    name=f"placement-telemetry-{self._store.uid}-{name}", namespace=NAMESPACE, lifetime="detached",
                    get_if_exists=True, max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(name, self._interval_s, max(1, int(3600 / self._interval_s)), NvmlSampler,
                         self._idle_exit_s)

    def stop(self) -> None:
        for agent in self._agents.values():
            ray.kill(agent)
        self._agents.clear()
        self._pending.clear()

    def collect(self, now: float) -> None:
        self._start_agents()  # nodes that joined since
        for name, agent in self._agents.items():
            if name not in self._pending:
                self._pending[name] = (agent.drain.remote(), agent.status.remote())
        refs = [ref for pair in self._pending.values() for ref in pair]
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self._wait_s)
        done = set(ready)
        for name, (drain, status) in list(self._pending.items()):
            if drain not in done or status not in done:
                continue
            del self._pending[name]
            try:
                batch, agent_status = ray.get([drain, status])
            except ray.exceptions.RayActorError as exc:  # its node is gone; a new agent starts if it comes back
                log.warning("telemetry agent of %s is gone: %s", name, exc)
                del self._agents[name]
                continue
            if batch.gpus or batch.processes:
                self._store.add_telemetry(batch)
            if batch.dropped:
                log.warning("telemetry of %s dropped %d readings: rounds come slower than its buffer", name,
                            batch.dropped)
            self._store.set_agent_status(agent_status, now)


def _status_page(config: ServiceConfig, engine: Engine, history: History) -> StatusPageServer | None:
    """Serve the status page from the engine's answers (None: `status_port` is None, or it cannot start)."""
    from pathlib import Path

    from placement.web.auth import PageAuth, cluster_token, own_token
    from placement.web.page import PageData, render

    if config.status_port is None:
        return None

    def page() -> str:
        return render(PageData(now=engine.clock(), jobs=engine.status(), spend=engine.spend(),
                               debt=engine.debt(since_s=PAGE_DEBT_WINDOW_S, series=True), rounds=history.rounds(),
                               spend_history=history.spend(), history_since=history.started_at))

    try:
        token = cluster_token() or own_token(Path(config.store_path).with_suffix(".status-token"))
        return StatusPageServer(page, PageAuth(token), config.status_port)
    except OSError:
        log.exception("the status page could not start; the service runs without it")
        return None


def dashboard_http(url: str | None) -> str | None:
    """Ray reports its dashboard as `host:port`; the job client needs the scheme, or it takes it for GCS."""
    if url and "://" not in url:
        return f"http://{url}"
    return url


def find_service() -> Any | None:
    """The running service's handle, or None (Ray must be initialised)."""
    try:
        return ray.get_actor(SERVICE_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


def start_service(config: ServiceConfig) -> Any:
    """Start the service (or return the one already running) as a detached actor."""
    return PlacementService.options(name=SERVICE_NAME, namespace=NAMESPACE, lifetime="detached",
                                    get_if_exists=True).remote(config)
