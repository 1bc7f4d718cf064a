"""The status page's pieces without Ray: the HTML from the engine's answers, the history it draws, the token."""

from __future__ import annotations

import os
import re

import pytest

from placement.web.auth import PageAuth, own_token
from placement.web.history import History, RoundPoint, SpendPoint
from placement.web.page import PageData, render

NOW = 1_800_000_000.0


def job(**fields) -> dict:
    row = {"id": "j-1", "name": "j", "team": "nlp", "priority": "normal", "state": "pending", "tier": None,
           "target": None, "gpus": None, "usd_per_hour": None, "spent_usd": 0.0, "age_s": 90.0,
           "reason_code": None, "reason": None}
    return {**row, **fields}


def spend_row(scope: str, rate: float, limit: float | None, cap: dict | None, today: float = 0.0) -> dict:
    return {"scope": scope, "usd_per_hour": rate, "today_usd": today, "month_usd": today, "projected_day_usd": today,
            "projected_month_usd": today, "cap": cap, "limit_usd_per_hour": limit, "binding": None, "over": False}


def page(jobs=(), spend=(), rounds=(), history=()) -> str:
    return render(PageData(now=NOW, jobs=list(jobs), spend=list(spend), debt={"teams": [], "telemetry": {}},
                           rounds=list(rounds), spend_history=list(history), history_since=NOW - 600))


def test_values_from_specs_are_escaped():
    html = page(jobs=[job(name="<script>alert(1)</script>", reason_code="OverQuota", reason='a "quoted" <b>')])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a &quot;quoted&quot; &lt;b&gt;" in html


def test_the_queue_lists_pending_jobs_oldest_first_with_their_reasons():
    html = page(jobs=[job(id="young", age_s=10, reason_code="OverQuota", reason="team quota"),
                      job(id="old", age_s=7200, reason_code="WaitingForCapacity", reason="nodes busy"),
                      job(id="runs", state="running", tier="onprem", target="a100-0", gpus=8, usd_per_hour=1.0)])
    pending = re.findall(r'<tr class=pending data-job="([^"]+)">', html)
    assert pending == ["old", "young"]
    assert 'data-reason="WaitingForCapacity"' in html.split('data-job="old"')[1].split("</tr>")[0]
    assert "Queue: 2 pending" in html


def test_running_work_is_summed_by_tier_and_team():
    html = page(jobs=[job(id="a", state="running", tier="onprem", team="vision", gpus=8, usd_per_hour=0.5),
                      job(id="b", state="running", tier="onprem", team="vision", gpus=2, usd_per_hour=0.25),
                      job(id="c", state="running", tier="public", team="vision", gpus=4, usd_per_hour=12.0)])
    onprem = html.split('<tr data-tier="onprem" data-team="vision">')[1].split("</tr>")[0]
    assert re.findall(r"<td class=num>([^<]+)</td>", onprem) == ["2", "10", "$0.75/h"]


@pytest.mark.parametrize(("rate", "level"), [(50.0, ""), (85.0, "warn"), (100.0, "over"), (130.0, "over")])
def test_a_caps_bar_shows_the_share_used_and_warns_from_80_percent(rate, level):
    html = page(spend=[spend_row("global", rate, 100.0, {"usd_per_hour": 100.0})])
    [bar] = re.findall(r'<span class=bar data-scope="global" data-kind="rate" data-share="([\d.]+)".*?'
                       r'<span class="fill ([a-z]*)" style="display:block;width:([\d.]+)%"', html)
    assert float(bar[0]) == pytest.approx(rate / 100.0)
    assert bar[1] == level
    assert float(bar[2]) == pytest.approx(min(rate, 100.0))  # a bar never overflows its box


def test_budgets_get_bars_and_an_uncapped_scope_says_so():
    html = page(spend=[spend_row("nlp", 0.0, 2.0, {"usd_per_day": 50.0}, today=45.0), spend_row("vision", 3.0, None,
                                                                                               None)])
    assert 'data-scope="nlp" data-kind="day" data-share="0.9000"' in html
    assert 'data-scope="nlp" data-kind="month"' not in html  # no month budget: no bar
    assert "no cap; $3.00/h" in html


def test_the_spend_chart_spans_the_last_day_and_rounds_show_newest_first():
    history = [SpendPoint(NOW - 3600, {"global": 5.0}, {"global": 10.0}), SpendPoint(NOW - 60, {"global": 8.0}, {})]
    rounds = [RoundPoint(NOW - 20, 0.5, 0.2, "milp", 3, 1), RoundPoint(NOW - 10, 0.7, 0.25, "greedy", 0, 1)]
    html = page(rounds=rounds, history=history)
    chart = html.split("<figure id=spend-chart>")[1].split("</figure>")[0]
    assert chart.startswith("<svg") and "global cap" in chart and "global $/h" in chart
    methods = re.findall(r"<td>(milp|greedy)</td>", html.split("id=rounds")[1])
    assert methods == ["greedy", "milp"]


def test_history_keeps_one_spend_point_a_minute_for_a_day_and_the_last_rounds():
    history = History(started_at=0.0, rounds=3)
    for i in range(0, 2 * 86400, 10):  # a round every 10 s for two days
        history.add_round(RoundPoint(float(i), 0.1, 0.05, "milp", 0, 0), SpendPoint(float(i), {"global": 1.0}, {}))
    spend = history.spend()
    last = 2 * 86400 - 10.0
    assert len(spend) == 1440  # a day of minutes
    assert spend[0].at >= last - 86400 and {b.at - a.at for a, b in zip(spend, spend[1:])} == {60.0}
    assert [r.at for r in history.rounds()] == [2 * 86400 - 30.0, 2 * 86400 - 20.0, 2 * 86400 - 10.0]


def test_the_pages_own_token_is_private_to_its_owner_and_survives_a_restart(tmp_path):
    path = tmp_path / "state" / "placement.status-token"
    token = own_token(path)
    assert len(token) >= 40 and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert own_token(path) == token
    auth = PageAuth(token)
    assert auth.allows(f"Bearer {token}", None) and auth.allows(None, token)
    assert not auth.allows(None, None) and not auth.allows(f"Bearer {token}x", None)
    assert not auth.allows("Basic abc", None)
    with pytest.raises(ValueError):
        PageAuth("")


@pytest.mark.parametrize(("mode", "expected"), [("token", "0123456789abcdef0123456789abcdef"), ("disabled", "None")])
def test_with_rays_token_auth_on_the_page_takes_the_clusters_token(mode, expected):
    """Ray reads its auth mode and token when a process starts, so each case runs in a fresh interpreter."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "RAY_AUTH_MODE": mode, "RAY_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
           "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", "from placement.web.auth import cluster_token; "
                             "print(cluster_token())"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
