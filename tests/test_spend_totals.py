"""Running spend totals per cap scope and UTC day / month: what caps read each round instead of every row."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime

import pytest

from placement.caps import CapGuard
from placement.model import Tier
from placement.spend import SpendEntry, accrued_by_scope
from placement.store import Store
from policies.model import Caps, CapSpec, Policy

MONTH_END = datetime(2026, 1, 31, 22, 0, tzinfo=UTC).timestamp()  # two hours before February


def entries(seed: int, count: int = 300) -> list[SpendEntry]:
    """Accruals around a month's last midnight: some straddle the day and the month boundary, some instant."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        start = MONTH_END + rng.uniform(-30, 6) * 3600
        length = rng.choice([0.0, 60.0, 600.0, 7200.0, 30 * 3600.0])
        out.append(SpendEntry("j", rng.choice(["a", "b"]), rng.choice(list(Tier)), start, start + length,
                              round(rng.uniform(0, 20), 4)))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_totals_give_what_every_row_gives(tmp_path, seed):
    store = Store(tmp_path / "s.db")
    rows = entries(seed)
    for e in rows:
        store.add_spend(e.job_id, e.team, e.tier.value, e.start, e.end, e.usd)
    for now in (MONTH_END - 20 * 3600, MONTH_END + 1, MONTH_END + 2 * 3600 + 5, MONTH_END + 30 * 3600):
        # entries that end after `now` are in the future of that moment; both sides count what is recorded
        want = accrued_by_scope(rows, now)
        got = store.accrued(now)
        assert set(got) == set(want)
        for scope in want:
            assert got[scope].today == pytest.approx(want[scope].today, abs=1e-9)
            assert got[scope].month == pytest.approx(want[scope].month, abs=1e-9)


def test_a_store_from_before_the_totals_adds_them_up_once(tmp_path):
    path = tmp_path / "old.db"
    store = Store(path)
    rows = entries(9, 50)
    for e in rows:
        store.add_spend(e.job_id, e.team, e.tier.value, e.start, e.end, e.usd)
    store.close()
    db = sqlite3.connect(path)  # what a store written before this change holds: rows, no totals
    db.execute("DELETE FROM spend_totals")
    db.execute("DELETE FROM meta WHERE key = 'spend_totals_ready'")
    db.commit()
    db.close()
    now = MONTH_END + 3600
    want = accrued_by_scope(rows, now)
    got = Store(path).accrued(now)
    assert {s: round(a.month, 6) for s, a in got.items()} == {s: round(a.month, 6) for s, a in want.items()}


def test_the_cap_check_reads_no_spend_rows(tmp_path, monkeypatch):
    store = Store(tmp_path / "s.db")
    store.add_spend("j", "a", "public", MONTH_END, MONTH_END + 3600, 30.0)
    monkeypatch.setattr(Store, "spend_rows", lambda *a: pytest.fail("a round must not read every spend row"))
    policy = Policy(name="p", caps=Caps(global_=CapSpec(usd_per_day=100.0)))
    check = CapGuard(store, {}).check(policy, MONTH_END + 3600)
    assert check.limits["global"].usd_per_hour == pytest.approx((100 - 30) / 1.0)  # 1 h left in the UTC day
