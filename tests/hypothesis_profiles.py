"""Hypothesis profiles for the test suite, registered on import (tests/conftest.py imports this first).

- `ci` (loaded by default, so `python -m pytest` and `.ci/run` are deterministic): every run draws the
  same examples (`derandomize=True`), and no example database carries failures from one run to the next.
  A derandomised profile ignores `--hypothesis-seed`.
- `explore`: the same number of examples, drawn at random; `--hypothesis-seed=N` picks the draw, so a
  property can be run under many seeds (`--hypothesis-profile=explore --hypothesis-seed=7`).
- `thorough`: ten times as many random examples, for a developer before a change to the core lands:
  `python -m pytest -p hypothesis --hypothesis-profile=thorough tests/test_solver_properties.py`.

The random profiles keep failing examples in `.hypothesis/` at the repository root (git-ignored) and
replay them first on the next run; every profile prints the blob that reproduces a failure.
Tests that set their own `max_examples` keep it under every profile.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

CI_EXAMPLES = 100
THOROUGH_EXAMPLES = 10 * CI_EXAMPLES
_DATABASE = Path(__file__).resolve().parent.parent / ".hypothesis" / "examples"

settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", max_examples=CI_EXAMPLES, derandomize=False, print_blob=True,
                          database=DirectoryBasedExampleDatabase(_DATABASE))
settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, derandomize=False, print_blob=True,
                          database=DirectoryBasedExampleDatabase(_DATABASE))
settings.load_profile("ci")
