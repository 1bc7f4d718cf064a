"""The pure placement core: `solve(Snapshot, Policy) -> Plan` (no Ray, no SkyPilot, no clock, no I/O)."""

from placement.solve.engine import RoundResult, solve, solve_round

__all__ = ["solve", "solve_round", "RoundResult"]
