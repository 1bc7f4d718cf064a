"""The service runs a pipeline's tasks in order and a job group's together (SkyPilot's DAGs)."""

from __future__ import annotations

from pathlib import Path

from placement.client import documents_of
from placement.service import Engine, ServiceConfig
from placement.spec import load_specs
from placement.store import JobChange, JobState

PIPELINE = """\
name: pipe
---
name: train
resources: {cpus: 2}
run: python train.py
---
name: eval
resources: {cpus: 2}
run: python eval.py
---
name: report
run: python report.py
"""

GROUP = """\
name: rl
execution: parallel
---
name: trainer
resources: {accelerators: GPU_HERE}
run: python train.py
---
name: buffer
resources: {cpus: 2}
run: python buffer.py
"""


def engine(tmp_path: Path) -> Engine:
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None)
    return Engine(config, {}, clock=lambda: 1_000_000.0)


def submit(eng: Engine, tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    return eng.submit(documents_of(load_specs([path])))


def states(eng: Engine, ids: list[str]) -> list[tuple[str, str | None]]:
    return [(r.state.value, r.reason_code) for r in map(eng.store.job, ids)]


def test_a_pipeline_runs_each_task_after_the_one_before_succeeded(tmp_path):
    eng = engine(tmp_path)
    train, evaluate, report = ids = submit(eng, tmp_path, PIPELINE)
    assert [eng.store.job(i).after for i in ids] == [None, train, evaluate]
    eng.round()
    assert states(eng, ids) == [("planned", None), ("pending", "WaitingForPredecessor"),
                                ("pending", "WaitingForPredecessor")]
    assert train in eng.store.job(evaluate).reason
    eng.store.update_job(train, 1_000_000.0, JobChange(state=JobState.SUCCEEDED), event="succeeded")
    eng.round()
    assert states(eng, ids)[1:] == [("planned", None), ("pending", "WaitingForPredecessor")]


def test_when_a_task_fails_the_rest_of_its_pipeline_fails(tmp_path):
    eng = engine(tmp_path)
    train, evaluate, report = ids = submit(eng, tmp_path, PIPELINE)
    eng.round()
    eng.store.update_job(train, 1_000_000.0, JobChange(state=JobState.FAILED), event="failed")
    eng.round()
    assert states(eng, ids)[1:] == [("failed", "PredecessorFailed"), ("failed", "PredecessorFailed")]
    assert train in eng.store.job(report).reason


def test_a_job_group_is_placed_whole_or_not_at_all(tmp_path):
    eng = engine(tmp_path)
    ids = submit(eng, tmp_path, GROUP.replace("GPU_HERE", "tpu-v5e-8"))  # no offer sells it
    eng.round()
    assert states(eng, ids) == [("pending", "NoOfferSellsGpu"), ("pending", "WaitingForGroup")]
    ids = submit(eng, tmp_path, GROUP.replace("GPU_HERE", "A100:8"))
    eng.round()
    assert [s for s, _ in states(eng, ids)] == ["planned", "planned"]
    assert eng.store.job(ids[0]).group == eng.store.job(ids[1]).group == ids[0]
