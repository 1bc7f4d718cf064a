"""A service that dies between recording a launch and making it carries it out once, never twice.

The engine runs in the test process against the shared Ray cluster and the real on-prem provider; the
only stand-in is a wrapper that kills the engine (raises) right before or right after the real launch.
"""

from __future__ import annotations

import pytest
from ray.job_submission import JobSubmissionClient

from clouds.onprem import RayNodesProvider
from placement.actor import dashboard_http
from placement.model import Tier
from placement.reconciler import handle_for
from placement.service import Engine, ServiceConfig
from placement.store import JobState

JOB = {"name": "restart-probe", "resources": {"cpus": 1}, "run": "echo probe",
       "placement": {"team": "platform", "tiers": ["onprem"], "expected_hours": 0.01}}


class Crash(BaseException):
    """The service process dying: not an error anything in the engine catches."""


class DiesAroundLaunch:
    """The real on-prem provider, except that the process 'dies' before or after the real launch."""

    def __init__(self, real: RayNodesProvider, when: str):
        self.real, self.when = real, when
        self.tier, self.name = real.tier, real.name

    def __getattr__(self, name):
        return getattr(self.real, name)

    def launch(self, request):
        if self.when == "before":
            raise Crash()
        self.real.launch(request)
        raise Crash()


@pytest.mark.parametrize("when", ["before", "after"])
def test_recorded_launch_is_finished_once_after_a_crash(ray_cluster, tmp_path, when):
    client = JobSubmissionClient(dashboard_http(ray_cluster.webui_url))
    config = ServiceConfig(store_path=str(tmp_path / "p.db"), round_interval_s=None, catalogs=())
    dying = Engine(config, {Tier.ONPREM: DiesAroundLaunch(RayNodesProvider(client), when)})
    [job_id] = dying.submit([{"source": "probe.yaml#1", "data": JOB}])
    with pytest.raises(Crash):
        dying.round()
    record = dying.store.job(job_id)
    assert record.state is JobState.LAUNCHING and [d.status for d in dying.store.decisions(job_id)] == ["intended"]

    restarted = Engine(config, {Tier.ONPREM: RayNodesProvider(client)})  # __init__ resumes recorded decisions
    assert [d.status for d in restarted.store.decisions(job_id)] == ["done"]
    mine = [j for j in client.list_jobs() if (j.metadata or {}).get("store") == restarted.store.uid]
    assert [j.submission_id for j in mine] == [handle_for(restarted.store.uid, job_id, 1)]
    for _ in range(40):
        restarted.round()
        if restarted.store.job(job_id).state is JobState.SUCCEEDED:
            break
        import time
        time.sleep(0.5)
    assert restarted.store.job(job_id).state is JobState.SUCCEEDED
    assert len([j for j in client.list_jobs() if (j.metadata or {}).get("store") == restarted.store.uid]) == 1
