"""What a handler may ask of the job it runs: report progress, save and read a checkpoint, know itself.

    import batchrun

    def train(shards: int) -> dict:
        state = batchrun.last_checkpoint() or {"next": 0, "total": 0}
        for shard in range(state["next"], shards):
            state["total"] += work(shard)
            state["next"] = shard + 1
            batchrun.checkpoint(state)
            batchrun.progress(shard + 1, shards, f"shard {shard}")
        return state

Progress writes are throttled to one per `progress_interval`; the last value is
written before the job's outcome (Worker.flush_progress). Checkpoints are
written at once, by a script fenced by the attempt (store/lua/checkpoint.lua).
The worker sets the running job around each handler call; outside one, every
function here raises NotInJob.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from batchrun.errors import NotInJob, StaleAttempt
from batchrun.store.broker import Broker


@dataclass(frozen=True)
class CurrentJob:
    """The running job: `deadline` is the seconds left before its timeout (None without one)."""

    id: str
    name: str
    attempt: int
    params: dict[str, Any]
    deadline: float | None


@dataclass
class RunningJob:
    id: str
    name: str
    attempt: int
    params: dict[str, Any]
    deadline: float | None  # time.monotonic() at which the timeout strikes
    broker: Broker
    worker_id: str
    progress_interval_s: float
    max_checkpoint_bytes: int
    pending: bytes | None = None
    last_write: float = field(default=-math.inf)

    def write_progress(self, now: float) -> None:
        payload, self.pending = self.pending, None
        self.last_write = now
        if payload is not None:
            self.broker.progress(self.worker_id, self.id, payload)


Source = tuple[str, str, int, dict[str, Any], "float | None", Broker, str, float, int]

# The job being run: its facts as a plain tuple (cheap to set for every job on the hot path), and the
# RunningJob built from them on the first call a handler makes.
_source: Source | None = None
_running: RunningJob | None = None


def begin(source: Source) -> None:
    """(id, name, attempt, params, deadline, broker, worker id, progress_interval_s, max_checkpoint_bytes)"""
    global _source, _running
    _source, _running = source, None


def end() -> None:
    """Called by the worker after the handler returned or raised: the last progress is written."""
    global _source, _running
    job, _source, _running = _running, None, None
    if job is not None and job.pending is not None:
        job.write_progress(time.monotonic())


def progress(done: float, total: float | None = None, message: str | None = None) -> None:
    """Record how far the job has got; shown by `batchrun show` and sent as a `progress` event."""
    job = _require("progress")
    _check_progress(done, total)
    job.pending = orjson.dumps({"done": done, "total": total, "message": message, "at": time.time()})
    now = time.monotonic()
    if now - job.last_write >= job.progress_interval_s:
        job.write_progress(now)


def checkpoint(state: Any) -> None:
    """Save a JSON value the next attempt of this job can resume from. Raises ValueError (and keeps
    the previous checkpoint) for a value that is not JSON or is over max_checkpoint."""
    job = _require("checkpoint")
    try:
        payload = orjson.dumps(state)
    except TypeError as exc:
        raise ValueError(f"a checkpoint must be JSON-serialisable: {exc}") from None
    if len(payload) > job.max_checkpoint_bytes:
        raise ValueError(f"checkpoint is {len(payload)} bytes as JSON; the limit is {job.max_checkpoint_bytes} "
                         "(max_checkpoint)")
    if not job.broker.checkpoint(job.worker_id, job.id, job.attempt, payload):
        raise StaleAttempt(f"job {job.id} attempt {job.attempt} was reclaimed from this worker; "
                           "its checkpoint is refused")


def last_checkpoint() -> Any:
    """The latest checkpoint saved for this job (by this attempt or an earlier one), or None."""
    job = _require("last_checkpoint")
    [raw] = job.broker.job_fields(job.id, "checkpoint")
    return None if raw is None else orjson.loads(raw)


def current_job() -> CurrentJob:
    job = _require("current_job")
    left = None if job.deadline is None else max(0.0, job.deadline - time.monotonic())
    return CurrentJob(job.id, job.name, job.attempt, dict(job.params), left)


def _require(what: str) -> RunningJob:
    global _running
    if _running is None:
        if _source is None:
            raise NotInJob(f"batchrun.{what}() can only be called from a job's handler while it runs")
        _running = RunningJob(*_source)
    return _running


def _check_progress(done: float, total: float | None) -> None:
    for name, value in (("done", done), ("total", total)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ValueError(f"progress {name} must be a finite number >= 0, got {value!r}")
    if total is not None and done > total:
        raise ValueError(f"progress done ({done}) is more than total ({total})")
