"""Spend accrual per UTC day and month, and budgets turned into $/h limits (placement/spend.py).

Every expected number is worked out by hand in the test from the period
boundaries (hours left in the day or month at a fixed `now`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from placement.model import Running, Tier
from placement.solve.limits import Accrued, CapKind, Periods, effective_rate_limits, rate_caps, rates_by_scope
from placement.spend import SpendEntry, accrued_by_scope, spend_report
from policies.model import Caps

PUBLIC, PRIVATE, ONPREM = Tier.PUBLIC, Tier.PRIVATE, Tier.ONPREM


def at(*args: int) -> float:
    """Epoch seconds of a UTC moment: at(2025, 3, 10, 12) is 12:00 UTC on 10 March 2025."""
    return datetime(*args, tzinfo=UTC).timestamp()


def caps(**scopes: dict) -> Caps:
    """caps(global_={...}, nlp={...}): the policy's caps section for those scopes."""
    data: dict = {"teams": {}}
    for scope, spec in scopes.items():
        if scope == "global_":
            data["global"] = spec
        else:
            data["teams"][scope] = spec
    return Caps.model_validate(data)


def entry(team: str, start: float, end: float, usd: float, tier: Tier = PUBLIC, job: str = "j") -> SpendEntry:
    return SpendEntry(job, team, tier, start, end, usd)


# ---------------------------------------------------------------------------------------------- periods

@pytest.mark.parametrize("now, month_hours_left", [
    (at(2025, 2, 15), 14 * 24),  # February 2025: 28 days, 14 of them left at midnight of the 15th
    (at(2024, 2, 15), 15 * 24),  # leap February 2024: 29 days
    (at(2025, 1, 31, 12), 12),  # 31-day January, noon of its last day
    (at(2025, 4, 30, 18), 6),  # 30-day April
    (at(2025, 12, 31, 23, 30), 0.5),  # December rolls over into the next year
])
def test_hours_left_in_the_month(now, month_hours_left):
    assert Periods.at(now).hours_left_in_month == pytest.approx(month_hours_left)


def test_day_starts_at_utc_midnight():
    periods = Periods.at(at(2025, 3, 10, 18, 45))
    assert periods.day_start == at(2025, 3, 10)
    assert periods.hours_left_in_day == pytest.approx(5.25)
    assert periods.month_start == at(2025, 3, 1) and periods.month_end == at(2025, 4, 1)


# ---------------------------------------------------------------------------------------------- accrual

def test_accrued_splits_entries_that_straddle_midnight_and_the_month_start():
    now = at(2025, 2, 1, 6)
    entries = [
        entry("nlp", at(2025, 1, 31, 23), at(2025, 2, 1, 1), 20.0),  # half before the day and month: $10 in both
        entry("nlp", at(2025, 2, 1, 2), at(2025, 2, 1, 4), 7.0),  # all today
        entry("nlp", at(2025, 1, 30), at(2025, 1, 30, 5), 100.0),  # last month: nothing
        entry("cv", at(2025, 2, 1, 3), at(2025, 2, 1, 3), 4.0),  # an instant charge today
        entry("cv", at(2025, 2, 1, 1), at(2025, 2, 1, 5), 50.0, tier=ONPREM),  # on-prem never counts
    ]
    accrued = accrued_by_scope(entries, now)
    assert accrued["nlp"] == Accrued(today=pytest.approx(17.0), month=pytest.approx(17.0))
    assert accrued["cv"] == Accrued(today=4.0, month=4.0)
    assert accrued["global"] == Accrued(today=pytest.approx(21.0), month=pytest.approx(21.0))


def test_month_accrual_keeps_earlier_days_the_day_accrual_drops():
    now = at(2025, 3, 20, 12)
    entries = [entry("nlp", at(2025, 3, 19, 10), at(2025, 3, 19, 20), 30.0, tier=PRIVATE),
               entry("nlp", at(2025, 3, 20, 11), at(2025, 3, 20, 12), 5.0)]
    assert accrued_by_scope(entries, now)["nlp"] == Accrued(today=5.0, month=35.0)


def test_store_tier_strings_are_understood():
    onprem_row = SpendEntry("j", "nlp", "onprem", at(2025, 3, 1, 1), at(2025, 3, 1, 2), 9.0)  # as the store holds it
    assert accrued_by_scope([onprem_row], at(2025, 3, 1, 3)) == {}


def test_rates_count_private_and_public_work_only():
    running = [Running("a", "nlp", PUBLIC, "o", 8, 30.0), Running("b", "nlp", PRIVATE, "p", 4, 10.0),
               Running("c", "cv", ONPREM, "n", 8, 16.0)]
    assert rates_by_scope(running) == {"global": 40.0, "nlp": 40.0}


# ---------------------------------------------------------------------------------------------- limits

def test_day_budget_half_spent_at_noon_leaves_ten_dollars_an_hour():
    # $240/day, $120 spent by 12:00 UTC: $120 over the 12 hours left.
    limits = effective_rate_limits(caps(nlp={"usd_per_day": 240}), {"nlp": Accrued(today=120, month=120)},
                                   at(2025, 3, 10, 12))
    assert limits["nlp"].usd_per_hour == pytest.approx(10.0)
    assert limits["nlp"].binding is CapKind.DAY
    assert "$120.00 left" in limits["nlp"].detail and "12.0 h" in limits["nlp"].detail


