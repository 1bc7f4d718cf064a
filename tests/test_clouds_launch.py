"""Public and private placements launched, watched, charged and stopped through SkyPilot.

The engine, store, reconciler, provider and the `sky.Task`s are all real; only SkyPilot's SDK
calls meet `FakeSky` (tests/sky_double.py), the narrowest boundary there is without a cloud.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clouds.catalog import SHIPPED_CATALOG_DIR, load_catalogs
from clouds.inventory import load_inventory
from clouds.offers import DEFAULT_INVENTORY
from clouds.private import private_provider, sky_pricing, write_sky_pricing
from clouds.public import public_provider
from clouds.sky_tasks import sky_name
from placement.model import ReasonCode, Tier
from placement.service import Engine, ServiceConfig
from placement.solve.state import Failover
from placement.store import JobState
from tests.sky_double import FakeSky

GAVE_UP = ReasonCode.LAUNCH_ATTEMPTS_EXHAUSTED  # a job the core gave up on after its allowed launch attempts

CATALOG = load_catalogs([SHIPPED_CATALOG_DIR]).offers
INVENTORY = load_inventory(DEFAULT_INVENTORY)


def spec(tiers=("public",), use_spot=None, **placement):
    resources = {"accelerators": "A100:8", "disk_size": 256} | ({"use_spot": use_spot} if use_spot else {})
    return {"name": "train", "setup": "pip install -r requirements.txt", "run": "python train.py",
            "envs": {"EPOCHS": 3}, "resources": resources,
            "placement": {"team": "ml", "priority": "critical", "tiers": list(tiers), "expected_hours": 2} | placement}


class World:
    """An engine with SkyPilot providers on a fake SDK, a store on disk and a hand-moved clock."""

    def __init__(self, tmp_path: Path, sky: FakeSky | None = None, failover: Failover = Failover()):
        self.tmp_path, self.sky, self.failover, self.now = tmp_path, sky or FakeSky(), failover, 1_000_000.0
        self.engine = self.start()

    def start(self) -> Engine:
        """A (re)started service: new engine and providers, same store and same SkyPilot."""
        config = ServiceConfig(store_path=str(self.tmp_path / "p.db"), round_interval_s=None,
                               catalogs=(str(SHIPPED_CATALOG_DIR),), failover=self.failover)
        providers = {Tier.PUBLIC: public_provider(CATALOG, sdk=self.sky),
                     Tier.PRIVATE: private_provider(INVENTORY, sdk=self.sky)}
        return Engine(config, providers, clock=lambda: self.now)

    def submit(self, data: dict) -> str:
        return self.engine.submit([{"source": "train.yaml#1", "data": data}])[0]

    def job(self, job_id: str):
        return self.engine.store.job(job_id)

    def name(self, job_id: str) -> str:
        return sky_name(self.job(job_id).handle)


def launched_resources(call):
    (task,) = call.args
    (resources,) = task.resources
    return task, resources


def test_public_placement_becomes_a_pinned_sky_launch_with_autodown(tmp_path: Path, monkeypatch) -> None:
    world = World(tmp_path)
    job_id = world.submit(spec())
    seen_at_launch = []
    original = world.sky.launch
    monkeypatch.setattr(world.sky, "launch", lambda task, **kw: (
        seen_at_launch.append([d.status for d in world.engine.store.decisions(job_id)]), original(task, **kw))[1])
    world.engine.round()
    record = world.job(job_id)
    assert record.state is JobState.LAUNCHING and record.tier == "public"
    assert seen_at_launch == [["intended"]]  # the decision was on disk before SkyPilot was called
    (call,) = world.sky.launches()
    assert call.name == "launch"
    assert call.kwargs == {"cluster_name": sky_name(record.handle), "idle_minutes_to_autostop": 10, "down": True}
    task, resources = launched_resources(call)
    offer = next(o for o in CATALOG if o.id == record.offer_id)
    assert (str(resources.cloud).lower(), resources.region, resources.instance_type, resources.use_spot) == \
        (offer.cloud, offer.region, offer.name, False)
    assert resources.accelerators == {"A100": 8} and resources.disk_size == 256
    assert resources.get_cost(3600) == pytest.approx(record.rate_per_hour)  # SkyPilot prices it as the engine did
    assert (task.name, task.setup, task.run) == (sky_name(record.handle), "pip install -r requirements.txt",
                                                 "python train.py")
    assert task.envs["EPOCHS"] == "3" and task.envs["PLACEMENT_JOB_ID"] == job_id
    assert [d.status for d in world.engine.store.decisions(job_id)] == ["done"]


def test_running_public_work_is_charged_then_torn_down_when_it_ends(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(spec())
    world.engine.round()
    name = world.name(job_id)
    world.sky.provision(name)
    world.engine.round()
    assert world.job(job_id).state is JobState.RUNNING
    world.now += 3600
    world.engine.round()
    rate = world.job(job_id).rate_per_hour
    assert world.engine.store.spent(job_id) == pytest.approx(rate)
    world.sky.finish(name, "SUCCEEDED")
    world.now += 1800
    world.engine.round()
    assert world.job(job_id).state is JobState.SUCCEEDED
    assert world.engine.store.spent(job_id) == pytest.approx(1.5 * rate)
    assert [c.args for c in world.sky.called("down")] == [(name,)]
    assert len(world.sky.launches()) == 1


def test_cancel_tears_the_cluster_down(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(spec())
    world.engine.round()
    world.sky.provision(world.name(job_id))
    world.engine.round()
    assert world.engine.cancel([job_id]) == [job_id]
    assert [c.args for c in world.sky.called("down")] == [(world.name(job_id),)]
    assert world.job(job_id).state is JobState.CANCELLED


def test_spot_work_is_a_managed_job_and_cancel_cancels_it(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(spec(use_spot=True))
    world.engine.round()
    (call,) = world.sky.launches()
    assert call.name == "jobs.launch" and call.kwargs == {"name": world.name(job_id)}
    assert launched_resources(call)[1].use_spot is True
    world.sky.provision(world.name(job_id))
    world.engine.round()
    assert world.job(job_id).state is JobState.RUNNING
    world.engine.cancel([job_id])
    assert [c.kwargs["name"] for c in world.sky.called("jobs.cancel")] == [world.name(job_id)]


def test_a_restarted_service_finds_the_launch_instead_of_launching_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(spec())
    world.engine.round()
    assert len(world.sky.launches()) == 1
    world.engine = world.start()  # the launch request is still in flight on SkyPilot's API server
    world.engine.round()
    assert len(world.sky.launches()) == 1 and world.job(job_id).state is JobState.LAUNCHING
    world.sky.provision(world.name(job_id))
    world.engine = world.start()
    world.engine.round()
    assert len(world.sky.launches()) == 1 and world.job(job_id).state is JobState.RUNNING


def test_a_service_killed_between_recording_and_launching_launches_once_after_restart(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(spec())
    world.sky.fail_next.append(KeyboardInterrupt())  # the process dies inside the SDK call
    with pytest.raises(KeyboardInterrupt):
        world.engine.round()
    assert world.job(job_id).state is JobState.LAUNCHING
    assert [d.status for d in world.engine.store.open_decisions()] == ["intended"]
    world.engine = world.start()  # resume() carries out the recorded launch
    world.engine = world.start()
    world.engine.round()
    assert len(world.sky.launches()) == 2  # the interrupted call and the one launch that happened
    assert world.engine.store.open_decisions() == []


def test_a_capacity_failure_blocks_that_offer_and_the_job_goes_to_the_next_best(tmp_path: Path) -> None:
    from sky import exceptions

    world = World(tmp_path)
    job_id = world.submit(spec())
    world.engine.round()
    first = world.job(job_id)
    world.sky.fail_launch(world.name(job_id), exceptions.ResourcesUnavailableError(
        "Failed to acquire resources in all zones in us-east-1"))
    world.engine.round()  # observes the failure, blocks, and places again in the same round
    events = [kind for _, kind, _ in world.engine.store.events(job_id)]
    assert "launch-failed" in events
    second = world.job(job_id)
    assert second.state is JobState.LAUNCHING and second.attempt == first.attempt + 1
    first_offer = next(o for o in CATALOG if o.id == first.offer_id)
    second_offer = next(o for o in CATALOG if o.id == second.offer_id)
    assert (second_offer.region, second_offer.name) != (first_offer.region, first_offer.name)
    assert second.rate_per_hour >= first.rate_per_hour  # the next best, not a better one it had missed
    (block, _, reason) = world.engine.store.active_blocks(world.now)[0]
    assert block.covers(first_offer) and not block.covers(second_offer) and "capacity" in reason
    world.now += world.failover.cooldown_s + 1
    assert world.engine.store.active_blocks(world.now) == []  # the cool-down ends


def test_a_credentials_error_blocks_the_whole_cloud_once_and_loudly(tmp_path: Path, caplog) -> None:
    from sky import exceptions

    world = World(tmp_path)
    first_job = world.submit(spec())
    second_job = world.submit(spec())
    world.sky.fail_next.append(exceptions.NoCloudAccessError("No cloud access: run `sky check`"))
    with caplog.at_level(logging.ERROR, logger="placement.reconciler"):
        world.engine.round()
    failed = world.job(first_job)
    assert failed.reason_code == "LaunchFailed" and "sky check" in failed.reason
    (block, _, _) = world.engine.store.active_blocks(world.now)[0]
    assert block.instance_type is None and block.region is None and block.cloud is not None
    assert len(world.sky.launches()) == 1  # the other job was not sent to the blocked cloud in the same round
    assert world.job(second_job).state is JobState.PENDING
    world.engine.round()
    clouds = {launched_resources(c)[1].cloud.canonical_name() for c in world.sky.launches()[1:]}
    assert len(world.sky.launches()) == 3 and block.cloud not in clouds
    assert len([r for r in caplog.records if "cannot be used" in r.getMessage()]) == 1


def test_after_the_allowed_attempts_a_job_stays_pending_with_the_reason(tmp_path: Path) -> None:
    from sky import exceptions

    world = World(tmp_path, failover=Failover(max_attempts=2))
    job_id = world.submit(spec())
    for _ in range(2):
        world.engine.round()
        world.sky.fail_launch(world.name(job_id), exceptions.ResourcesUnavailableError("no capacity"))
    world.engine.round()
    record = world.job(job_id)
    assert record.state is JobState.PENDING and record.reason_code == GAVE_UP and "2 launches failed" in record.reason
    for _ in range(2):
        world.engine.round()
    assert len(world.sky.launches()) == 2 and world.job(job_id).reason_code == GAVE_UP
    assert [kind for _, kind, _ in world.engine.store.events(job_id)].count("gave-up") == 1  # said once


def test_a_task_skypilot_rejects_fails_the_job_without_retrying(tmp_path: Path) -> None:
    world = World(tmp_path)
    job_id = world.submit(spec())
    world.sky.fail_next.append(ValueError("Invalid task: file_mounts source does not exist"))
    world.engine.round()
    record = world.job(job_id)
    assert record.state is JobState.FAILED and "file_mounts" in record.reason
    world.engine.round()
    assert len(world.sky.launches()) == 1


def test_private_pool_work_launches_on_its_kubernetes_context(tmp_path: Path) -> None:
    world = World(tmp_path)
    data = spec(tiers=("private",))
    data["resources"] = {"accelerators": "A100-80GB:2", "cpus": 8, "memory": 64}
    job_id = world.submit(data)
    world.engine.round()
    record = world.job(job_id)
    assert record.tier == "private" and record.state is JobState.LAUNCHING
    (call,) = world.sky.launches()
    _, resources = launched_resources(call)
    assert str(resources.infra) == "k8s/private-a100" or resources.region == "private-a100"
    assert resources.accelerators == {"A100-80GB": 2} and resources.cpus == "8" and resources.memory == "64"


def test_skypilot_prices_the_private_pool_as_the_engine_does(tmp_path: Path, monkeypatch) -> None:
    from sky import skypilot_config
    from sky.catalog import common, kubernetes_catalog

    config = tmp_path / "config.yaml"
    config.write_text("allowed_clouds: [aws, kubernetes]\n")
    written = write_sky_pricing(INVENTORY, config)
    assert written["allowed_clouds"] == ["aws", "kubernetes"]  # the operator's settings are kept
    assert written["kubernetes"] == sky_pricing(INVENTORY)["kubernetes"]
    monkeypatch.setenv(skypilot_config.ENV_VAR_GLOBAL_CONFIG, str(config))
    skypilot_config.reload_config()
    try:
        for offer in (o for o in INVENTORY.offers() if o.tier is Tier.PRIVATE):
            pricing = kubernetes_catalog._get_pricing(offer.region)
            for gpus in (1, 2, int(offer.gpu_count)):
                theirs = common.get_hourly_cost_from_pricing(pricing, cpus=4, memory=16, accelerator_name=offer.gpu,
                                                             accelerator_count=gpus)
                assert theirs == pytest.approx(offer.price_per_hour * gpus / offer.gpu_count)
    finally:
        monkeypatch.delenv(skypilot_config.ENV_VAR_GLOBAL_CONFIG)
        skypilot_config.reload_config()


def test_sky_setup_installs_catalogs_and_pool_prices_without_replacing_what_is_there(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    from typer.testing import CliRunner

    from placement.cli import app

    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path / "runtime"))
    own = tmp_path / "runtime" / ".sky" / "catalogs" / "v8" / "lambda" / "vms.csv"
    own.parent.mkdir(parents=True)
    own.write_text("SkyPilot's own fresher download\n")
    config = tmp_path / "config.yaml"
    result = CliRunner().invoke(app, ["sky-setup", "--sky-config", str(config)])
    assert result.exit_code == 0, result.output
    assert own.read_text() == "SkyPilot's own fresher download\n"  # a catalog already there is kept
    catalogs = own.parents[1]
    assert (catalogs / "aws" / "vms.csv").read_bytes() == (SHIPPED_CATALOG_DIR / "aws" / "vms.csv").read_bytes()
    assert "A100-80GB" in (catalogs / "common" / "accelerators.csv").read_text()
    assert not (catalogs / ".meta").exists()  # no md5 beside them: SkyPilot treats them as hand-placed
    assert "private-a100" in config.read_text() and "kept lambda/vms.csv" in result.output
