"""Decisions of the core at their edges (placement/solve/: decide, limits and the modules they call).

Written against the mutants mutmut left alive (docs/mutation.md): each test states what a round decides
for a State, through the core's public functions.
"""

from __future__ import annotations

from placement.solve.decide import desired_replicas
from placement.solve.state import ServiceFacts


def _service(load: float | None, target: float | None = 10.0) -> ServiceFacts:
    return ServiceFacts("svc-1", "svc", min_replicas=1, max_replicas=5, target_qps=target, load_qps=load)


def test_replicas_cover_the_load_exactly_at_a_multiple_of_the_target():
    assert desired_replicas(_service(30.0)) == 3  # 30 req/s at 10 per replica: three, not four
    assert desired_replicas(_service(30.5)) == 4
    assert desired_replicas(_service(None)) == 1  # no load reported yet: the minimum
    assert desired_replicas(_service(80.0, target=None)) == 1  # a fixed count: the minimum
