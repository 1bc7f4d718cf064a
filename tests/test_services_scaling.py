"""Services scale their replicas with the load signal, inside [min, max], and caps decide what runs."""

from __future__ import annotations

from pathlib import Path

import yaml

from placement.service import Engine, ServiceConfig
from placement.store import JobState

SERVICE = Path(__file__).resolve().parents[1] / "configs" / "jobs" / "serve-llama-vllm.yaml"


def engine(tmp_path: Path) -> tuple[Engine, list[float]]:
    now = [1_000_000.0]
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=())
    return Engine(config, {}, clock=lambda: now[0]), now


def active(engine: Engine, service_id: str) -> list:
    return [r for r in engine.store.jobs(service=service_id) if not r.state.terminal]


def test_replicas_follow_the_load_within_min_and_max(tmp_path: Path) -> None:
    eng, _ = engine(tmp_path)
    ids = eng.submit([{"source": f"{SERVICE}#1", "data": yaml.safe_load(SERVICE.read_text())}])
    (service,) = eng.store.services()
    assert (service.min_replicas, service.max_replicas, service.target_qps) == (2, 6, 4)
    assert len(ids) == 2 and {r.id for r in active(eng, service.id)} == set(ids)
    eng.report_load(service.id, 17)  # ceil(17 / 4) = 5
    eng.round()
    assert len(active(eng, service.id)) == 5
    numbers = sorted(int(r.id.split("-replica-")[1].split("-")[0]) for r in active(eng, service.id))
    assert numbers == [1, 2, 3, 4, 5]
    eng.report_load(service.id, 400)  # capped at max_replicas
    eng.round()
    assert len(active(eng, service.id)) == 6
    eng.report_load(service.id, 0)  # never below min_replicas
    eng.round()
    replicas = eng.store.jobs(service=service.id)
    assert len([r for r in replicas if not r.state.terminal]) == 2
    scaled = [r for r in replicas if r.state is JobState.CANCELLED]
    assert len(scaled) == 4 and all("scaled down" in r.reason for r in scaled)
    assert {r.id for r in active(eng, service.id)} == set(ids)  # the newest replicas went first


def test_load_for_an_unknown_service_is_an_error(tmp_path: Path) -> None:
    eng, _ = engine(tmp_path)
    try:
        eng.report_load("nope-1", 3)
    except ValueError as exc:
        assert "no service 'nope-1'" in str(exc)
    else:
        raise AssertionError("no error")
