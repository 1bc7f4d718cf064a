"""The shape of the code, read from its source (ast; nothing is imported): the pure core imports only the
core and neither I/O nor the clock, the store does not load Ray or SkyPilot, no project modules import each
other in a cycle, and no module is over ~400 lines.

Every import counts: at module level, inside a function (a late import hides a dependency, it does not
remove it) and under `TYPE_CHECKING`. An import names the module it reads from (`from placement.solve import
milp` reads `placement.solve.milp`, `from placement.debt import account` reads the package `placement.debt`).
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("placement", "policies", "clouds")
MAX_LINES = 400

# The pure core: `Snapshot + Policy -> Plan` and what it is built from, decided without Ray, SkyPilot, the
# store, the CLI, a clock or I/O (DESIGN.md, principle 1). A name covers the module and, for a package,
# every module under it. Each is here because reading it shows no I/O:
CORE = (
    "placement.model",  # value objects: Job, Offer, Snapshot, Plan, Reason
    "placement.model_shapes",  # a table of model architectures, constants only
    "placement.solve",  # decide, the State, limits, chains, candidates, costs, forecast, the MILP, the repack,
    # explanations, downscaling
    "policies.model",  # the Policy: a frozen pydantic model
    "policies.debt",  # the policy's `debt:` block
    "placement.yamlio.errors",  # the exceptions a policy's validators raise: values, no YAML read
    "placement.memory_estimate.facts",  # a model's facts and the estimator's constants (the default memory margin)
    "placement.memory_estimate.activations",  # arithmetic over the facts: not its calibration, which reads a CSV
    "placement.memory_estimate.estimate",
)

# The service, the store, the CLI and the providers: what the core must never import.
OUTER = ("placement.service", "placement.actor", "placement.cluster", "placement.client", "placement.reconciler",
         "placement.store", "placement.cli", "clouds")
# Modules that reach a process, a file, a socket, a database or the clock: the core decides without them.
# (`datetime` is not among them: turning a given timestamp into a UTC day is arithmetic; reading the clock is
# checked apart, below.)
IO_MODULES = frozenset({"ray", "sky", "sqlite3", "os", "sys", "pathlib", "time", "io", "shutil",
                        "subprocess", "socket", "threading", "multiprocessing", "csv", "tempfile", "urllib", "http",
                        "psutil", "pynvml", "yaml"})

# Core imports that are known and accepted, each with why.
ALLOWED_CORE_IMPORTS = {
    # The solver's wall-clock safety net (`time.perf_counter` deadlines, 20 x the round's budget, logged as an
    # error when reached): the round is bounded by work (`solve/work.py`), so the clock decides only past it.
    ("placement.solve.engine", "time"),
    # A round pauses garbage collection only where it is the process's only Python thread (`threading.
    # active_count`): how memory is reclaimed, not what is decided.
    ("placement.solve.engine", "threading"),
    ("placement.solve.repack", "time"),
    # Measures the downscaling solve's seconds for its report; decides nothing (its program is bounded by work).
    ("placement.solve.downscale", "time"),
    # Silences HiGHS's own printing to file descriptor 1 around a solve; decides nothing.
    ("placement.solve.milp", "os"),
    ("placement.solve.milp", "sys"),
    # A policy's GPU names are made canonical (SkyPilot's catalog names) when the policy is validated, as it is
    # loaded; no decision reads the catalog.
    ("policies.debt", "clouds.gpus"),
}
# Known wrong-way imports outside the core, listed so that no other one creeps in unseen.
ALLOWED_OUTER_IMPORTS: set[tuple[str, str]] = set()

# Late imports (inside a function) that close a cycle, in modules other engineers own: being fixed (issue 17).
ALLOWED_CYCLE_IMPORTS = {
    ("placement.solve.forecast", "placement.solve.candidates"),  # `fits`, imported late
    ("placement.secret_exec", "placement.actor"),  # the service actor's name and namespace, imported late
}

# Modules other engineers are splitting right now: being split (issue 17).
LONG_MODULES_BEING_SPLIT = {"placement/solve/downscale.py"}


@cache
def modules() -> dict[str, Path]:
    """Every project module by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".")
    if modules()[importer].name != "__init__.py":
        package = package[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _type_only(tree: ast.Module) -> set[int]:
    """The ids of the imports under `if TYPE_CHECKING:`, which never run."""
    return {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
            and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            for statement in block.body for node in ast.walk(statement)}


@cache
def imports_of(name: str, *, at_run_time: bool = False) -> frozenset[str]:
    """What a module imports: project modules by dotted name, anything else by its top-level name.

    `at_run_time` leaves out the imports made for type checkers only."""
    found = set()
    tree = ast.parse(modules()[name].read_text(), str(modules()[name]))
    skipped = _type_only(tree) if at_run_time else set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                while target not in modules() and "." in target:
                    target = target.rsplit(".", 1)[0]
                found.add(target)
            elif target != "__future__":
                found.add(target.split(".")[0])
    return frozenset(found)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def core_modules() -> list[str]:
    return sorted(name for name in modules() if _within(name, CORE))


def test_every_core_name_is_a_module():
    assert all(any(_within(name, (entry,)) for name in modules()) for entry in CORE), CORE


def test_the_core_imports_only_the_core():
    wrong = sorted((name, target) for name in core_modules() for target in imports_of(name)
                   if target.split(".")[0] in PACKAGES and not _within(target, CORE)
                   and (name, target) not in ALLOWED_CORE_IMPORTS)
    assert wrong == [], "the pure core imports modules outside it"


def test_the_core_never_imports_the_service_store_cli_or_providers():
    wrong = sorted((name, target) for name in core_modules() for target in imports_of(name)
                   if _within(target, OUTER) and (name, target) not in ALLOWED_CORE_IMPORTS)
    assert wrong == []


def test_the_core_does_no_io():
    wrong = sorted((name, target) for name in core_modules() for target in imports_of(name)
                   if target in IO_MODULES and (name, target) not in ALLOWED_CORE_IMPORTS)
    assert wrong == [], "decision code imports Ray, SkyPilot, SQLite, the clock or I/O"


def clock_reads(name: str) -> set[str]:
    """The clock calls a module makes: `time.*` but `perf_counter` (which measures), and calls of `.now()`,
    `.utcnow()`, `.today()`."""
    tree = ast.parse(modules()[name].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            found.update(f"time.{a.name}" for a in node.names if a.name != "perf_counter")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "time":
            if node.attr != "perf_counter":
                found.add(f"time.{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("now", "utcnow", "today")):  # a call: `state.now`, a given time, is a field
            found.add(f"{ast.unparse(node.func.value)}.{node.func.attr}")
    return found


def test_the_core_never_reads_the_clock():
    # The time is given (`now`); `time.perf_counter` only measures, in the modules allowed `time` above.
    assert {name: reads for name in core_modules() if (reads := clock_reads(name))} == {}


def test_the_store_imports_neither_ray_nor_skypilot():
    # What importing the store loads, directly or through other project modules.
    store = [name for name in modules() if _within(name, ("placement.store",))]
    reached, stack = set(), list(store)
    while stack:
        name = stack.pop()
        for target in imports_of(name, at_run_time=True):
            if target in modules() and target not in reached and (name, target) not in ALLOWED_OUTER_IMPORTS:
                reached.add(target)
                stack.append(target)
    wrong = sorted((name, target) for name in {*store, *reached} for target in imports_of(name, at_run_time=True)
                   if target in ("ray", "sky"))
    assert wrong == []


def import_cycle() -> list[str] | None:
    """One cycle among project modules (depth-first search), or None."""
    graph = {name: sorted(t for t in imports_of(name) if t in modules() and t != name
                          and (name, t) not in ALLOWED_CYCLE_IMPORTS) for name in modules()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in graph[name]:
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycles():
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(modules())))
    assert import_cycle() is None


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(ROOT)): lines for path in modules().values()
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert sorted(set(long) - LONG_MODULES_BEING_SPLIT) == [], long


def test_the_checks_see_the_wrong_way_imports():
    # The checks above read the code as it is: a core module importing the store is caught.
    assert imports_of("placement.solve.engine") >= {"placement.model", "placement.solve.milp", "policies.model"}
    assert "placement.solve.limits" in imports_of("placement.solve.downscale")
    assert "placement.store" in imports_of("placement.service") and "ray" in imports_of("clouds.telemetry")
    assert clock_reads("placement.solve.engine") == set() and "time.monotonic" in clock_reads("placement.prometheus")


def test_every_allowance_is_still_needed():
    # An import fixed, or a module split, leaves its allowance behind: remove it from the lists above.
    stale = sorted(f"{name} -> {target}" for name, target in ALLOWED_CORE_IMPORTS | ALLOWED_OUTER_IMPORTS
                   | ALLOWED_CYCLE_IMPORTS if name not in modules() or target not in imports_of(name))
    stale += sorted(path for path in LONG_MODULES_BEING_SPLIT
                    if not (ROOT / path).is_file() or len((ROOT / path).read_text().splitlines()) <= MAX_LINES)
    assert stale == []
