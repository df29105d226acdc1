"""How long a failed job waits before its next attempt.

Retrying at once hammers whatever just failed (a database, an API, a full
disk), so the wait grows with each failure, up to a cap so a job that failed
ten times still runs again within minutes. When one outage fails many jobs
together, their retries would otherwise land together too; "equal jitter"
spreads them over [base/2, base] while keeping at least half the wait. The
caller supplies the random number, so tests are exact and the Lua scripts that
schedule retries stay deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("fixed", "exponential")
# A float overflows past 2**1023; a thousand doublings of any delay is long past every cap anyway.
_MAX_DOUBLINGS = 1000


@dataclass(frozen=True)
class Backoff:
    kind: str
    delay_s: float
    max_s: float
    jitter: bool

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown backoff kind {self.kind!r} (expected one of: {', '.join(KINDS)})")

    def delay_s_for(self, failure: int, u: float) -> float:
        """Seconds to wait after the `failure`-th failed attempt (1 = the first); `u` is uniform in [0, 1)."""
        if failure < 1:
            raise ValueError(f"failure counts from 1, got {failure}")
        base = self.delay_s if self.kind == "fixed" else self._exponential_s(failure)
        return base * (0.5 + 0.5 * u) if self.jitter else base

    def _exponential_s(self, failure: int) -> float:
        doublings = min(failure - 1, _MAX_DOUBLINGS)
        return min(self.max_s, self.delay_s * 2.0 ** doublings)


DEFAULT = Backoff("exponential", 1.0, 300.0, True)
