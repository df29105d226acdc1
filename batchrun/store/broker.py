"""The Redis broker: every change of a job's state, each one atomic script.

The worker, the supervisor and the client talk to Redis only through this
class (reads for inspection live in inspection.py). redis-py's connection errors
are translated at this boundary (translate.py) into RedisUnavailable, so callers
handle one error type; what it hands a worker and takes back is in records.py.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis.commands.core import Script

from batchrun.errors import BrokerError
from batchrun.store.clients import is_cluster
from batchrun.store.codec import text as _text
from batchrun.store.durability import Durability
from batchrun.store.keys import Keys
from batchrun.store.bulkcall import call_streamed
from batchrun.store.leancall import LeanCaller
from batchrun.store.leansubmit import EnqueueCalls
from batchrun.store.packing import evalsha
from batchrun.store.records import Failure, Fetched, WorkerFenced
from batchrun.store.scripts import Scripts
from batchrun.store.translate import translated

if TYPE_CHECKING:
    from batchrun.definitions.config import Settings

__all__ = ["Broker", "Failure", "Fetched", "WorkerFenced", "translated"]

R = TypeVar("R")

WAKE_TOKEN_CAP = 1024
BULK_CHUNK = 2000
PROMOTE_CHUNK = 1000
PURGE_CHUNK = 1000
SWEEP_CHUNK = 1000
FAIL_DEAD = 1
FAIL_RETRYING = 2


class Broker:
    """Every job-state change, one script call each. `events_cap` is the events stream's length
    (0: no events); `result_ttl_s` how long finished and cancelled jobs stay readable."""

    def __init__(self, client: redis.Redis, namespace: str, *, events_cap: int = 10_000,
                 result_ttl_s: float = 7 * 86400, min_replicas: int = 0, replica_timeout_s: float = 1.0) -> None:
        self.client = client
        self.durable = Durability(client, min_replicas, replica_timeout_s)
        self.keys = Keys(namespace)
        self.scripts = Scripts(client)
        self.lean = LeanCaller(client)
        self.events_cap = events_cap
        self.result_ttl_ms = _ms(result_ttl_s)
        self.lean_submits = not (self.durable.wanted or is_cluster(client))  # else redis-py's path (leancall.py)
        self.enqueue_calls = EnqueueCalls(self.keys, self.scripts.enqueue, events_cap, WAKE_TOKEN_CAP)

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: "Settings") -> "Broker":
        return cls(client, settings.namespace, events_cap=settings.event_history, result_ttl_s=settings.result_ttl_s,
                   min_replicas=settings.min_replicas, replica_timeout_s=settings.replica_timeout_s)

    def _context(self) -> list[object]:
        """The first three arguments of every job-state script (see lua/lib.lua)."""
        return [self.keys.prefix, time.time(), self.events_cap]

    @translated
    def enqueue(self, job_id: str, job: str, params_json: bytes, queue: str, due: float = 0.0) -> bool:
        """False if the id exists. With random ids that only happens when a retried call had
        already succeeded, so callers that made the id need not treat it as an error.
        A due time in the future schedules the job instead of queueing it."""
        if self.lean_submits:
            packed = self.enqueue_calls.packed(job_id, job, params_json, queue, due)
            return bool(self.lean.call(self.scripts.enqueue, packed))
        k = self.keys
        keys = [k.job(job_id), k.queue(queue), k.scheduled]
        args = [*self._context(), job_id, job, params_json, queue, WAKE_TOKEN_CAP, due]
        return bool(self._call(self.scripts.enqueue, keys, args, [job_id]))

    @translated
    def enqueue_many(self, job: str, queue: str, items: Sequence[tuple[str, bytes]], due: float = 0.0) -> int:
        """Bulk enqueue of (id, params JSON) pairs, a chunk per script call, each chunk sent while the
        server runs the one before (store/bulkcall.py)."""
        keys = [self.keys.queue(queue), self.keys.wake, self.keys.scheduled]
        calls = ((keys, [*self._context(), job, queue, WAKE_TOKEN_CAP, due,
                         *(x for pair in items[start:start + BULK_CHUNK] for x in pair)])
                 for start in range(0, len(items), BULK_CHUNK))
        return sum(self._call_many(self.scripts.enqueue_many, calls, [job_id for job_id, _ in items]))

    def _call(self, script: Script, keys: list[str], args: list[Any], job_ids: list[str]) -> Any:
        """One script call that creates jobs: with min_replicas, it returns only once that many replicas
        hold them (store/durability.py)."""
        if self.durable.wanted:
            return self.durable.call(script, keys, args, job_ids)
        if not self.lean_submits:
            return script(keys=keys, args=args)
        return self.lean.call(script, evalsha(script, keys, args))

    def _call_many(self, script: Script, calls: Iterable[tuple[list[str], list[Any]]],
                   job_ids: list[str] | None) -> list[Any]:
        """Several calls of one script, streamed down one connection where possible: redis-py's cluster
        pipelines refuse scripts, and a durable submit waits after each call. job_ids None: not a submit,
        never waited for."""
        if (job_ids is not None and self.durable.wanted) or is_cluster(self.client):
            return [self._call(script, keys, args, job_ids) if job_ids is not None else script(keys=keys, args=args)
                    for keys, args in calls]
        return call_streamed(self.client, script, calls)

    @translated
    def enqueue_controlled(self, job_id: str, job: str, params_json: bytes, queue: str, due: float = 0.0, *,
                           unique_key: str = "", limit: int | None = None) -> tuple[str, bool]:
        """Enqueue a unique or limited job (enqueue_controlled.lua); returns (id, created). For a unique
        job whose twin has not ended, that twin's id and False."""
        k = self.keys
        found, created = self._call(
            self.scripts.enqueue_controlled, [k.job(job_id), k.unique],
            [*self._context(), job_id, job, params_json, queue, WAKE_TOKEN_CAP, due, unique_key,
             "" if limit is None else limit], [job_id])
        return _text(found), bool(created)

    @translated
    def fire(self, schedule_id: str, due: float, job_id: str, job: str, params_json: bytes, queue: str, *,
             unique_key: str = "", limit: int | None = None) -> int:
        """Fire one due time of a schedule (fire.lua): 1 queued, 2 recorded but its unique twin runs,
        0 fired already (by this or another supervisor)."""
        k = self.keys
        return int(self._call(
            self.scripts.fire, [k.schedules, k.job(job_id)],
            [*self._context(), schedule_id, repr(due), job_id, job, params_json, queue, WAKE_TOKEN_CAP,
             unique_key, "" if limit is None else limit], [job_id]))

    @translated
    def mark_schedules(self, handled: dict[str, float]) -> None:
        """Record a first 'handled up to' due time for schedules never seen before (never overwriting one),
        so that due times missed while every supervisor is down are known as missed."""
        if handled:
            with self.client.pipeline(transaction=False) as pipe:
                for schedule_id, due in handled.items():
                    pipe.hsetnx(self.keys.schedules, schedule_id, repr(due))
                pipe.execute()

    @translated
    def set_paused(self, queues: Sequence[str], paused: bool) -> int:
        """Pause or resume queues (pause.lua); returns how many changed."""
        k = self.keys
        return int(self.scripts.pause(keys=[k.paused, k.wake, *map(k.queue, queues)],
                                      args=["pause" if paused else "resume", WAKE_TOKEN_CAP, *queues]))

    @translated
    def register_worker(self, worker_id: str, ttl_s: float, info: dict[str, str | int | float]) -> None:
        fields = [item for pair in info.items() for item in pair]
        self.scripts.register(
            keys=[self.keys.worker(worker_id), self.keys.workers, self.keys.expiries],
            args=[worker_id, _ms(ttl_s), *fields],
        )

    @translated
    def beat(self, worker_ids: Sequence[str], ttl_s: float) -> list[bool]:
        """Renew several heartbeats in one call. False for a worker whose heartbeat had expired:
        it has been presumed dead."""
        if not worker_ids:
            return []
        reply = self.scripts.beat(keys=[self.keys.expiries, *(self.keys.worker(w) for w in worker_ids)],
                                  args=[_ms(ttl_s), time.time(), *worker_ids])
        return [bool(alive) for alive in reply]

    @translated
    def fetch(self, worker_id: str, queues: Sequence[str], limit: int = 1) -> list[Fetched]:
        """Up to `limit` jobs, highest priority first; empty when every queue is empty."""
        k = self.keys
        reply = self.scripts.fetch(
            keys=[k.processing(worker_id), k.worker(worker_id), k.wake, *map(k.queue, queues)],
            args=[*self._context(), worker_id, limit],
        )
        if reply == -1:
            raise WorkerFenced(worker_id)
        return [
            Fetched(_text(reply[i]), _text(reply[i + 1]), reply[i + 2], int(reply[i + 3]), int(reply[i + 4]),
                    int(reply[i + 5]), raw_id=reply[i])
            for i in range(0, len(reply), 6)
        ]

    @translated
    def release(self, worker_id: str, raw_ids: Sequence[bytes]) -> int:
        """Give back jobs taken but not started, to the front of their queues."""
        return self.scripts.release(
            keys=[self.keys.processing(worker_id)], args=[*self._context(), self.result_ttl_ms, *raw_ids])

    @translated
    def wait_for_work(self, timeout_s: float) -> bool:
        """Block until an enqueue pushes a wake-up token, or the timeout passes."""
        return self.client.blpop([self.keys.wake], timeout=timeout_s) is not None

    @translated
    def wake(self, count: int) -> None:
        """Push wake-up tokens so blocked workers return at once (used when stopping)."""
        self.client.lpush(self.keys.wake, *["1"] * max(1, count))

    @translated
    def ack(self, worker_id: str, results: Sequence[tuple[bytes, bytes]]) -> int:
        """Record successes, given as (raw job id, result JSON); returns how many were still ours."""
        k = self.keys
        flat = [x for pair in results for x in pair]
        return self.scripts.ack(
            keys=[k.processing(worker_id), k.worker(worker_id)],
            args=[*self._context(), self.result_ttl_ms, *flat],
        )

    @translated
    def fail(self, worker_id: str, job_id: str, failure: Failure) -> int:
        """Returns FAIL_RETRYING, FAIL_DEAD (or cancelled, if that was asked), or 0 when the job
        was no longer this worker's."""
        k = self.keys
        return int(self.scripts.fail(
            keys=[k.processing(worker_id), k.job(job_id), k.worker(worker_id), k.scheduled],
            args=[*self._context(), job_id, failure.kind, failure.error, failure.traceback,
                  failure.retries, failure.retry_at, self.result_ttl_ms],
        ))

    @translated
    def progress(self, worker_id: str, job_id: str, progress_json: bytes) -> bool:
        """False when the job is no longer this worker's."""
        k = self.keys
        return bool(self.scripts.progress(keys=[k.processing(worker_id), k.job(job_id)],
                                          args=[*self._context(), job_id, progress_json]))

    @translated
    def checkpoint(self, worker_id: str, job_id: str, attempt: int, state_json: bytes) -> bool:
        """False when the write was refused: this attempt is no longer the job's current one."""
        k = self.keys
        return bool(self.scripts.checkpoint(keys=[k.processing(worker_id), k.job(job_id)],
                                            args=[job_id, attempt, state_json, time.time()]))

    @translated
    def bury(self, worker_id: str, raw: bytes, new_id: str, reason: str) -> bool:
        k = self.keys
        done = self.scripts.bury(
            keys=[k.processing(worker_id), k.job(new_id), k.worker(worker_id)],
            args=[*self._context(), raw, new_id, reason],
        )
        return bool(done)

    @translated
    def reclaim(
        self, worker_id: str, *, count_crash: bool, crash_limit: int, reason: str, only_if_expired: bool,
        fallback_queue: str,
    ) -> tuple[int, int] | None:
        """Returns (requeued, dead-lettered), or None when the worker's heartbeat is still alive.

        Entries with no usable record go to fallback_queue, where a worker dead-letters them with a reason.
        """
        k = self.keys
        reply = self.scripts.reclaim(
            keys=[k.processing(worker_id), k.worker(worker_id), k.workers, k.queue(fallback_queue), k.expiries],
            args=[*self._context(), worker_id, int(count_crash), crash_limit, reason, int(only_if_expired),
                  self.result_ttl_ms],
        )
        if reply == -1:
            return None
        return int(reply[0]), int(reply[1])

    @translated
    def promote(self, fallback_queue: str, limit: int = PROMOTE_CHUNK) -> tuple[int, float | None]:
        """Queue the scheduled jobs that are due; returns how many moved and when the next one is due."""
        moved, next_due = self.scripts.promote(
            keys=[self.keys.scheduled, self.keys.queue(fallback_queue)],
            args=[*self._context(), limit, WAKE_TOKEN_CAP],
        )
        return int(moved), float(next_due) if next_due else None

    @translated
    def cancel(self, job_id: str) -> str:
        """'cancelled', 'cancelling' (it runs; its supervisor stops it), 'missing', or 'ended' (nothing to do)."""
        k = self.keys
        return _text(self.scripts.cancel(
            keys=[k.job(job_id), k.scheduled, k.cancelling], args=[*self._context(), job_id, self.result_ttl_ms]))

    @translated
    def open_batch(self, batch_id: str, fields: dict[str, str | int | float]) -> bool:
        """Create a batch's record; False if the id is taken (make another)."""
        flat = [x for pair in fields.items() for x in pair]
        return bool(self.scripts.batch_open(keys=[self.keys.batch(batch_id), self.keys.batches],
                                            args=[time.time(), batch_id, *flat]))

    @translated
    def enqueue_batch(self, batch_id: str, job: str, queue: str, chunks: Sequence[tuple[int, Sequence[bytes]]]) -> int:
        """Queue chunks of a batch's jobs, given as (index of the first, params JSON of each), in one pipeline."""
        k = self.keys
        calls = [([k.batch(batch_id), k.queue(queue), k.wake],
                  [*self._context(), batch_id, job, queue, WAKE_TOKEN_CAP, first, *payloads])
                 for first, payloads in chunks]
        replies = self._call_many(self.scripts.batch_enqueue, calls, [batch_id])
        if -2 in replies:
            raise BrokerError(f"batch {batch_id} was cancelled while its jobs were being queued")
        if -1 in replies:
            raise BrokerError(f"batch {batch_id}'s record vanished while its jobs were being queued")
        return sum(replies)

    @translated
    def close_batch(self, batch_id: str) -> int:
        """Refuse further chunks of a batch, and stop counting inputs never queued (batch_close.lua)."""
        return int(self.scripts.batch_close(keys=[self.keys.batch(batch_id)], args=self._context()))

    @translated
    def cancel_many(self, job_ids: Sequence[str]) -> list[str]:
        """cancel() for each id, one script call each (each job changes atomically), in one pipeline."""
        k = self.keys
        calls = [([k.job(job_id), k.scheduled, k.cancelling], [*self._context(), job_id, self.result_ttl_ms])
                 for job_id in job_ids]
        return [_text(outcome) for outcome in self._call_many(self.scripts.cancel, calls, None)]

    @translated
    def job_fields(self, job_id: str, *fields: str) -> list[str | None]:
        return [None if v is None else _text(v) for v in self.client.hmget(self.keys.job(job_id), fields)]

    @translated
    def cancel_requests(self) -> list[str]:
        return sorted(_text(i) for i in self.client.smembers(self.keys.cancelling))

    @translated
    def drop_stale_cancel_requests(self, job_ids: Sequence[str]) -> None:
        """Forget requests for jobs that no longer run (they ended before anyone stopped them)."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "state")
            states = pipe.execute()
        stale = [j for j, state in zip(job_ids, states) if state != b"running"]
        if stale:
            self.client.srem(self.keys.cancelling, *stale)

    @translated
    def requeue(self, job_ids: Sequence[str], fresh: bool = False) -> list[int]:
        """Per id: 1 requeued, 0 not dead-lettered, -1 a malformed entry with nothing to run, -2 a unique
        job whose equal twin is live.
        fresh drops the jobs' checkpoints, so they start from zero."""
        if not job_ids:
            return []
        reply = self.scripts.requeue(keys=[self.keys.dead], args=[*self._context(), WAKE_TOKEN_CAP, int(fresh), *job_ids])
        return [int(r) for r in reply]

    @translated
    def purge_dead(self, limit: int = PURGE_CHUNK) -> int:
        return int(self.scripts.purge(keys=[self.keys.dead], args=[*self._context(), limit]))

    @translated
    def expired_workers(self) -> list[str]:
        """Registered workers whose heartbeat is gone: their processing lists need reclaiming."""
        workers = sorted(_text(w) for w in self.client.smembers(self.keys.workers))
        with self.client.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.exists(self.keys.worker(worker_id))
            alive = pipe.execute()
        return [w for w, a in zip(workers, alive) if not a]

    @translated
    def sweep(self, lease_s: float, limit: int = SWEEP_CHUNK) -> tuple[float | None, list[str]]:
        """Workers whose heartbeat expired, each handed to this caller alone for `lease_s`, and the
        seconds until the next heartbeat expires (None when no worker is registered)."""
        reply = self.scripts.sweep(keys=[self.keys.expiries], args=[limit, _ms(lease_s)])
        next_ms = int(reply[0])
        return (None if next_ms < 0 else next_ms / 1000), [_text(w) for w in reply[1:]]

    @translated
    def workers_of(self, supervisor_id: str) -> list[tuple[str, int, float]]:
        """(worker id, pid, started_at) of the registered workers that a supervisor started."""
        workers = sorted(_text(w) for w in self.client.smembers(self.keys.workers))
        with self.client.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.hmget(self.keys.worker(worker_id), "supervisor", "pid", "started_at")
            infos = pipe.execute()
        return [(w, _number(int, pid), _number(float, started)) for w, (sup, pid, started) in zip(workers, infos)
                if sup is not None and _text(sup) == supervisor_id]


def _number(kind: Callable[[str], R], value: bytes | None) -> R | int:
    """A field of a record that may have been tampered with: 0 when it is not a number."""
    try:
        return kind(_text(value or b"0"))
    except ValueError:
        return 0


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
