"""The Redis broker: every change of a job's state, each one atomic script.

The worker, the supervisor and the client talk to Redis only through this
class (reads for inspection live in inspect.py). redis-py's connection errors
are translated here into RedisUnavailable, so callers handle one error type.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import redis

from batchrun.errors import BrokerError, RedisUnavailable
from batchrun.keys import Keys
from batchrun.scripts import Scripts

P = ParamSpec("P")
R = TypeVar("R")

WAKE_TOKEN_CAP = 1024
BULK_CHUNK = 2000


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Turn redis-py's connection errors into our own, at the boundary."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisUnavailable(f"Redis is unreachable: {exc}") from exc
        except redis.RedisError as exc:
            raise BrokerError(f"Redis refused {method.__name__}: {exc}") from exc

    return wrapper


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
    raw_id: bytes = b""

    @property
    def malformed(self) -> bool:
        return not self.job


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class Broker:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.keys = Keys(namespace)
        self.scripts = Scripts(client)

    @translated
    def enqueue(self, job_id: str, job: str, params_json: bytes, queue: str) -> bool:
        """False if the id exists. With random ids that only happens when a retried call had
        already succeeded, so callers that made the id need not treat it as an error."""
        k = self.keys
        done = self.scripts.enqueue(
            keys=[k.job(job_id), k.queue(queue), k.wake],
            args=[job_id, job, params_json, queue, time.time(), WAKE_TOKEN_CAP],
        )
        return bool(done)

    @translated
    def enqueue_many(self, job: str, queue: str, items: Sequence[tuple[str, bytes]]) -> int:
        """Bulk enqueue of (id, params JSON) pairs, a chunk per script call, all chunks in one pipeline."""
        k = self.keys
        now = time.time()
        with self.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(items), BULK_CHUNK):
                flat = [x for pair in items[start:start + BULK_CHUNK] for x in pair]
                self.scripts.enqueue_many(
                    keys=[k.queue(queue), k.wake], args=[k.job_prefix, job, queue, now, WAKE_TOKEN_CAP, *flat],
                    client=pipe,
                )
            return sum(pipe.execute())

    @translated
    def register_worker(self, worker_id: str, ttl_s: float, info: dict[str, str | int | float]) -> None:
        fields = [item for pair in info.items() for item in pair]
        self.scripts.register(
            keys=[self.keys.worker(worker_id), self.keys.workers],
            args=[worker_id, _ms(ttl_s), *fields],
        )

    @translated
    def beat(self, worker_id: str, ttl_s: float) -> bool:
        """False means the heartbeat had expired: the worker has been presumed dead."""
        return bool(self.scripts.beat(keys=[self.keys.worker(worker_id)], args=[_ms(ttl_s), time.time()]))

    @translated
    def fetch(self, worker_id: str, queues: Sequence[str], limit: int = 1) -> list[Fetched]:
        """Up to `limit` jobs, highest priority first; empty when every queue is empty."""
        k = self.keys
        reply = self.scripts.fetch(
            keys=[k.processing(worker_id), k.worker(worker_id), k.wake, *map(k.queue, queues)],
            args=[k.job_prefix, time.time(), worker_id, limit],
        )
        if reply == -1:
            raise WorkerFenced(worker_id)
        return [
            Fetched(_text(reply[i]), _text(reply[i + 1]), reply[i + 2], int(reply[i + 3]), int(reply[i + 4]),
                    raw_id=reply[i])
            for i in range(0, len(reply), 5)
        ]

    @translated
    def release(self, worker_id: str, raw_ids: Sequence[bytes]) -> int:
        """Give back jobs taken but not started, to the front of their queues."""
        k = self.keys
        return self.scripts.release(keys=[k.processing(worker_id), k.wake], args=[k.prefix, *raw_ids])

    @translated
    def wait_for_work(self, timeout_s: float) -> bool:
        """Block until an enqueue pushes a wake-up token, or the timeout passes."""
        return self.client.blpop([self.keys.wake], timeout=timeout_s) is not None

    @translated
    def wake(self, count: int) -> None:
        """Push wake-up tokens so blocked workers return at once (used when stopping)."""
        self.client.lpush(self.keys.wake, *["1"] * max(1, count))

    @translated
    def ack(self, worker_id: str, results: Sequence[tuple[bytes, bytes]], result_ttl_s: float) -> int:
        """Record successes, given as (raw job id, result JSON); returns how many were still ours."""
        k = self.keys
        flat = [x for pair in results for x in pair]
        return self.scripts.ack(
            keys=[k.processing(worker_id), k.worker(worker_id)],
            args=[k.job_prefix, time.time(), _ms(result_ttl_s), *flat],
        )

    @translated
    def fail(self, worker_id: str, job_id: str, *, state: str, error: str, traceback: str = "") -> bool:
        k = self.keys
        done = self.scripts.fail(
            keys=[k.processing(worker_id), k.job(job_id), k.worker(worker_id), k.dead],
            args=[job_id, time.time(), state, error, traceback],
        )
        return bool(done)

    @translated
    def bury(self, worker_id: str, raw: bytes, new_id: str, reason: str) -> bool:
        k = self.keys
        done = self.scripts.bury(
            keys=[k.processing(worker_id), k.job(new_id), k.dead, k.worker(worker_id)],
            args=[raw, new_id, time.time(), reason],
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
            keys=[k.processing(worker_id), k.worker(worker_id), k.workers, k.dead, k.wake, k.queue(fallback_queue)],
            args=[worker_id, k.prefix, int(count_crash), crash_limit, reason, time.time(), int(only_if_expired)],
        )
        if reply == -1:
            return None
        return int(reply[0]), int(reply[1])

    @translated
    def expired_workers(self) -> list[str]:
        """Registered workers whose heartbeat is gone: their processing lists need reclaiming."""
        workers = sorted(_text(w) for w in self.client.smembers(self.keys.workers))
        with self.client.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.exists(self.keys.worker(worker_id))
            alive = pipe.execute()
        return [w for w, a in zip(workers, alive) if not a]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
