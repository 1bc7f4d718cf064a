"""Offer groups: the static catalog offers are grouped once and reused across rounds, with the same groups as
grouping every offer afresh, and grouped again when they, or the blocked ones among them, change."""

from __future__ import annotations

import dataclasses

from placement.solve.candidates import _grouped, group_offers
from tests.solver_fixtures import onprem, public, snapshot

CATALOG = (public("p4d", region="us-east-1"), public("p4d", region="us-east-1", zone="us-east-1b"),
           public("p4d", region="us-west-2"), public("p4d-spot", spot=True))


def _fresh(snap) -> list[tuple[int, str, list[str]]]:
    """The groups grouping every offer afresh gives (index, representative, members)."""
    return [(i, offer.id, [m.id for m in members])
            for i, (offer, members) in enumerate(_grouped(snap.offers, snap.blocked_offers).values())]


def _groups(snap) -> list[tuple[int, str, list[str]]]:
    return [(g.index, g.offer.id, [m.id for m in g.members]) for g in group_offers(snap)]


def test_the_catalogs_grouping_is_reused_only_while_the_offers_and_blocks_are_the_same() -> None:
    nodes = [onprem("n1"), onprem("n2"), onprem("n3", gpus=4)]
    first = snapshot([], nodes + list(CATALOG))
    assert _groups(first) == _fresh(first)
    assert [len(g.members) for g in group_offers(first)] == [2, 1, 2, 1, 1]  # the zones of one type share a group

    busy = snapshot([], [onprem("n1", gpus=2), nodes[1]] + list(CATALOG))  # a node's free GPUs change
    assert _groups(busy) == _fresh(busy)
    assert [len(g.members) for g in group_offers(busy)] == [1, 1, 2, 1, 1]

    blocked = snapshot([], nodes + list(CATALOG), blocked=[CATALOG[2].id])  # a region on cool-down
    assert _groups(blocked) == _fresh(blocked)
    assert CATALOG[2].id not in {m.id for g in group_offers(blocked) for m in g.members}
    assert CATALOG[2].id in {m.id for g in group_offers(first) for m in g.members}  # unblocked again

    repriced = list(CATALOG)
    repriced[1] = dataclasses.replace(CATALOG[1], price_per_hour=20.0)  # one zone gets cheaper: its own group
    cheaper = snapshot([], nodes + repriced)
    assert _groups(cheaper) == _fresh(cheaper)
    assert [len(g.members) for g in group_offers(cheaper)] == [2, 1, 1, 1, 1, 1]


def test_a_node_that_groups_with_a_catalog_offer_keeps_first_come_order() -> None:
    twin = dataclasses.replace(CATALOG[0], id="aws/us-east-1/p4d/od/twin", capacity=1)  # bounded, same key
    snap = snapshot([], [twin] + list(CATALOG))
    group_offers(snapshot([], list(CATALOG)))  # the catalog grouped alone first
    assert _groups(snap) == _fresh(snap)
    assert group_offers(snap)[0].members[0].id == twin.id
