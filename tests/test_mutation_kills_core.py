"""Decisions of the core at their edges (placement/solve/: decide, limits and the modules they call).

Written against the mutants mutmut left alive (docs/mutation.md): each test states what a round decides
for a State, through the core's public functions.
"""

from __future__ import annotations

from placement.model import Demand, ReasonCode, Tier
from placement.solve.decide import ReplicaTarget, Repricing, decide, desired_replicas, replica_target
from placement.solve.limits import CapKind
from placement.solve.downscale import RunningWork
from placement.solve.state import Replica, RunningJob, ServiceFacts, State
from tests.solver_fixtures import job, make_policy, private, public, running

NOON = 1_700_049_600.0  # 2023-11-15 12:00 UTC


def _service(load: float | None, target: float | None = 10.0) -> ServiceFacts:
    return ServiceFacts("svc-1", "svc", min_replicas=1, max_replicas=5, target_qps=target, load_qps=load)


def test_replicas_cover_the_load_exactly_at_a_multiple_of_the_target():
    assert desired_replicas(_service(30.0)) == 3  # 30 req/s at 10 per replica: three, not four
    assert desired_replicas(_service(30.5)) == 4
    assert desired_replicas(_service(None)) == 1  # no load reported yet: the minimum
    assert desired_replicas(_service(80.0, target=None)) == 1  # a fixed count: the minimum


def _replicas(*submitted: float, pending: bool = False) -> tuple[Replica, ...]:
    return tuple(Replica(f"svc-replica-{n}", n, pending, at) for n, at in enumerate(submitted, start=1))


def test_a_service_scaling_up_gets_new_replica_numbers_with_the_load_in_the_cause():
    up = _service(17.5)
    up = ServiceFacts(up.id, up.name, 1, 5, 10.0, 17.5, _replicas(5.0), next_number=4)
    assert replica_target(up) == ReplicaTarget("svc-1", "svc", want=2, have=1, add=(4,),
                                                cause="svc-1 needs 2 replicas for 17.5 requests/s")


def test_a_service_scaling_down_ends_the_highest_numbered_of_replicas_started_together():
    three = ServiceFacts("svc-1", "svc", 1, 5, 10.0, 10.0, _replicas(5.0, 5.0, 5.0), next_number=4)
    assert replica_target(three) == ReplicaTarget("svc-1", "svc", want=1, have=3,
                                                  cancel=("svc-replica-3", "svc-replica-2"),
                                                  cause="scaled down: svc-1 needs 1 replicas for 10 requests/s")


def test_a_service_at_its_target_changes_nothing_and_says_so_plainly():
    steady = ServiceFacts("svc-1", "svc", 1, 5, 10.0, 20.0, _replicas(5.0, 6.0), next_number=3)
    assert replica_target(steady) == ReplicaTarget("svc-1", "svc", want=2, have=2,
                                                   cause="svc-1 needs 2 replicas for 20 requests/s")


def test_a_job_over_its_teams_quota_keeps_that_reason_under_a_day_budget():
    # The team's day budget binds its rate, but the job waits for its quota, not for money.
    policy = make_policy(quotas={"ml": {"public": 0}}, caps={"teams": {"ml": {"usd_per_day": 1000.0}}})
    decisions = decide(State(now=NOON, pending=(job("a", tiers=[Tier.PUBLIC]),), offers=(public("p4d"),)), policy)
    assert decisions.limits["ml"].binding is CapKind.DAY
    assert decisions.plan.reason_of("a").code is ReasonCode.OVER_QUOTA


def test_running_work_on_a_repriced_shared_offer_pays_its_share_at_the_new_price():
    pool = private("pool-a", price=10.0)  # 8 GPUs: 3 of them pay 3/8 x $10 = $3.75/h
    placed = running("etl", tier=Tier.PRIVATE, rate=5.0, gpus=3, offer_id=pool.id, pool="pool-a")
    work = RunningWork(job_id="etl", team="ml", tier=Tier.PRIVATE, rate_per_hour=5.0)
    held = RunningJob(placed, work, offer=pool, demand=Demand(accelerator="A100", accelerator_count=3), num_nodes=1)
    decisions = decide(State(now=NOON, running=(held,), offers=(pool,)), make_policy())
    assert decisions.repricings == (Repricing("etl", pool.id, 5.0, 3.75),)
    assert decisions.rates == {"global": 3.75, "ml": 3.75}
