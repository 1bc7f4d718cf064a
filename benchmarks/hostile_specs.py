"""How fast hostile job specs are refused, in-process, against the limits of `placement.yamlio`.

Writes each hostile file to a temporary directory (a billion-laughs alias bomb in unknown keys and
under `config:`, 10,000 levels of nesting, a 20 MB file, more aliases than allowed, a file of
100,000+ plain values) and loads it as `placement validate` does, best of `--repeat` runs. Prints
seconds and the error line, and writes JSON. A largest legal spec (just under the value limit) is
timed too: the cost of the limits for a spec that passes them.

    python benchmarks/hostile_specs.py [--repeat 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from placement.spec import load_specs  # noqa: E402
from placement.yamlio import MAX_ALIASES, MAX_NODES, ConfigError  # noqa: E402


def _bomb(under_config: bool) -> str:
    indent = "  " if under_config else ""
    lines = ["name: laughs", "run: echo hi"] + (["config:"] if under_config else [])
    lines.append(f'{indent}a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]')
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{indent}{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


CASES = {
    "alias bomb, unknown keys": lambda: _bomb(False),
    "alias bomb, under config:": lambda: _bomb(True),
    "10,000 nesting levels": lambda: "name: deep\nconfig: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "20 MB file": lambda: "name: huge\nrun: |\n" + ("  echo " + "x" * 90 + "\n") * 220_000,
    f"{MAX_ALIASES + 1:,} aliases": lambda: "name: many\nbase: &b 1\nconfig:\n" + "".join(
        f"  k{i}: *b\n" for i in range(MAX_ALIASES + 1)),
    f"{MAX_NODES + 1:,} plain values": lambda: "name: wide\nconfig:\n  v: [" + ", ".join(
        "1" for _ in range(MAX_NODES + 1)) + "]\n",
    "largest legal spec (values)": lambda: "name: wide\nconfig:\n  v: [" + ", ".join(
        "1" for _ in range(MAX_NODES - 10)) + "]\nrun: echo\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hostile_specs.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in CASES.items():
            path = Path(tmp) / "spec.yaml"
            path.write_text(make())
            best, outcome = float("inf"), ""
            for _ in range(args.repeat):
                start = time.perf_counter()
                try:
                    load_specs([path])
                    outcome = "accepted"
                except ConfigError as exc:
                    outcome = str(exc.errors[0]).replace(str(path), "spec.yaml")
                best = min(best, time.perf_counter() - start)
            rows.append({"case": name, "bytes": path.stat().st_size, "seconds": round(best, 4), "outcome": outcome})
            print(f"{name:32s} {path.stat().st_size:>12,} B  {best:7.3f} s  {outcome[:110]}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeat": args.repeat, "cases": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
