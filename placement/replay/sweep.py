"""`--sweep field=v1,v2,...`: one policy per value of any policy field (a dotted path), and the front."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from policies.model import Policy


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """`weights.latency=0.25,0.5,1` -> ("weights.latency", [0.25, 0.5, 1]); values are read as YAML scalars."""
    field, sep, values = text.partition("=")
    if not sep or not field.strip() or not values.strip():
        raise ValueError(f"--sweep {text!r}: valid: FIELD=V1,V2,... with FIELD a dotted policy path, "
                         f"e.g. weights.latency=0.25,0.5,1,2,4 or priorities.high=5,10,20")
    return field.strip(), [yaml.safe_load(v.strip()) for v in values.split(",") if v.strip()]


def variant(policy: Policy, field: str, value: Any) -> Policy:
    """The policy with `field` (dotted, as in the policy file: caps.global.usd_per_hour) set to `value`."""
    data = policy.model_dump(mode="json", by_alias=True)
    node = data
    parts = field.split(".")
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"--sweep {field}: {part!r} is not a section of the policy (it is {child!r})")
        node = child
    if isinstance(node, dict) and parts[-1] not in node and len(parts) == 1:
        raise ValueError(f"--sweep {field}: no such policy field; valid: {', '.join(sorted(data))} and their "
                         f"fields (weights.latency, priorities.high, caps.global.usd_per_hour, ...)")
    node[parts[-1]] = value
    data["name"] = f"{policy.name} {field}={value}"
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"--sweep {field}={value}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def front(points: list[tuple[str, float, float]]) -> list[str]:
    """The names of the points no other point beats on both coordinates ($, wait), cheapest first."""
    kept = []
    for name, x, y in points:
        beaten = any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for n2, x2, y2 in points if n2 != name)
        if not beaten:
            kept.append((x, y, name))
    return [name for _, _, name in sorted(kept)]
