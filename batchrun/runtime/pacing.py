"""How many jobs a worker takes per round trip: many when its jobs are short, one when they are long.

The rule: a worker takes no more than it expects to finish within BUDGET_S,
judging by the average duration of its recent jobs, and at most MAX_BATCH.
A job of unknown length counts as long, so the first fetch takes one. If a
batch runs past its budget anyway (a long job among short ones), the worker
gives back the jobs it has not started, so nothing it holds waits more than
about one job's length plus the budget while another worker could run it.
"""
from __future__ import annotations

from dataclasses import dataclass

BUDGET_S = 0.005
MAX_BATCH = 64
SMOOTHING = 0.2


@dataclass
class Pacer:
    average_s: float | None = None

    def batch_size(self) -> int:
        if self.average_s is None or self.average_s >= BUDGET_S:
            return 1
        return max(1, min(MAX_BATCH, int(BUDGET_S / max(self.average_s, 1e-6))))

    def observe(self, duration_s: float) -> None:
        if self.average_s is None:
            self.average_s = duration_s
        else:
            self.average_s += SMOOTHING * (duration_s - self.average_s)

    @staticmethod
    def over_budget(elapsed_s: float) -> bool:
        return elapsed_s > BUDGET_S
