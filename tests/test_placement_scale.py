"""benchmarks/placement_scale.py's instance building: any size (the openb node list is replicated under new
names past its 1,523 nodes, where `random.sample` used to fail), the sizes it covers unchanged, and the
`--solver` overrides validated like a policy file. The rounds themselves are measured, not tested, here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from clouds.inventory import import_alibaba_nodes
from policies import load_policy

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("placement_scale", ROOT / "benchmarks" / "placement_scale.py")
scale = importlib.util.module_from_spec(_spec)
sys.modules["placement_scale"] = scale
_spec.loader.exec_module(scale)

SPECS = import_alibaba_nodes(scale.NODES_CSV)


def test_the_node_list_is_left_alone_when_it_is_long_enough():
    assert scale.replicated(SPECS, len(SPECS)) == SPECS
    assert scale.replicated(SPECS, 10) == SPECS


def test_past_its_end_the_node_list_is_replicated_under_new_names():
    copies = scale.replicated(SPECS, 2 * len(SPECS) + 1)
    assert len(copies) == 3 * len(SPECS)
    assert len({spec.name for spec in copies}) == len(copies)
    third = copies[2 * len(SPECS):]
    assert [s.name for s in third] == [f"{s.name}~2" for s in SPECS]
    assert [s.model_dump(exclude={"name"}) for s in third] == [s.model_dump(exclude={"name"}) for s in SPECS]


def test_a_snapshot_with_more_nodes_than_the_trace_has():
    snapshot = scale.make_snapshot(30, len(SPECS) + 100, [], seed=5)
    onprem = [o for o in snapshot.offers if o.provider == "onprem"]
    assert len(onprem) == len(SPECS) + 100
    assert len({o.id for o in snapshot.offers}) == len(snapshot.offers)
    assert len(snapshot.jobs) == 30


def test_sizes_the_trace_covers_draw_the_instances_they_did():
    """Seeds quoted before the replication keep their instances: the draw over the list itself is unchanged."""
    import random

    from clouds.inventory import Inventory

    expected = random.Random(9).sample(Inventory(nodes=SPECS).offers(), 100)
    snapshot = scale.make_snapshot(20, 100, [], seed=9)
    assert [o.id for o in snapshot.offers if o.provider == "onprem"] == [o.id for o in expected]


def test_solver_overrides_are_validated():
    policy = load_policy("balanced")
    solver = scale.solver_overrides(policy, ["aggregate=false", "work_limit=true", "max_nodes=50"])
    assert (solver.aggregate, solver.work_limit, solver.max_nodes) == (False, True, 50)
    with pytest.raises(SystemExit, match="aggregate"):
        scale.solver_overrides(policy, ["agregate=false"])
    with pytest.raises(Exception, match="max_nodes"):
        scale.solver_overrides(policy, ["max_nodes=0"])


def test_the_summary_counts_rounds_over_their_budget():
    rows = [{"jobs": 500, "total_s": t, "build_s": 0.1, "peak_rss_mb": m, "ratio_to_bound": r}
            for t, m, r in ((1.9, 60.0, 1.01), (2.5, 70.0, 1.03), (2.3, 65.0, 1.02))]
    (summary,) = scale.summarise(rows, budget_s=2.0)
    assert summary["over_1.2x_budget"] == 1  # 2.5 s > 2.4 s; 2.3 s is within
    assert summary["max_peak_rss_mb"] == 70.0
    assert summary["mean_ratio_to_bound"] == pytest.approx(1.02)
    assert summary["max_ratio_to_bound"] == 1.03
    assert "mean_greedy_ratio_to_bound" not in summary
