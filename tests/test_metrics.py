"""Service metrics as Prometheus scrapes them from a Ray node, and the dashboard that charts them."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.request
from pathlib import Path
from unittest import mock

import pytest
import ray
import yaml
from prometheus_client.parser import text_string_to_metric_families

from placement import metrics
from placement.metrics import EXPORTED

DASHBOARDS = Path(__file__).resolve().parent.parent / "configs" / "dashboards"
OWN_LABELS = {"reason", "state", "tier", "team", "scope", "provider", "kind", "action", "cause", "le", "window",
              "period", "node"}

ROUND_1 = dict(round_seconds=0.3, solve_seconds=0.12,
               pending_by_reason={"OverQuota": 3, "WaitingForCapacity": 2},
               placements_by_tier={"onprem": 2, "public": 1, "private": 0},
               gpus_by_tier_team={("onprem", "vision"): 8.0, ("public", "nlp"): 4.0},
               spend_rate_by_scope={"global": 12.5, "nlp": 12.5},
               cap_by_scope={"global": 100.0},
               jobs_by_state={"pending": 5, "running": 3},
               downscaled_by_action_team={("stop", "nlp"): 2, ("scale_down", "nlp"): 0},
               preempted_by_cause_team={("priority", "vision"): 3, ("priority", "nlp"): 0})
ROUND_2 = dict(round_seconds=2.0, solve_seconds=1.5,
               pending_by_reason={"OverQuota": 1},
               placements_by_tier={"public": 2},
               gpus_by_tier_team={("onprem", "vision"): 8.0},
               spend_rate_by_scope={"global": 3.0},
               cap_by_scope={},
               jobs_by_state={"pending": 1, "running": 5})
DEBT_1 = dict(window="1h", utilized_gpus_by_team={"nlp": 1.9, "vision": 0.2},
              debt_usd_by_team={"nlp": 7.4, "vision": 3.2}, energy_kwh_by_team={"nlp": 1.25, "vision": 0.12},
              carbon_kg_by_team={"nlp": 0.5, "vision": 0.03})
DEBT_2 = dict(window="1h", utilized_gpus_by_team={"nlp": 2.5}, debt_usd_by_team={"nlp": 6.0},
              energy_kwh_by_team={"nlp": 1.5}, carbon_kg_by_team={"nlp": 0.6})

SPEND_1 = [{"scope": "global", "usd_per_hour": 12.5, "today_usd": 40.0, "month_usd": 300.0, "projected_day_usd": 210.0,
            "projected_month_usd": 9000.0, "cap": {"usd_per_hour": 100.0, "usd_per_day": 200.0},
            "limit_usd_per_hour": 100.0, "binding": None, "over": False},
           {"scope": "nlp", "usd_per_hour": 12.5, "today_usd": 40.0, "month_usd": 300.0, "projected_day_usd": 210.0,
            "projected_month_usd": 9000.0, "cap": None, "limit_usd_per_hour": None, "binding": None, "over": False}]
SPEND_2 = [{**SPEND_1[0], "cap": {"usd_per_month": 5000.0}, "today_usd": 41.0}]
AGENTS_1 = {"a100-0": 1_800_000_000.0, "t4-0": 1_799_999_000.0}

Series = tuple[str, frozenset[tuple[str, str]]]


def series(name: str, **labels: str) -> Series:
    return name, frozenset(labels.items())


@ray.remote(num_cpus=0)
class Recorder:
    """Stands in for the service actor: owns a ServiceMetrics and records what it is told."""

    def __init__(self) -> None:
        self.service_metrics = metrics.ServiceMetrics()

    def where(self) -> tuple[str, str]:
        context = ray.get_runtime_context()
        return context.get_node_id(), context.get_worker_id()

    def round(self, values: dict) -> None:
        self.service_metrics.record_round(**values)

    def error(self, provider: str, kind: str) -> None:
        self.service_metrics.record_reconciler_error(provider, kind)

    def debt(self, values: dict) -> None:
        self.service_metrics.record_debt(**values)

    def sharing(self, shares: dict, borrowed: dict) -> None:
        self.service_metrics.record_sharing(shares, borrowed)

    def operator(self, spend: list[dict], over_max_wait: dict, agents: dict) -> None:
        self.service_metrics.record_spend(spend)
        self.service_metrics.record_queue(over_max_wait)
        self.service_metrics.record_telemetry_agents(agents)


def scrape(url: str, worker_id: str) -> dict[Series, float]:
    """The placement series one worker exports, keyed by name and the labels this project sets."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("ray_placement_") and sample.labels.get("WorkerId") == worker_id:
                found[series(sample.name, **{k: v for k, v in sample.labels.items() if k in OWN_LABELS})] = sample.value
    return found


