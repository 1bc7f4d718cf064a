"""docs/architecture.md's table "decision -> function -> file" names functions that exist where it says."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def decision_rows() -> list[tuple[str, str, str]]:
    """(decision, function, file) of each row of the table under "Where each decision is made"."""
    section = DOC.read_text().split("## Where each decision is made", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 3 and cells[1].startswith("`"):
            rows.append((cells[0], cells[1].strip("`"), cells[2].strip("`")))
    return rows


def test_the_table_has_the_decisions_a_newcomer_looks_for():
    decisions = " ".join(d for d, _, _ in decision_rows())
    for word in ("placements", "queued reasons", "reservations", "migrations", "preemptions", "downscale",
                 "replica targets", "give-ups", "cool-downs", "repricing", "budgets", "rightsizing",
                 "memory estimates"):
        assert word in decisions, word


def test_every_function_named_is_defined_in_the_file_named():
    rows = decision_rows()
    assert len(rows) >= 20
    for decision, function, file in rows:
        path = ROOT / file
        assert path.is_file(), (decision, file)
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        found = module
        for part in function.split("."):
            found = getattr(found, part, None)
            assert found is not None, f"{decision}: no {function} in {file}"
        assert callable(found), (decision, function)
        owner = getattr(found, "__module__", None) or found.__qualname__
        assert owner == module.__name__, f"{decision}: {function} is imported into {file}, defined in {owner}"
        definition = re.compile(rf"^\s*def {re.escape(function.rsplit('.', 1)[-1])}\(", re.M)
        assert definition.search(path.read_text()), f"{decision}: {file} does not define {function}"


def test_the_readme_links_it():
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
