"""What operators see, end to end on the shared cluster: the service with Prometheus (its metrics queried
through Prometheus's HTTP API), the status page and the Ray dashboard's Jobs tab opened in headless Chromium.

Prometheus and Chromium are Debian packages (`apt-get install prometheus chromium`, which .ci/run does);
the tests that need one skip, saying so, only where it is not installed. Set PLACEMENT_SCREENSHOT_DIR=docs
to refresh the README's screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import ray
import yaml

from placement import prometheus
from placement.actor import PlacementService
from placement.client import submit
from placement.service import ServiceConfig
from placement.spec import load_specs
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
# (A global day budget of $10,000 leaves at least $416/h at any hour of the UTC day, so the $200/h rate cap is
# the global limit whenever the test runs; $1,000 made it the binding limit until the last 5 hours of the day.)
CAPS = {"global": {"usd_per_hour": 200, "usd_per_day": 10000}, "teams": {"nlp": {"usd_per_day": 50}}}
needs_prometheus = pytest.mark.skipif(prometheus.binary() is None, reason="prometheus is not installed "
                                      "(Debian: apt-get install prometheus; .ci/run installs it)")
needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed "
                                    "(Debian: apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def operator_view(ray_cluster, tmp_path_factory):
    """The service (rounds every second, the status page on a free port) with the demo jobs submitted."""
    tmp = tmp_path_factory.mktemp("operator")
    policy = yaml.safe_load((ROOT / "policies" / "builtin" / "balanced.yaml").read_text())
    (tmp / "capped.yaml").write_text(yaml.safe_dump({**policy, "name": "balanced-capped", "caps": CAPS}))
    config = ServiceConfig(store_path=str(tmp / "placement.db"), round_interval_s=1.0, status_port=0,
                           policy=str(tmp / "capped.yaml"), dashboard_url=ray_cluster.webui_url)
    service = PlacementService.options(name=f"ops-{uuid.uuid4().hex[:6]}", namespace="placement-tests",
                                       lifetime="detached").remote(config)
    page = ray.get(service.status_page.remote(), timeout=60)
    ids = submit(service, load_specs([ROOT / "configs" / "demo"]))
    jobs = {row["name"]: row for row in wait_decided(service, ids)}
    yield service, page, jobs, tmp
    ray.kill(service, no_restart=True)


def wait_decided(service, ids: list[str], timeout: float = 120.0) -> list[dict]:
    deadline = time.time() + timeout
    while True:
        rows = [r for job_id in ids for r in ray.get(service.status.remote(job_id), timeout=30)]
        if all(r["state"] not in ("pending", "launching") or r["reason_code"] for r in rows) \
                or time.time() > deadline:
            return rows
        time.sleep(1)


def worker_id(actor) -> str:
    """The Ray worker id of an actor: the `WorkerId` label its metrics carry."""
    from ray.util.state import list_workers

    pid = ray.get(actor.pid.remote(), timeout=30)
    [worker] = list_workers(filters=[("pid", "=", pid)], detail=False)
    return worker.worker_id


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=60) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@needs_prometheus
def test_prometheus_scrapes_the_services_metrics_from_rays_discovery_file(operator_view):
    service, _, jobs, tmp = operator_view
    session_dir = ray._private.worker.global_worker.node.address_info["session_dir"]
    started = prometheus.start(session_dir, tmp / "prometheus", free_port())
    # The most GPUs the demo holds on-prem at once: the jobs the plan put there start together in one round.
    onprem_gpus = sum(row["gpus"] for row in jobs.values() if row["tier"] == "onprem")
    assert onprem_gpus >= 2, jobs  # demo-residency's two T4s at least
    try:
        # Only this service's series: other tests' services (and their last values) share the cluster.
        mine = f'WorkerId="{worker_id(service)}"'
        queries = {  # over the last minutes: the demo's short jobs may have finished by the time it is scraped
            "pending by reason": f'max by (reason) (max_over_time(ray_placement_pending_jobs'
                                 f'{{reason="InsufficientGpuMemory", {mine}}}[10m]))',
            "spend rate": f'max by (scope) (ray_placement_spend_rate_usd_per_hour{{scope="global", {mine}}})',
            "spend cap": f'max by (scope) (ray_placement_spend_cap_usd_per_hour{{scope="global", {mine}}})',
            "day budget": f'max by (scope, period) (ray_placement_budget_usd{{scope="nlp", period="day", {mine}}})',
            "GPUs by tier": f'sum by (tier) (max_over_time(ray_placement_gpus_allocated'
                            f'{{tier="onprem", {mine}}}[10m]))',
        }
        deadline = time.monotonic() + 90
        while True:
            found = {name: prometheus.query(started.url, expr) for name, expr in queries.items()}
            if all(found.values()) and float(found["GPUs by tier"][0]["value"][1]) >= onprem_gpus \
                    or time.monotonic() > deadline:
                break
            time.sleep(2)
        values = {name: [float(r["value"][1]) for r in result] for name, result in found.items()}
        assert values["pending by reason"] == [1.0], found  # demo-too-big asks for 120 GB GPUs
        assert values["spend rate"] == [0.0]  # on-prem work never counts; the burst is only planned
        assert values["spend cap"] == [200.0]
        assert values["day budget"] == [50.0]
        assert values["GPUs by tier"] == [pytest.approx(onprem_gpus)], jobs
        with urllib.request.urlopen(f"{started.url}/api/v1/rules", timeout=10) as response:
            rules = [rule for group in json.loads(response.read())["data"]["groups"] for rule in group["rules"]]
        assert {r["name"] for r in rules} >= {"PlacementSpendOverCap", "PlacementTelemetryAgentSilent"}
        assert all(r["health"] == "ok" for r in rules), rules  # loaded and evaluated without error
    finally:
        prometheus.stop(started.pid)


def test_status_page_refuses_requests_without_the_token(operator_view):
    _, page, _, _ = operator_view
    assert page["url"].startswith("http://127.0.0.1:")
    token = page["link"].split("?token=")[1]
    assert fetch(page["url"])[0] == 401
    assert fetch(page["url"], {"Authorization": "Bearer not-the-token"})[0] == 401
    assert fetch(page["url"] + "?token=not-the-token")[0] == 403
    status, body, _ = fetch(page["url"], {"Authorization": f"Bearer {token}"})
    assert status == 200 and "<h1>Placement engine</h1>" in body
    status, _, headers = fetch(page["link"])
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"]
    assert fetch(page["url"], {"Cookie": cookie})[0] == 200
    request = urllib.request.Request(page["url"], data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405  # read-only


def chromium(url: str, tmp: Path, screenshot: Path, budget_ms: int = 5000, size: str = "1280,2000") -> str:
    """The DOM after the page's scripts ran for `budget_ms` of virtual time; a screenshot beside it."""
    profile = tmp / f"chromium-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         f"--window-size={size}", f"--virtual-time-budget={budget_ms}", f"--screenshot={screenshot}",
         "--dump-dom", url], capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot_dir(tmp: Path) -> Path:
    wanted = os.environ.get("PLACEMENT_SCREENSHOT_DIR")
    return (ROOT / wanted) if wanted else tmp


