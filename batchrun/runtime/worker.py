"""A worker process: take jobs from the prioritised queues, run them, record the outcomes.

A job taken is always in this worker's processing list in Redis, never only
in memory: if the process dies, its supervisor (or any supervisor, once the
heartbeat expires) puts the job back. The worker registers its heartbeat once
booted; from then on its supervisor renews it (see Supervisor.vouch), so the
worker itself never needs the GIL to stay alive in Redis. Short jobs are taken and acknowledged
several per round trip (pacing.py says how many). `run_once` is one
iteration, so tests can drive a worker without processes.
"""
from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum

import orjson

from batchrun.definitions.config import Settings
from batchrun.definitions.registry import JobDefinition, Registry
from batchrun.errors import BatchrunError, JobInterrupted
from batchrun.ids import is_job_id, new_job_id
from batchrun.runtime import jobcontext
from batchrun.runtime.execute import Executor, Outcome
from batchrun.runtime.failures import attempt_failed, cannot_run
from batchrun.runtime.pacing import Pacer
from batchrun.runtime.slots import Slot, Slots
from batchrun.runtime.threads import job_threads
from batchrun.store.broker import Broker, Failure, Fetched, WorkerFenced

log = logging.getLogger("batchrun.worker")

IDLE_WAIT_S = 1.0
MAX_RETRY_DELAY_S = 2.0


class WorkerExit(IntEnum):
    """How a worker process ended; the supervisor decides what to do from this."""

    OK = 0
    BOOT_FAILED = 3
    FENCED = 4
    INTERRUPTED = 5
    RECYCLED = 6


@dataclass
class Identity:
    worker_id: str
    supervisor_id: str
    host: str
    threads: str = ""  # the native thread cap, as `status` shows it