def scrape_until(url: str, worker_id: str, expected: dict[Series, float], timeout: float = 20.0) -> dict[Series, float]:
    """Polls the endpoint until every expected series reads its value (or time runs out); returns the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        found = scrape(url, worker_id)
        if all(found.get(key) == value for key, value in expected.items()) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture
def recorder(ray_cluster):
    actor = Recorder.remote()
    node_id, worker_id = ray.get(actor.where.remote(), timeout=60)
    [node] = [n for n in ray.nodes() if n["NodeID"] == node_id]
    yield actor, f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics", worker_id
    ray.kill(actor)


def test_rounds_and_errors_reach_the_nodes_prometheus_endpoint(recorder):
    actor, url, worker_id = recorder
    ray.get([actor.round.remote(ROUND_1), actor.error.remote("aws", "launch"),
             actor.error.remote("aws", "launch"), actor.error.remote("onprem", "terminate"),
             actor.debt.remote(DEBT_1), actor.operator.remote(SPEND_1, {"nlp": 2}, AGENTS_1),
             actor.sharing.remote({"nlp": (0.6, 0.5), "vision": (0.4, 0.5)}, {("onprem", "nlp"): 4.0})], timeout=30)
    expected = {
        series("ray_placement_pending_jobs", reason="OverQuota"): 3.0,
        series("ray_placement_pending_jobs", reason="WaitingForCapacity"): 2.0,
        series("ray_placement_jobs", state="pending"): 5.0,
        series("ray_placement_jobs", state="running"): 3.0,
        series("ray_placement_placements_total", tier="onprem"): 2.0,
        series("ray_placement_placements_total", tier="public"): 1.0,
        series("ray_placement_gpus_allocated", tier="onprem", team="vision"): 8.0,
        series("ray_placement_gpus_allocated", tier="public", team="nlp"): 4.0,
        series("ray_placement_spend_rate_usd_per_hour", scope="global"): 12.5,
        series("ray_placement_spend_rate_usd_per_hour", scope="nlp"): 12.5,
        series("ray_placement_spend_cap_usd_per_hour", scope="global"): 100.0,
        series("ray_placement_last_round_seconds"): 0.3,
        series("ray_placement_last_solve_seconds"): 0.12,
        series("ray_placement_round_seconds_count"): 1.0,
        series("ray_placement_round_seconds_bucket", le="0.25"): 0.0,
        series("ray_placement_round_seconds_bucket", le="0.5"): 1.0,
        series("ray_placement_solve_seconds_bucket", le="0.1"): 0.0,
        series("ray_placement_solve_seconds_bucket", le="0.25"): 1.0,
        series("ray_placement_reconciler_errors_total", provider="aws", kind="launch"): 2.0,
        series("ray_placement_reconciler_errors_total", provider="onprem", kind="terminate"): 1.0,
        series("ray_placement_downscale_actions_total", action="stop", team="nlp"): 2.0,
        series("ray_placement_preemptions_total", cause="priority", team="vision"): 3.0,
        series("ray_placement_gpus_utilized", team="nlp"): 1.9,
        series("ray_placement_gpus_utilized", team="vision"): 0.2,
        series("ray_placement_debt_usd", team="nlp", window="1h"): 7.4,
        series("ray_placement_debt_usd", team="vision", window="1h"): 3.2,
        series("ray_placement_energy_kwh", team="nlp", window="1h"): 1.25,
        series("ray_placement_carbon_kg", team="vision", window="1h"): 0.03,
        series("ray_placement_budget_usd", scope="global", period="day"): 200.0,
        series("ray_placement_spend_accrued_usd", scope="global", period="day"): 40.0,
        series("ray_placement_spend_accrued_usd", scope="nlp", period="month"): 300.0,
        series("ray_placement_spend_projected_usd", scope="global", period="day"): 210.0,
        series("ray_placement_spend_projected_usd", scope="global", period="month"): 9000.0,
        series("ray_placement_pending_over_max_wait", team="nlp"): 2.0,
        series("ray_placement_team_share", team="nlp"): 0.6,
        series("ray_placement_team_weight_share", team="vision"): 0.5,
        series("ray_placement_gpus_borrowed", tier="onprem", team="nlp"): 4.0,
        series("ray_placement_telemetry_report_timestamp_seconds", node="a100-0"): 1_800_000_000.0,
        series("ray_placement_telemetry_report_timestamp_seconds", node="t4-0"): 1_799_999_000.0,
    }
    found = scrape_until(url, worker_id, expected)
    assert {key: found.get(key) for key in expected} == expected
    # Ray's agent rebuilds histograms from bucket counts (each value at its bucket's midpoint): _sum is approximate
    assert 0.25 <= found[series("ray_placement_round_seconds_sum")] <= 0.5
    assert series("ray_placement_placements_total", tier="private") not in found  # zero placements: no increment
    uncapped = found.get(series("ray_placement_spend_cap_usd_per_hour", scope="nlp"))
    assert uncapped is None or math.isnan(uncapped)  # no cap is not a cap of 0
    assert {name for name, _ in found} == set(EXPORTED)
    no_budget = [found.get(series("ray_placement_budget_usd", scope=scope, period=period))
                 for scope, period in (("global", "month"), ("nlp", "day"))]
    assert all(value is None or math.isnan(value) for value in no_budget)  # no budget is not a budget of 0

    ray.get([actor.round.remote(ROUND_2), actor.debt.remote(DEBT_2), actor.operator.remote(SPEND_2, {}, {})],
            timeout=30)
    expected = {
        series("ray_placement_gpus_utilized", team="nlp"): 2.5,
        series("ray_placement_gpus_utilized", team="vision"): 0.0,  # no longer reported: zeroed
        series("ray_placement_debt_usd", team="nlp", window="1h"): 6.0,
        series("ray_placement_debt_usd", team="vision", window="1h"): 0.0,
        series("ray_placement_pending_jobs", reason="OverQuota"): 1.0,
        series("ray_placement_pending_jobs", reason="WaitingForCapacity"): 0.0,  # gone from round 2: zeroed
        series("ray_placement_jobs", state="running"): 5.0,
        series("ray_placement_placements_total", tier="onprem"): 2.0,
        series("ray_placement_placements_total", tier="public"): 3.0,
        series("ray_placement_gpus_allocated", tier="onprem", team="vision"): 8.0,
        series("ray_placement_gpus_allocated", tier="public", team="nlp"): 0.0,
        series("ray_placement_spend_rate_usd_per_hour", scope="global"): 3.0,
        series("ray_placement_spend_rate_usd_per_hour", scope="nlp"): 0.0,
        series("ray_placement_last_round_seconds"): 2.0,
        series("ray_placement_round_seconds_count"): 2.0,
        series("ray_placement_round_seconds_bucket", le="1.0"): 1.0,
        series("ray_placement_round_seconds_bucket", le="2.5"): 2.0,
        series("ray_placement_budget_usd", scope="global", period="month"): 5000.0,
        series("ray_placement_spend_accrued_usd", scope="global", period="day"): 41.0,
        series("ray_placement_spend_accrued_usd", scope="nlp", period="day"): 0.0,  # gone: zeroed
        series("ray_placement_pending_over_max_wait", team="nlp"): 0.0,
    }
    found = scrape_until(url, worker_id, expected)
    assert {key: found.get(key) for key in expected} == expected
    dropped_budget = found.get(series("ray_placement_budget_usd", scope="global", period="day"))
    assert dropped_budget is None or math.isnan(dropped_budget)
    dropped_cap = found.get(series("ray_placement_spend_cap_usd_per_hour", scope="global"))
    assert dropped_cap is None or math.isnan(dropped_cap)  # the cap went away: no stale 100


def test_gauges_are_set_again_between_rounds(monkeypatch):
    """Ray drops a gauge's label set ~20 s after it was last set: the current values, zeros included, are re-set."""
    sets: list[tuple[str, tuple[tuple[str, str], ...], float]] = []

    class FakeGauge:
        def __init__(self, name: str, description: str, tag_keys: tuple[str, ...]) -> None:
            self.name = name

        def set(self, value: float, tags: dict[str, str]) -> None:
            sets.append((self.name, tuple(sorted(tags.items())), value))

    monkeypatch.setattr(metrics, "Gauge", FakeGauge)
    monkeypatch.setattr(metrics, "Counter", lambda *args, **kwargs: mock.Mock())
    monkeypatch.setattr(metrics, "Histogram", lambda *args, **kwargs: mock.Mock())
    service_metrics = metrics.ServiceMetrics(refresh_seconds=0.05)
    service_metrics.record_round(**ROUND_1)
    service_metrics.record_round(**ROUND_2)
    service_metrics.record_debt(**DEBT_1)
    service_metrics.record_debt(**DEBT_2)
    sets.clear()
    time.sleep(0.3)
    service_metrics.close()
    refreshed = {(name, tags): value for name, tags, value in sets}
    assert refreshed[("placement_pending_jobs", (("reason", "OverQuota"),))] == 1.0
    assert refreshed[("placement_pending_jobs", (("reason", "WaitingForCapacity"),))] == 0.0
    assert refreshed[("placement_gpus_allocated", (("team", "nlp"), ("tier", "public")))] == 0.0
    assert refreshed[("placement_last_round_seconds", ())] == 2.0
    assert math.isnan(refreshed[("placement_spend_cap_usd_per_hour", (("scope", "global"),))])
    assert refreshed[("placement_debt_usd", (("team", "nlp"), ("window", "1h")))] == 6.0
    assert refreshed[("placement_gpus_utilized", (("team", "vision"),))] == 0.0
    assert sets.count(("placement_last_round_seconds", (), 2.0)) >= 2  # re-set on a timer, not once

    time.sleep(0.1)  # a refresh already under way when close() was called
    sets.clear()
    time.sleep(0.2)
    assert sets == []


