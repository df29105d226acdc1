"""What the broker hands a worker (a fetched job) and takes back (how an attempt failed)."""
from __future__ import annotations

from dataclasses import dataclass


class WorkerFenced(Exception):
    """This worker's heartbeat expired and its jobs were reclaimed: it must stop at once."""


@dataclass(frozen=True)
class Fetched:
    """A job as handed to a worker. `job` is empty for a queue entry with no record."""

    id: str
    job: str
    params: bytes
    attempts: int
    crashes: int
    failures: int
    raw_id: bytes = b""

    @property
    def malformed(self) -> bool:
        return not self.job


@dataclass(frozen=True)
class Failure:
    """How an attempt failed. kind: 'retry' (retries may repeat it), 'final' (never retried),
    or 'dead' (the job could not be run at all)."""

    kind: str
    error: str
    traceback: str = ""
    retries: int = 0
    retry_at: float = 0.0