class Worker:
    def __init__(
        self, broker: Broker, settings: Settings, registry: Registry, executor: Executor, identity: Identity,
        slot: Slot | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.registry = registry
        self.executor = executor
        self.identity = identity
        self.stopping = False
        self.parent_pid = os.getppid()
        self.pacer = Pacer()
        self.slot = slot or Slots(1)[0]
        self.running: tuple[str, float] | None = None  # job id and start of the attempt in the handler
        self.jobs_done = 0

    @property
    def worker_id(self) -> str:
        return self.identity.worker_id

    def boot(self) -> None:
        """Load the handlers first, however long imports take: the heartbeat registered next must be
        renewed within a TTL, and the supervisor vouches only for workers marked ready."""
        self.executor.load_handlers()
        info = {
            "host": self.identity.host,
            "pid": os.getpid(),
            "supervisor": self.identity.supervisor_id,
            "started_at": time.time(),
            "last_beat": time.time(),
            "threads": self.identity.threads,
        }
        self.broker.register_worker(self.worker_id, self.settings.heartbeat_ttl_s, info)
        self.slot.mark_ready()

    def run(self) -> WorkerExit:
        """Loop until asked to stop or orphaned (the parent-death signal normally kills an orphan first)."""
        delay = 0.05
        while not self.stopping and os.getppid() == self.parent_pid:
            try:
                self.run_once()
                delay = 0.05
            except BatchrunError as exc:
                log.warning("%s; retrying in %.2fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
            except WorkerFenced:
                log.error("heartbeat expired before taking a job; exiting")
                return WorkerExit.FENCED
            except JobInterrupted:
                log.warning("a job was interrupted by the supervisor; exiting so it can record why")
                return WorkerExit.INTERRUPTED
            if self.worn_out():
                return WorkerExit.RECYCLED
        return WorkerExit.OK

    def batch_limit(self) -> int:
        """The pacer's batch size, but never past max_jobs_per_worker."""
        size, limit = self.pacer.batch_size(), self.settings.max_jobs_per_worker
        return max(1, min(size, limit - self.jobs_done)) if limit else size

    def worn_out(self) -> bool:
        """Recycle after max_jobs_per_worker jobs, or once memory (leaks, caches) passes max_worker_memory."""
        limit, most = self.settings.max_jobs_per_worker, self.settings.max_worker_memory_bytes
        if limit and self.jobs_done >= limit:
            log.info("worker %s ran %d jobs; recycling it", self.worker_id, self.jobs_done)
            return True
        if most and self.jobs_done and _resident_bytes() > most:
            log.info("worker %s uses more than max_worker_memory after a job; recycling it", self.worker_id)
            return True
        return False

    def on_interrupt_signal(self, signum: int, frame: object) -> None:
        """SIGUSR1 from the supervisor: a job's time is up or it was cancelled. Checked against the
        job named in the slot, so a signal meant for a job that has just ended hits nothing."""
        running = self.running
        if running is not None and self.slot.interrupt_requested(*running):
            self.running = None
            raise JobInterrupted(f"job {running[0]} interrupted (timeout or cancel)")

    def run_once(self, idle_wait_s: float = IDLE_WAIT_S) -> bool:
        """Run one batch of jobs; block up to idle_wait_s for work when there is none. True if a job ran."""
        batch = self.broker.fetch(self.worker_id, self.settings.queues, self.batch_limit())
        if not batch:
            self.broker.wait_for_work(idle_wait_s)
            return False
        started = time.monotonic()
        successes: list[tuple[bytes, bytes]] = []
        try:
            for index, fetched in enumerate(batch):
                if index and (self.stopping or self.pacer.over_budget(time.monotonic() - started)):
                    self.broker.release(self.worker_id, [f.raw_id for f in batch[index:]])
                    break
                outcome = self.process(fetched)
                self.jobs_done += 1
                if outcome is not None:
                    successes.append((fetched.raw_id, outcome.result_json))
        finally:
            if successes:
                with _interrupt_signal_held():
                    self._retrying(lambda: self._ack(successes), what=f"{len(successes)} results")
        return True

    def process(self, fetched: Fetched) -> Outcome | None:
        """Run one job. A success is returned for the batch's single ack; anything else is recorded now."""
        if fetched.malformed or not is_job_id(fetched.id):
            self._bury(fetched)
            return None
        try:
            definition = self.registry.get(fetched.job)
            params = definition.validate_params(_decode_params(fetched.params))
        except (BatchrunError, ValueError) as exc:
            self._record_failure(fetched, cannot_run(f"cannot run: {exc}"))
            return None
        outcome = self._limited(self._execute(fetched, definition, params))
        if outcome.ok:
            log.debug("job %s (%s) succeeded", fetched.id, fetched.job)
            return outcome
        log.warning("job %s (%s) failed: %s", fetched.id, fetched.job, outcome.error)
        self._record_failure(fetched, attempt_failed(definition, fetched.failures, outcome.error, outcome.traceback,
                                                     retry=outcome.retry))
        return None

    def _execute(self, fetched: Fetched, definition: JobDefinition, params: dict) -> Outcome:
        """Run with the job's limits written in this worker's slot, where the supervisor watches them."""
        started = time.monotonic()
        deadline = started + definition.timeout_s if definition.timeout_s else None
        self.slot.begin(fetched.id, started, deadline, definition.memory_limit_bytes or self.settings.memory_limit_bytes,
                        fetched.job)
        self.running = (fetched.id, started)
        jobcontext.begin((fetched.id, fetched.job, fetched.attempts, params, deadline, self.broker, self.worker_id,
                          self.settings.progress_interval_s, self.settings.max_checkpoint_bytes))
        try:
            if definition.threads:
                with job_threads(definition.threads):
                    outcome = self.executor.run(definition, params)
            else:
                outcome = self.executor.run(definition, params)
        except Exception as exc:
            outcome = Outcome(False, error=f"cannot run: {exc!r}", traceback=traceback.format_exc())
        finally:
            jobcontext.end()
        self.running = None
        if self.slot.interrupt_requested(fetched.id, started):
            raise JobInterrupted(f"job {fetched.id} was interrupted; its handler returned anyway")
        self.slot.end()
        self.pacer.observe(time.monotonic() - started)
        return outcome

    def _limited(self, outcome: Outcome) -> Outcome:
        size, limit = len(outcome.result_json), self.settings.max_result_bytes
        if outcome.ok and size > limit:
            return Outcome(False, error=f"result is {size} bytes as JSON; the limit is {limit} (max_result)",
                           retry=False)
        return outcome

    def _ack(self, successes: list[tuple[bytes, bytes]]) -> None:
        stored = self.broker.ack(self.worker_id, successes)
        if stored < len(successes):
            log.warning("%d jobs were reclaimed from this worker; their outcome here is dropped",
                        len(successes) - stored)

    def _record_failure(self, fetched: Fetched, failure: Failure) -> None:
        self._retrying(lambda: self.broker.fail(self.worker_id, fetched.id, failure), what=f"job {fetched.id}")

    def _retrying(self, store: Callable[[], object], what: str) -> None:
        """Store an outcome, retrying while Redis is away: a finished job must not run again for nothing."""
        delay = 0.05
        while True:
            try:
                store()
                return
            except BatchrunError as exc:
                if os.getppid() != self.parent_pid:
                    log.error("orphaned and cannot record %s; reclaimed once this worker's heartbeat expires", what)
                    return
                log.warning("cannot record %s yet: %s", what, exc)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)

    def _bury(self, fetched: Fetched) -> None:
        new_id = new_job_id()
        problem = "has no job record" if fetched.malformed else "is not a job id"
        reason = f"malformed message: queue entry {fetched.id[:200]!r} {problem}"
        log.error("%s; dead-lettered as %s", reason, new_id)
        self.broker.bury(self.worker_id, fetched.raw_id, new_id, reason)


@contextmanager
def _interrupt_signal_held() -> Iterator[None]:
    """Results already earned are stored even if an interrupt for the next job is on its way."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _decode_params(raw: bytes) -> dict:
    params = orjson.loads(raw)
    if not isinstance(params, dict):
        raise ValueError(f"params must be a JSON object, got {type(params).__name__}")
    return params


def _resident_bytes() -> int:
    """psutil is imported here, on the first check of max_worker_memory, rather than by every worker at start."""
    import psutil

    return psutil.Process().memory_info().rss