def dashboard_exprs(dashboard: dict) -> list[str]:
    panels = [*dashboard["panels"], *(p for row in dashboard["panels"] for p in row.get("panels", []))]
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])] + variables


def test_dashboard_is_importable_and_charts_only_exported_metrics():
    dashboard = json.loads((DASHBOARDS / "grafana_placement.json").read_text())
    assert dashboard["schemaVersion"] >= 36
    [datasource] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")

    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]

    used = {name for expr in dashboard_exprs(dashboard) for name in re.findall(r"\bray_\w+", expr)}
    assert used <= set(EXPORTED), used - set(EXPORTED)
    # every metric is charted (histograms through their buckets)
    assert {name for name in EXPORTED if not name.endswith(("_sum", "_count"))} <= used


def test_prometheus_config_reads_rays_service_discovery_file():
    from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

    config = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    [files] = [sd["files"] for sd in job["file_sd_configs"]]
    assert files == [f"/tmp/ray/{PROMETHEUS_SERVICE_DISCOVERY_FILE}"]
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["alerts.yml"]  # relative to the config: the shipped rules beside it


def test_over_max_wait_counts_pending_jobs_past_their_max_wait_per_team():
    from placement.model import Demand, Job

    def job(job_id: str, team: str, max_wait: float | None, waited: float) -> Job:
        return Job(id=job_id, name=job_id, team=team, priority="normal", demands=(Demand("A100-80GB", 1),),
                   max_wait_hours=max_wait, waited_hours=waited)

    jobs = [job("a", "nlp", 1.0, 1.5), job("b", "nlp", 1.0, 2.0), job("c", "nlp", 1.0, 0.5),
            job("d", "vision", None, 100.0), job("e", "vision", 2.0, 2.0)]
    assert metrics.over_max_wait(jobs) == {"nlp": 2, "vision": 1}  # no max_wait: never overdue; at it: overdue
