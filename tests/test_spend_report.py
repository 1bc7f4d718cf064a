"""Edges of spend accounting that the main spend tests leave open (placement/spend.py).

Instant charges at the edges of a period, ties between a rate cap and a budget, and which scopes the
report lists, in which order, with which cap. Numbers are worked out by hand at fixed UTC moments.
"""

from __future__ import annotations

import pytest

from placement.model import Running, Tier
from placement.solve.limits import CapKind, effective_rate_limits
from placement.spend import accrued_by_scope, spend_report
from tests.test_spend import at, caps, entry

PUBLIC = Tier.PUBLIC


@pytest.mark.parametrize("moment, today", [(at(2025, 3, 10), 50.0),  # at midnight: the new day's
                                           (at(2025, 3, 10, 23, 59, 59), 50.0),
                                           (at(2025, 3, 11), 0.0),  # the next midnight: not today's
                                           (at(2025, 3, 9, 23, 59, 59), 0.0)])
def test_an_instant_charge_counts_in_the_day_it_falls_in(moment, today):
    accrued = accrued_by_scope([entry("nlp", moment, moment, 50.0)], at(2025, 3, 10, 12))
    assert accrued["nlp"].today == today  # the same month either way: the scope is always there


def test_a_half_second_inside_the_day_is_counted():
    # $36 over an hour that ends half a second after midnight: $0.005 of it is today's.
    midnight = at(2025, 3, 10)
    accrued = accrued_by_scope([entry("nlp", midnight - 3599.5, midnight + 0.5, 36.0)], at(2025, 3, 10, 12))
    assert accrued["nlp"].today == pytest.approx(0.005)


def test_a_tie_between_the_rate_cap_and_a_budget_names_the_rate_cap():
    # At 12:00 a $240 day budget, nothing spent, allows $20/h: the same as the $20/h rate cap.
    limit = effective_rate_limits(caps(nlp={"usd_per_hour": 20, "usd_per_day": 240}), {}, at(2025, 3, 10, 12))["nlp"]
    assert (limit.scope, limit.usd_per_hour, limit.binding) == ("nlp", 20.0, CapKind.RATE)
    assert str(limit) == "team nlp rate cap $20.00/h"
    glob = effective_rate_limits(caps(global_={"usd_per_hour": 5}), {}, at(2025, 3, 10, 12))["global"]
    assert str(glob) == "global rate cap $5.00/h"


def test_the_report_lists_every_scope_that_spent_spends_or_is_capped_global_first():
    now = at(2025, 3, 10, 12)
    entries = [entry("cv", at(2025, 3, 10, 8), at(2025, 3, 10, 9), 10.0)]  # cv spent, runs nothing now
    running = [Running("a", "aa", PUBLIC, "o", 8, 30.0)]  # aa runs now, spent nothing yet
    report = spend_report(entries, running, caps(zz={"usd_per_hour": 7}), now)  # zz is only capped
    assert [r.scope for r in report] == ["global", "aa", "cv", "zz"]
    by_scope = {r.scope: r for r in report}
    assert by_scope["zz"].cap.usd_per_hour == 7 and by_scope["zz"].limit.usd_per_hour == 7
    assert by_scope["aa"].cap is None and by_scope["aa"].rate_per_hour == 30.0
    assert by_scope["cv"].accrued_today == 10.0 and by_scope["global"].accrued_today == 10.0


def test_a_fractional_moment_still_starts_its_day_at_midnight():
    from placement.solve.limits import Periods

    periods = Periods.at(at(2025, 3, 10, 7) + 0.25)
    assert periods.day_start == at(2025, 3, 10) and periods.month_start == at(2025, 3, 1)


def test_on_prem_entries_are_skipped_not_the_end_of_the_ledger():
    # An on-prem entry first, then public ones: the public spend still counts; a scope that spent only
    # earlier this month has $0 today.
    now = at(2025, 3, 10, 12)
    entries = [entry("nlp", at(2025, 3, 10, 8), at(2025, 3, 10, 9), 99.0, tier=Tier.ONPREM),
               entry("nlp", at(2025, 3, 10, 9), at(2025, 3, 10, 10), 10.0),
               entry("cv", at(2025, 3, 2), at(2025, 3, 2, 1), 7.0)]
    accrued = accrued_by_scope(entries, now)
    assert (accrued["nlp"].today, accrued["nlp"].month) == (10.0, 10.0)
    assert (accrued["cv"].today, accrued["cv"].month) == (0.0, 7.0)
