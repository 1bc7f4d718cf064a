"""Spend accrual at period edges, and what the service's cap guard reads from the store (spend.py, caps.py).

Written against the mutants mutmut left alive (docs/mutation.md): each test states a behaviour of the
accrual, not how it is computed. Times are UTC; the store is the real SQLite store.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from placement.caps import CapGuard
from placement.model import Tier
from placement.solve.downscale import ActionKind
from placement.solve.ledger import GLOBAL
from placement.solve.limits import Accrued, Periods
from placement.spend import SpendEntry, accrued_by_scope, accrued_from_totals
from placement.state_builder import OVER_SINCE
from placement.store import JobChange, JobState, NewJob, Store
from policies.model import Caps, CapSpec, Downscale, Policy
from tests.solver_fixtures import public


def _at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


MID_MARCH = _at(2026, 3, 15, 12)
PERIODS = Periods.at(MID_MARCH)
LAST_MONTH = Periods.at(_at(2026, 2, 10)).month_start


def test_spend_of_an_earlier_day_this_month_counts_for_the_month_only():
    yesterday = SpendEntry("j", "ml", Tier.PUBLIC, _at(2026, 3, 14, 10), _at(2026, 3, 14, 11), 6.0)
    assert accrued_by_scope([yesterday], MID_MARCH) == {GLOBAL: Accrued(0.0, 6.0), "ml": Accrued(0.0, 6.0)}


def test_running_totals_of_one_period_add_up():
    totals = [("ml", "day", PERIODS.day_start, 2.0), ("ml", "day", PERIODS.day_start, 3.0),
              ("ml", "month", PERIODS.month_start, 4.0), ("ml", "month", PERIODS.month_start, 5.0)]
    assert accrued_from_totals(totals, MID_MARCH) == {"ml": Accrued(5.0, 9.0)}


def test_the_day_total_of_the_months_first_day_is_not_this_months_total():
    # On the 15th, the 1st's day total starts where the month does; only the month total counts.
    totals = [("ml", "day", PERIODS.month_start, 7.0), ("ml", "month", PERIODS.month_start, 7.0)]
    assert accrued_from_totals(totals, MID_MARCH) == {"ml": Accrued(0.0, 7.0)}


def test_a_total_of_last_month_counts_nothing_this_month():
    totals = [("ml", "day", PERIODS.day_start, 1.0), ("ml", "month", LAST_MONTH, 50.0)]
    assert accrued_from_totals(totals, MID_MARCH) == {"ml": Accrued(1.0, 0.0)}


NOW = 1_000_000.0  # 1970-01-12 13:46:40 UTC
OFFER = dataclasses.replace(public("p4d", price=32.0), id="aws/us-east-1/p4d/on-demand")


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "p.db")
    yield store
    store.close()


def _running(store: Store, name: str, rate: float = 32.0) -> str:
    (job_id,) = store.add_jobs([NewJob(name, name, "ml", "low", {"name": name}, f"{name}.yaml#1")], NOW, batch=name)
    store.update_job(job_id, NOW, JobChange(state=JobState.RUNNING, attempt=1, tier=Tier.PUBLIC, target="p4d",
                                            offer_id=OFFER.id, handle=f"{job_id}-a1", gpus=8, cpus=16,
                                            rate_per_hour=rate, started_at=NOW - 1800), event="running")
    return job_id


def test_the_spend_report_counts_todays_cloud_spend_per_team_and_leaves_on_prem_out(store):
    store.add_spend("a", "ml", Tier.PUBLIC, NOW - 7200, NOW - 3600, 10.0)  # ended an hour ago, today
    store.add_spend("b", "ml", Tier.ONPREM, NOW - 7200, NOW - 3600, 5.0)  # on-prem spend counts against no cap
    rows = CapGuard(store, {}).report(Policy(name="p"), NOW)
    assert [(r.scope, r.accrued_today, r.accrued_month) for r in rows] == [(GLOBAL, 10.0, 10.0), ("ml", 10.0, 10.0)]
    (team_row,) = CapGuard(store, {}).report(Policy(name="p"), NOW, team="ml")
    assert (team_row.scope, team_row.accrued_today) == ("ml", 10.0)


def test_repricing_work_with_no_recorded_rate_records_the_change_from_nothing(store):
    job_id = _running(store, "train", rate=0.0)
    assert CapGuard(store, {OFFER.id: OFFER}).reprice(NOW) == 1
    assert store.job(job_id).rate_per_hour == pytest.approx(32.0)
    (detail,) = [d for _, kind, d in store.events(job_id) if kind == "repriced"]
    assert detail.startswith("$0.0000/h -> $32.0000/h")


def test_a_scope_over_its_cap_past_the_grace_period_is_downscaled_idle_work_first(store):
    busy, idle = _running(store, "busy"), _running(store, "idle")
    store.set_meta(OVER_SINCE, json.dumps({GLOBAL: NOW - 7200}))  # over for two hours, recorded by a past round
    policy = Policy(name="p", caps=Caps(global_=CapSpec(usd_per_hour=40.0)), downscale=Downscale(grace_seconds=3600))
    check = CapGuard(store, {OFFER.id: OFFER}).check(policy, NOW, idle=frozenset({idle}))
    assert check.rates[GLOBAL] == pytest.approx(64.0)
    assert check.plan is not None
    assert [(a.job_id, a.kind) for a in check.plan.actions] == [(idle, ActionKind.STOP_IDLE)]
    assert busy not in {a.job_id for a in check.plan.actions}
