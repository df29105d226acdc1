"""Turning a failed attempt into what happens next: a retry after its backoff, or the end.

Workers (a handler raised) and supervisors (a job hit its time or memory
limit) both record failures, so the rule lives here once. The random number
for jitter is drawn here, not in Lua, where scripts must be deterministic.
"""
from __future__ import annotations

import random
import time

from batchrun.definitions.registry import JobDefinition
from batchrun.store.broker import Failure


def attempt_failed(definition: JobDefinition, failures_before: int, error: str, traceback: str = "", *,
                   retry: bool = True) -> Failure:
    """`failures_before` is how many attempts failed before this one; retry=False ends the job now."""
    failures_before = max(0, failures_before)
    if not retry or failures_before >= definition.retries:
        return Failure("final", error, traceback)
    delay = definition.backoff.delay_s_for(failures_before + 1, random.random())
    return Failure("retry", error, traceback, retries=definition.retries, retry_at=time.time() + delay)


def cannot_run(error: str) -> Failure:
    """The job could not even start (unknown job, invalid params): retrying cannot help."""
    return Failure("dead", error)
