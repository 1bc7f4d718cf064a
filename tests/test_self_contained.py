"""A clone must be all a user needs: no tracked file refers to a path outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `../shared`, `/work/shared` (or another checkout), and a path built upwards to a sibling: `parent / "shared"`.
OUTSIDE = re.compile(r"""\.\./shared|/work/(shared|main|wt-)|\.parent\s*/\s*["']shared["']"""
                     r"""|parents\[\d+\]\s*/\s*["']shared["']""")
TEXT = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".txt", ".cfg", ".ini", ".sh", ""}


def outside_references(paths: list[Path], root: Path) -> list[str]:
    """`file:line: text` of each line that names a path outside the repository (this file's patterns excepted)."""
    found = []
    for path in paths:
        if path.suffix not in TEXT or path.resolve() == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(root)}:{n}: {line.strip()}" for n, line in enumerate(lines, 1)
                  if OUTSIDE.search(line)]
    return found


def test_no_tracked_file_refers_to_a_path_outside_the_repository() -> None:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [ROOT / name for name in out.decode().split("\0") if name]
    assert len(files) > 50  # the listing really ran
    assert outside_references(files, ROOT) == []


def test_the_check_catches_each_kind_of_outside_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('A = ROOT.parent / "shared" / "data"\nB = Path("/work/shared/data")\nC = "../shared/x.csv"\n'
                   'D = Path(__file__).parents[2] / "shared"\nE = ROOT / "configs" / "traces"\n')
    assert [ref.split(":")[1] for ref in outside_references([bad], tmp_path)] == ["1", "2", "3", "4"]
