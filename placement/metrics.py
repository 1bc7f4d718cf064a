"""The service's Prometheus metrics, recorded through Ray's metrics agent.

Metrics made with `ray.util.metrics` are exported by the metrics agent of the
node the recording process runs on, on that node's Prometheus endpoint
(`MetricsExportPort` in `ray.nodes()`), with a `ray_` prefix, a `_total`
suffix for counters and `_bucket`/`_sum`/`_count` series for histograms.
`EXPORTED` lists those names; the Grafana dashboard in `configs/dashboards/`
uses only them.

Two Ray 2.60 behaviours shape this module (both observed on these machines):
- a gauge's label set disappears from the endpoint about 20 s after it was
  last set (the agent keeps gauge values for twice the default 10 s report
  interval), so the current values are set again every `REFRESH_SECONDS`,
  whatever the round interval or however long a round takes;
- the agent rebuilds histograms from bucket counts, putting each observation
  at its bucket's midpoint, so a histogram's `_sum` is only approximate: the
  last-value gauges carry the exact round and solve times.

Create `ServiceMetrics` inside the service actor: Ray metrics need a connected
worker, and this module is also imported by the CLI outside Ray.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

from placement.model import Job

REFRESH_SECONDS = 5.0
# Round and solve times: from a trivial round (milliseconds) to a solver at its time limit (a minute or two).
SECONDS_BOUNDARIES = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "placement_pending_jobs": ("Jobs waiting to be placed, by the reason they are not placed", ("reason",)),
    "placement_jobs": ("Jobs known to the service, by state", ("state",)),
    "placement_gpus_allocated": ("GPUs allocated to running work, by tier and team", ("tier", "team")),
    "placement_spend_rate_usd_per_hour": ("$/h of private and public work running now, per cap scope", ("scope",)),
    "placement_spend_cap_usd_per_hour": ("The $/h a scope may spend now: its rate cap, or what its day or month budget leaves (no series: no cap)", ("scope",)),
    "placement_last_round_seconds": ("Duration of the last placement round", ()),
    "placement_last_solve_seconds": ("Solver time of the last placement round", ()),
    "placement_gpus_utilized": ("GPU-equivalents busy now (mean utilization over the latest samples of the GPUs a "
                                "team's jobs hold; 0 where there is no telemetry), by team", ("team",)),
    "placement_debt_usd": ("Computational debt over a trailing window: $ of GPU time allocated and observed idle, "
                           "by team", ("team", "window")),
    "placement_energy_kwh": ("Energy of a team's jobs over a trailing window (measured power where there is "
                             "telemetry, else the GPU's power curve; times PUE)", ("team", "window")),
    "placement_carbon_kg": ("kg CO2e of a team's jobs over a trailing window (energy x the grid's intensity)",
                            ("team", "window")),
    "placement_budget_usd": ("A scope's day or month budget (no series: no budget)", ("scope", "period")),
    "placement_spend_accrued_usd": ("What a scope's private and public work accrued so far this UTC day or month",
                                    ("scope", "period")),
    "placement_spend_projected_usd": ("What a scope will have accrued at the end of the UTC day or month if its "
                                      "work runs on at today's rate", ("scope", "period")),
    "placement_pending_over_max_wait": ("Pending jobs that have waited their max_wait or longer, by team",
                                        ("team",)),
    "placement_team_share": ("A team's share of every team's decayed on-prem and private GPU-hours (fair sharing "
                             "on), 0..1", ("team",)),
    "placement_team_weight_share": ("A team's fair share: its weight over the weights of the teams counted, 0..1",
                                    ("team",)),
    "placement_gpus_borrowed": ("GPUs a team holds of other teams' idle quota, by tier and team", ("tier", "team")),
    "placement_telemetry_report_timestamp_seconds": ("When a node's telemetry agent last reported (Unix time)",
                                                     ("node",)),
}
_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "placement_placements": ("Jobs placed, by tier", ("tier",)),
    "placement_reconciler_errors": ("Failed provider actions of the reconciler", ("provider", "kind")),
    "placement_downscale_actions": ("Work stopped, moved or scaled down to get spend back under a cap, by "
                                    "action and team", ("action", "team")),
    "placement_preemptions": ("Running jobs stopped and requeued to make room for other work, by cause "
                              "(priority: a higher-priority job; reclaim: the owner of the quota it borrowed) and "
                              "the stopped job's team", ("cause", "team")),
}
_HISTOGRAMS: dict[str, str] = {
    "placement_round_seconds": "Duration of a placement round (snapshot, solve, record)",
    "placement_solve_seconds": "Solver time of a placement round",
}

EXPORTED: tuple[str, ...] = (
    *(f"ray_{name}" for name in _GAUGES),
    *(f"ray_{name}_total" for name in _COUNTERS),
    *(f"ray_{name}_{series}" for name in _HISTOGRAMS for series in ("bucket", "sum", "count")),
)
"""Every series name as Prometheus sees it."""


def over_max_wait(jobs: Iterable[Job]) -> dict[str, int]:
    """Pending jobs that have waited their `max_wait` or longer (overdue, as the solver counts them: it then
    prices their wait higher), per team; teams with none are absent."""
    return dict(collections.Counter(j.team for j in jobs
                                    if j.max_wait_hours is not None and j.waited_hours >= j.max_wait_hours))


class ServiceMetrics:
    """The placement service's metrics; one instance per service actor.

    Starts a daemon thread that keeps the gauges' current values alive between
    rounds. Thread-safe: rounds and reconciler errors may come from any thread.
    """

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._gauges = {name: Gauge(name, description, tag_keys=keys) for name, (description, keys) in _GAUGES.items()}
        self._counters = {name: Counter(name, description, tag_keys=keys)
                          for name, (description, keys) in _COUNTERS.items()}
        self._histograms = {name: Histogram(name, description, boundaries=list(SECONDS_BOUNDARIES))
                            for name, description in _HISTOGRAMS.items()}
        # Every label set ever reported per gauge, with its current value (vanished ones: 0, or NaN for caps).
        self._current: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in _GAUGES}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._keep_alive, args=(refresh_seconds,), name="placement-metrics",
                         daemon=True).start()

    def record_round(self, *, round_seconds: float, solve_seconds: float,
                     pending_by_reason: Mapping[str, int],
                     placements_by_tier: Mapping[str, int],
                     gpus_by_tier_team: Mapping[tuple[str, str], float],
                     spend_rate_by_scope: Mapping[str, float],
                     cap_by_scope: Mapping[str, float],
                     jobs_by_state: Mapping[str, int],
                     downscaled_by_action_team: Mapping[tuple[str, str], int] | None = None,
                     preempted_by_cause_team: Mapping[tuple[str, str], int] | None = None) -> None:
        """Record one placement round.

        Dimensions are reason codes, tiers, teams, scopes ("global" or a team) and
        job states; one seen before but missing from this round reads 0. A scope
        absent from `cap_by_scope` has no cap, so no cap series: one that loses its
        cap is set to NaN, which Ray does not export (Grafana would draw a gap),
        rather than 0, which would read as "no spend allowed".
        """
        self._histograms["placement_round_seconds"].observe(round_seconds)
        self._histograms["placement_solve_seconds"].observe(solve_seconds)
        with self._lock:
            self._update("placement_last_round_seconds", {(): round_seconds})
            self._update("placement_last_solve_seconds", {(): solve_seconds})
            self._update("placement_pending_jobs", {(reason,): n for reason, n in pending_by_reason.items()})
            self._update("placement_jobs", {(state,): n for state, n in jobs_by_state.items()})
            self._update("placement_gpus_allocated", gpus_by_tier_team)
            self._update("placement_spend_rate_usd_per_hour",
                         {(scope,): rate for scope, rate in spend_rate_by_scope.items()})
            self._update("placement_spend_cap_usd_per_hour",
                         {(scope,): cap for scope, cap in cap_by_scope.items()}, vanished=math.nan)
        for tier, placed in placements_by_tier.items():
            if placed > 0:  # Ray counters reject increments <= 0
                self._counters["placement_placements"].inc(placed, tags={"tier": tier})
        for (action, team), count in (downscaled_by_action_team or {}).items():
            if count > 0:
                self._counters["placement_downscale_actions"].inc(count, tags={"action": action, "team": team})
        for (cause, team), count in (preempted_by_cause_team or {}).items():
            if count > 0:
                self._counters["placement_preemptions"].inc(count, tags={"cause": cause, "team": team})

    def record_debt(self, *, window: str, utilized_gpus_by_team: Mapping[str, float],
                    debt_usd_by_team: Mapping[str, float], energy_kwh_by_team: Mapping[str, float],
                    carbon_kg_by_team: Mapping[str, float]) -> None:
        """Record the computational debt figures (`Engine.team_debt`): utilization now, and the rest over the
        trailing `window` (a label such as "1h"). A team seen before and missing now reads 0."""
        with self._lock:
            self._update("placement_gpus_utilized", {(team,): gpus for team, gpus in utilized_gpus_by_team.items()})
            for name, values in (("placement_debt_usd", debt_usd_by_team), ("placement_energy_kwh", energy_kwh_by_team),
                                 ("placement_carbon_kg", carbon_kg_by_team)):
                self._update(name, {(team, window): value for team, value in values.items()})

    def record_spend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Record each scope's day and month accruals, projections and budgets (`Engine.spend`'s rows).

        A scope without a budget for a period has no budget series; one that loses its budget reads NaN
        (not exported), as a lost cap does."""
        accrued, projected, budgets = {}, {}, {}
        for row in rows:
            cap = row.get("cap") or {}
            for period, accrued_key, projected_key in (("day", "today_usd", "projected_day_usd"),
                                                       ("month", "month_usd", "projected_month_usd")):
                key = (row["scope"], period)
                accrued[key], projected[key] = row[accrued_key], row[projected_key]
                if cap.get(f"usd_per_{period}") is not None:
                    budgets[key] = cap[f"usd_per_{period}"]
        with self._lock:
            self._update("placement_spend_accrued_usd", accrued)
            self._update("placement_spend_projected_usd", projected)
            self._update("placement_budget_usd", budgets, vanished=math.nan)

    def record_queue(self, over_max_wait_by_team: Mapping[str, int]) -> None:
        """Record how many pending jobs of each team have waited past their max_wait (a team seen before and
        missing now reads 0)."""
        with self._lock:
            self._update("placement_pending_over_max_wait",
                         {(team,): n for team, n in over_max_wait_by_team.items()})

    def record_sharing(self, share_by_team: Mapping[str, tuple[float, float]],
                       borrowed_by_tier_team: Mapping[tuple[str, str], float]) -> None:
        """Record each team's (share, fair share) of owned GPU-hours and the GPUs it borrows (a team seen before
        and missing now reads 0)."""
        with self._lock:
            self._update("placement_team_share", {(team,): s for team, (s, _) in share_by_team.items()})
            self._update("placement_team_weight_share", {(team,): w for team, (_, w) in share_by_team.items()})
            self._update("placement_gpus_borrowed", borrowed_by_tier_team)

    def record_telemetry_agents(self, reported_at_by_node: Mapping[str, float]) -> None:
        """Record when each node's telemetry agent last reported: a silent agent's timestamp stops moving."""
        with self._lock:
            self._update("placement_telemetry_report_timestamp_seconds",
                         {(node,): at for node, at in reported_at_by_node.items()})

    def record_reconciler_error(self, provider: str, kind: str) -> None:
        """Count one failed provider action (`kind`: e.g. "launch", "terminate", "status")."""
        self._counters["placement_reconciler_errors"].inc(tags={"provider": provider, "kind": kind})

    def close(self) -> None:
        """Stop refreshing the gauges (their values then leave the endpoint within ~20 s)."""
        self._closed.set()

    def _update(self, name: str, values: Mapping[tuple[str, ...], float], *, vanished: float = 0.0) -> None:
        """Replace a gauge's values (label sets seen before but absent now get `vanished`) and set them all."""
        current = self._current[name]
        current.update(dict.fromkeys(current, vanished))
        current.update({labels: float(value) for labels, value in values.items()})
        self._set(name)

    def _set(self, name: str) -> None:
        gauge, keys = self._gauges[name], _GAUGES[name][1]
        for labels, value in self._current[name].items():
            gauge.set(value, tags=dict(zip(keys, labels)))

    def _keep_alive(self, interval: float) -> None:
        while not self._closed.wait(interval):
            with self._lock:
                for name in self._current:
                    self._set(name)