@needs_chromium
def test_status_page_in_a_browser_shows_the_queue_caps_and_rounds(operator_view):
    service, page, jobs, tmp = operator_view
    ray.get(service.run_round.remote(), timeout=60)
    shot = screenshot_dir(tmp) / "status-page.png"
    dom = chromium(page["link"], tmp, shot, size="1280,2000")  # the link sets the cookie, then shows the page
    too_big = jobs["demo-too-big"]
    opening = f'<tr class="pending" data-job="{too_big["id"]}">'
    assert opening in dom
    row = dom.split(opening)[1].split("</tr>")[0]
    assert 'data-reason="InsufficientGpuMemory"' in row and "120" in row  # the reason, and why in words
    assert 'class="bar" data-scope="global" data-kind="rate"' in dom  # $/h against the global cap
    assert 'data-scope="nlp" data-kind="day"' in dom  # nlp's day budget
    assert "of $10,000.00 this day" in dom
    assert 'id="spend-chart"' in dom and 'id="rounds"' in dom
    assert 'data-tier="onprem" data-team="vision"' in dom  # running work by tier and team
    assert shot.stat().st_size > 10_000


@needs_chromium
def test_ray_dashboard_jobs_tab_shows_the_jobs_names(ray_cluster, operator_view):
    _, _, jobs, tmp = operator_view
    shot = screenshot_dir(tmp) / "ray-jobs-tab.png"
    from placement.auth import token
    from tests.auth_proxy import authenticating_proxy

    with authenticating_proxy(ray_cluster.webui_url, token()) as dashboard:  # the dashboard wants the token
        dom = chromium(f"{dashboard}/#/jobs", tmp, shot, budget_ms=15000, size="1600,1000")
    residency = jobs["demo-residency"]
    assert residency["tier"] == "onprem", residency
    [row] = [row for row in dom.split("<tr")[1:] if residency["handle"] in row]  # its submission id
    assert ">demo-residency<" in row  # and its name, from the job's metadata, in the Name column
