"""The store's shape: table groups in small modules, importing neither Ray nor SkyPilot, with typed rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from placement.model import OutcomeCode, ReasonCode, Tier
from placement.store import KEEP, JobChange, JobState, NewJob, Store
from placement.store.protocols import IntentLog, JobLog, SpendBook, TelemetryStore

ROOT = Path(__file__).resolve().parents[1]


def test_the_store_imports_neither_ray_nor_skypilot():
    probe = ("import sys, placement.store, placement.store.protocols; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'sky'}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"


def test_no_store_module_is_over_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "placement" / "store").glob("*.py")}
    assert {"schema.py", "jobs.py", "decisions.py", "spend.py", "telemetry.py"} <= set(sizes)
    assert max(sizes.values()) <= 400, sizes


def test_the_store_is_every_part(tmp_path):
    store = Store(tmp_path / "p.db")
    for part in (JobLog, IntentLog, SpendBook, TelemetryStore):
        assert isinstance(store, part), part


@pytest.fixture
def job(tmp_path):
    store = Store(tmp_path / "p.db")
    [job_id] = store.add_jobs([NewJob("a", "a", "nlp", "normal", {"name": "a"}, "a.yaml#1")], now=1.0, batch="b")
    return store, job_id


def test_typed_fields_round_trip_through_the_file(job, tmp_path):
    store, job_id = job
    store.update_job(job_id, 2.0, JobChange(state=JobState.PENDING, tier=Tier.PRIVATE, nodes=("n1", "n2"),
                                            reason_code=OutcomeCode.DOWNSCALED, reason="over the cap"), event="x")
    record = Store(tmp_path / "p.db").job(job_id)
    assert record.tier is Tier.PRIVATE and record.nodes == ("n1", "n2")
    assert record.reason_code is OutcomeCode.DOWNSCALED and record.reason == "over the cap"
    store.set_pending_reasons({job_id: (ReasonCode.OVER_QUOTA, "team nlp is at its quota")}, now=3.0)
    assert store.job(job_id).reason_code is ReasonCode.OVER_QUOTA
    store.set_pending_reasons({job_id: ("SomeOlderCode", "from an older version")}, now=4.0)
    code = store.job(job_id).reason_code
    assert code == "SomeOlderCode" and not isinstance(code, (ReasonCode, OutcomeCode))


def test_a_change_writes_only_its_fields_and_none_clears(job):
    store, job_id = job
    store.update_job(job_id, 2.0, JobChange(state=JobState.RUNNING, attempt=1, tier=Tier.PUBLIC, handle="h",
                                            started_at=2.0, rate_per_hour=3.5), event="running")
    store.update_job(job_id, 5.0, JobChange(handle=None, tier=None), event="requeued", detail="lost")
    record = store.job(job_id)
    assert (record.state, record.attempt, record.started_at, record.rate_per_hour) == (JobState.RUNNING, 1, 2.0, 3.5)
    assert record.handle is None and record.tier is None and record.updated_at == 5.0
    store.update_job(job_id, 6.0, JobChange(), event="looked")
    assert store.job(job_id).updated_at == 6.0 and store.job(job_id).state is JobState.RUNNING
    assert [(kind, detail) for _, kind, detail in store.events(job_id)][1:] == [
        ("running", ""), ("requeued", "lost"), ("looked", "")]
    assert JobChange().state is KEEP
