"""The last rounds and the last day of spend, kept in the service actor's memory for the status page.

The store keeps what the engine must not lose (jobs, decisions, the spend ledger); this is only what the
page draws over time, so it starts empty when the actor restarts (the page says since when it counts).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

DAY_S = 86400.0
SPEND_SAMPLE_EVERY_S = 60.0  # one spend point a minute: a day is 1,440 points per scope, whatever the round interval


@dataclass(frozen=True, slots=True)
class RoundPoint:
    at: float
    seconds: float  # the whole round
    solve_seconds: float
    method: str
    placed: int
    queued: int


@dataclass(frozen=True, slots=True)
class SpendPoint:
    at: float
    rate_by_scope: Mapping[str, float]  # $/h of private and public work running
    limit_by_scope: Mapping[str, float]  # $/h each capped scope may spend


class History:
    """Thread-safe: rounds are recorded from the round thread, the page reads from the server's threads."""

    def __init__(self, started_at: float, rounds: int = 50, window_s: float = DAY_S,
                 sample_every_s: float = SPEND_SAMPLE_EVERY_S) -> None:
        self.started_at = started_at
        self._rounds: deque[RoundPoint] = deque(maxlen=rounds)
        self._spend: deque[SpendPoint] = deque()
        self._window_s, self._every_s = window_s, sample_every_s
        self._lock = threading.Lock()

    def add_round(self, point: RoundPoint, spend: SpendPoint) -> None:
        with self._lock:
            self._rounds.append(point)
            if not self._spend or spend.at - self._spend[-1].at >= self._every_s:
                self._spend.append(spend)
            while self._spend and self._spend[0].at < spend.at - self._window_s:
                self._spend.popleft()

    def rounds(self) -> list[RoundPoint]:
        with self._lock:
            return list(self._rounds)

    def spend(self) -> list[SpendPoint]:
        with self._lock:
            return list(self._spend)
