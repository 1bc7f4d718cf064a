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
from collections import Counter
from typing import Any

import ray

from placement.service import Engine, RoundReport, ServiceConfig

SERVICE_NAME = "placement-service"
NAMESPACE = "placement"
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
        with self._lock:
            self._engine = Engine(config, {Tier.ONPREM: onprem}, on_error=self._metrics.record_reconciler_error)
        self._wake = threading.Event()
        if config.round_interval_s:
            threading.Thread(target=self._loop, args=(config.round_interval_s,), daemon=True,
                             name="placement-rounds").start()

    def _loop(self, interval: float) -> None:
        while True:
            self._wake.wait(timeout=interval)
            self._wake.clear()
            try:
                self.run_round()
            except Exception:  # nothing stops the loop: the next round tries again
                log.exception("placement round failed")

    def run_round(self) -> dict[str, Any]:
        with self._lock:
            report = self._engine.round()
        self._record(report)
        return {"placed": len(report.plan.placements), "queued": len(report.plan.queued),
                "seconds": report.seconds, "method": report.plan.stats.method}

    def _record(self, report: RoundReport) -> None:
        downscaled = Counter((a.kind.value, a.team) for a in report.downscaled)
        self._metrics.record_round(
            round_seconds=report.seconds, solve_seconds=report.plan.stats.total_seconds,
            pending_by_reason=report.pending_by_reason, placements_by_tier=report.placed_by_tier,
            gpus_by_tier_team=report.gpus_by_tier_team, spend_rate_by_scope=report.spend_rate_by_scope,
            cap_by_scope=report.limit_by_scope, jobs_by_state=report.jobs_by_state,
            downscaled_by_action_team=dict(downscaled))

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

    def cancel(self, job_ids: list[str]) -> list[str]:
        with self._lock:
            return self._engine.cancel(job_ids)

    def logs(self, job_id: str) -> str:
        return self._engine.logs(job_id)

    def pid(self) -> int:
        import os

        return os.getpid()


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