def test_month_budget_in_february_spreads_over_its_28_days():
    # $10,000/month, $3,280 spent by midnight of 15 Feb 2025: $6,720 over 14 days = 336 h -> $20/h.
    limits = effective_rate_limits(caps(global_={"usd_per_month": 10_000}), {"global": Accrued(month=3_280)},
                                   at(2025, 2, 15))
    assert limits["global"].usd_per_hour == pytest.approx(20.0)
    # Same date in leap 2024: 15 days = 360 h left -> $6,720 / 360 = $18.67/h.
    leap = effective_rate_limits(caps(global_={"usd_per_month": 10_000}), {"global": Accrued(month=3_280)},
                                 at(2024, 2, 15))
    assert leap["global"].usd_per_hour == pytest.approx(6_720 / 360)


def test_month_budget_on_the_last_day_of_a_31_day_month():
    # $31,000/month, $30,400 spent by 31 Jan 12:00: $600 over 12 h -> $50/h; a $60/h rate cap does not bind.
    limits = effective_rate_limits(caps(nlp={"usd_per_hour": 60, "usd_per_month": 31_000}),
                                   {"nlp": Accrued(today=700, month=30_400)}, at(2025, 1, 31, 12))
    assert limits["nlp"].usd_per_hour == pytest.approx(50.0)
    assert limits["nlp"].binding is CapKind.MONTH


def test_the_tightest_limit_wins():
    # At 18:00: rate cap $25/h; day budget $600 - $400 = $200 over 6 h = $33.33/h; month budget $9,000 - $2,000
    # = $7,000 over (6 h of the 10th + 21 days, 11-31 March = 510 h) = $13.73/h -> the month budget binds.
    now = at(2025, 3, 10, 18)
    cap = caps(nlp={"usd_per_hour": 25, "usd_per_day": 600, "usd_per_month": 9_000})
    limit = effective_rate_limits(cap, {"nlp": Accrued(today=400, month=2_000)}, now)["nlp"]
    assert limit.usd_per_hour == pytest.approx(7_000 / 510)
    assert limit.binding is CapKind.MONTH
    generous = caps(nlp={"usd_per_hour": 25, "usd_per_day": 600, "usd_per_month": 90_000})
    assert effective_rate_limits(generous, {"nlp": Accrued(today=400, month=2_000)}, now)["nlp"].binding \
        is CapKind.RATE


def test_exhausted_budget_allows_nothing():
    limits = effective_rate_limits(caps(nlp={"usd_per_day": 100}), {"nlp": Accrued(today=130, month=130)},
                                   at(2025, 3, 10, 9))
    assert limits["nlp"].usd_per_hour == 0.0
    assert "$0.00 left" in limits["nlp"].detail


def test_a_scope_without_spend_gets_its_whole_budget():
    # Nothing spent at 06:00: $180/day over 18 h -> $10/h.
    limits = effective_rate_limits(caps(cv={"usd_per_day": 180}), {}, at(2025, 3, 10, 6))
    assert limits["cv"].usd_per_hour == pytest.approx(10.0)


def test_rate_caps_carry_the_limits_into_a_policy_caps_section():
    limits = effective_rate_limits(caps(global_={"usd_per_day": 240}, nlp={"usd_per_hour": 7}),
                                   {"global": Accrued(today=240, month=240)}, at(2025, 3, 10, 12))
    placed = rate_caps(limits)
    assert placed.global_.usd_per_hour == 0.0 and placed.global_.usd_per_day is None
    assert placed.teams["nlp"].usd_per_hour == 7.0


# ---------------------------------------------------------------------------------------------- report

def test_report_projects_to_the_end_of_the_day_and_month():
    now = at(2025, 4, 30, 20)  # 4 h left in the day and in the 30-day month
    entries = [entry("nlp", at(2025, 4, 30, 8), at(2025, 4, 30, 20), 120.0),
               entry("nlp", at(2025, 4, 2), at(2025, 4, 3), 1_000.0)]
    running = [Running("a", "nlp", PUBLIC, "o", 8, 30.0), Running("b", "cv", ONPREM, "n", 8, 16.0)]
    report = spend_report(entries, running, caps(nlp={"usd_per_day": 200}), now)
    assert [r.scope for r in report] == ["global", "nlp"]  # cv spends on-prem only: no cloud spend to show
    nlp = report[1]
    assert (nlp.accrued_today, nlp.accrued_month, nlp.rate_per_hour) == (120.0, 1_120.0, 30.0)
    assert nlp.projected_day == pytest.approx(120 + 30 * 4)
    assert nlp.projected_month == pytest.approx(1_120 + 30 * 4)
    assert nlp.limit.usd_per_hour == pytest.approx(20.0)  # ($200 - $120) / 4 h
    assert nlp.over and not report[0].over and report[0].limit is None
