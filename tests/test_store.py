"""The SQLite store: what is acknowledged is on disk, decisions are written with the job's new state."""

from __future__ import annotations

import sqlite3

import pytest

from placement.store import JobChange, JobState, NewJob, Store


def new(name: str, team: str = "nlp") -> NewJob:
    return NewJob(id=name, name=name, team=team, priority="normal", spec={"name": name, "run": "true"},
                  source=f"{name}.yaml#1")


def test_jobs_are_durable_and_numbered(tmp_path):
    store = Store(tmp_path / "p.db")
    ids = store.add_jobs([new("a"), new("a"), new("b")], now=100.0, batch="b1")
    assert ids == ["a-1", "a-2", "b-3"]
    store.close()
    # A second connection, as a restarted service would open, sees them (committed, WAL mode).
    reopened = Store(tmp_path / "p.db")
    assert [j.id for j in reopened.jobs()] == ids
    assert all(j.state is JobState.PENDING and j.spec["run"] == "true" for j in reopened.jobs())
    assert sqlite3.connect(tmp_path / "p.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reopened.add_jobs([new("c")], now=101.0, batch="b2") == ["c-4"]


def test_a_retried_batch_is_stored_once(tmp_path):
    store = Store(tmp_path / "p.db")
    first = store.add_jobs([new("a"), new("b")], now=1.0, batch="same")
    assert store.add_jobs([new("a"), new("b")], now=2.0, batch="same") == first
    assert len(store.jobs()) == 2


def test_a_decision_and_the_jobs_new_state_are_written_together(tmp_path):
    store = Store(tmp_path / "p.db")
    [job_id] = store.add_jobs([new("a")], now=1.0, batch="b")
    seq = store.record_decision(job_id, 1, "launch", "a-1-a1-x", {"tier": "onprem", "target": "n1"}, 2.0,
                                JobChange(state=JobState.LAUNCHING, attempt=1, handle="a-1-a1-x", nodes=("n1",)))
    job = store.job(job_id)
    assert job.state is JobState.LAUNCHING and job.handle == "a-1-a1-x" and job.nodes == ("n1",)
    assert [d.seq for d in store.open_decisions()] == [seq]
    store.finish_decision(seq, "done")
    assert store.open_decisions() == []
    assert [kind for _, kind, _ in store.events(job_id)] == ["submitted", "decided:launch"]


def test_a_failed_transaction_changes_nothing(tmp_path):
    store = Store(tmp_path / "p.db")
    [job_id] = store.add_jobs([new("a")], now=1.0, batch="b")
    # The job's update fails after its decision was inserted (a column gone under the store's feet).
    other = sqlite3.connect(tmp_path / "p.db")
    other.execute("ALTER TABLE jobs RENAME COLUMN handle TO handle_gone")
    with pytest.raises(sqlite3.OperationalError):
        store.record_decision(job_id, 1, "launch", "h", {}, 2.0, JobChange(state=JobState.LAUNCHING, handle="h"))
    other.execute("ALTER TABLE jobs RENAME COLUMN handle_gone TO handle")
    assert store.open_decisions() == [] and store.job(job_id).state is JobState.PENDING


def test_spend_accrues_per_job(tmp_path):
    store = Store(tmp_path / "p.db")
    [job_id] = store.add_jobs([new("a")], now=0.0, batch="b")
    assert store.spend_until(job_id) is None
    store.add_spend(job_id, "nlp", "public", 0.0, 1800.0, 5.0)
    store.add_spend(job_id, "nlp", "public", 1800.0, 3600.0, 5.0)
    assert store.spent(job_id) == pytest.approx(10.0) and store.spend_until(job_id) == 3600.0


def test_each_store_has_its_own_identity(tmp_path):
    one, two = Store(tmp_path / "1.db"), Store(tmp_path / "2.db")
    assert one.uid != two.uid and Store(tmp_path / "1.db").uid == one.uid


def test_a_store_from_before_debt_bookkeeping_gains_its_tables(tmp_path):
    from clouds.telemetry_samples import Batch, GpuSample
    from placement.debt import FlagKind, Recommendation
    from placement.rightsizing import SimilarJobFlag
    from placement.store import JobUsageRecord

    store = Store(tmp_path / "p.db")
    store.add_telemetry(Batch((GpuSample("n", 0, 0.0, 50.0, 0.0, 0, 1, None),), (), 0))
    [job_id] = store.add_jobs([new("a")], now=0.0, batch="b")
    store.close()
    old = sqlite3.connect(tmp_path / "p.db")  # as a store written before them: no such tables or index
    for table in ("job_usage", "recommendations", "gpu_minutes", "process_minutes"):
        old.execute(f"DROP TABLE {table}")
    old.execute("DROP INDEX gpu_samples_node_t")
    old.commit()
    old.close()

    store = Store(tmp_path / "p.db")
    record = store.job(job_id)
    flag = SimilarJobFlag(job_id, FlagKind.NO_GPU_USE, "idle", Recommendation(None, 0.0, "run on CPU only"), "T4", None)
    store.record_assessment(record, JobUsageRecord(1.0, 0.0, 0.5, 0.07, 0.03), [flag], now=5.0)
    assert store.recommendations() == {("nlp", "a"): [flag]}
    assert store.job_usage([job_id, "other"]) == {job_id: JobUsageRecord(1.0, 0.0, 0.5, 0.07, 0.03)}
    assert store.gpu_minutes(0, 10) == [] and len(store.gpu_samples(0, 10)) == 1
    indexes = {r[1] for r in sqlite3.connect(tmp_path / "p.db").execute("PRAGMA index_list(gpu_samples)")}
    assert "gpu_samples_node_t" in indexes
