"""Read-only views of a namespace: a job's record, queue depths, workers, in-flight and dead counts."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import redis

from batchrun.store.translate import translated
from batchrun.store.codec import text as _text
from batchrun.store.hosts import by_host
from batchrun.store.keys import Keys

INT_FIELDS = ("attempts", "failures", "crashes")
TIME_FIELDS = ("enqueued_at", "started_at", "finished_at", "due_at", "cancel_requested", "checkpoint_at")


class Inspector:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.keys = Keys(namespace)

    @translated
    def job(self, job_id: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        return decode_job(job_id, {_text(k): v for k, v in raw.items()})

    @translated
    def jobs(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Records of several jobs in one round trip; ids whose record is gone are left out."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.job(job_id))
            records = pipe.execute()
        return [decode_job(job_id, {_text(k): v for k, v in raw.items()})
                for job_id, raw in zip(job_ids, records) if raw]

    @translated
    def retrying_count(self) -> int:
        return self.client.scard(self.keys.retrying)

    @translated
    def scheduled_count(self) -> int:
        return self.client.zcard(self.keys.scheduled)

    @translated
    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(self.keys.queue(queue))
            return dict(zip(queues, pipe.execute()))

    @translated
    def workers(self) -> list[dict[str, Any]]:
        """Registered workers with their heartbeat (None when it expired) and in-flight count."""
        ids = sorted(_text(w) for w in self.client.smembers(self.keys.workers))
        with self.client.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.hgetall(self.keys.worker(worker_id))
                pipe.llen(self.keys.processing(worker_id))
            replies = pipe.execute()
        found = []
        for worker_id, beat, in_flight in zip(ids, replies[::2], replies[1::2]):
            info = {_text(k): _text(v) for k, v in beat.items()} if beat else None
            found.append({"id": worker_id, "alive": bool(beat), "in_flight": in_flight, "heartbeat": info})
        return found

    @translated
    def waiting(self, queues: Sequence[str], per_queue: int) -> dict[str, list[str]]:
        """The ids next in line in each queue (at most per_queue each), for a dashboard to show."""
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.lrange(self.keys.queue(queue), 0, per_queue - 1)
            return {q: [_text(i) for i in ids] for q, ids in zip(queues, pipe.execute())}

    @translated
    def dead_count(self) -> int:
        return self.client.llen(self.keys.dead)

    @translated
    def dead_ids(self, start: int = 0, stop: int = -1) -> list[str]:
        return [_text(i) for i in self.client.lrange(self.keys.dead, start, stop)]

    @translated
    def paused(self) -> list[str]:
        return sorted(_text(q) for q in self.client.smembers(self.keys.paused))

    @translated
    def waiting_counts(self, jobs: Sequence[str]) -> dict[str, int]:
        """Jobs parked while their concurrency slots are full, per job name."""
        with self.client.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.llen(self.keys.waiting(job))
            return dict(zip(jobs, pipe.execute()))

    @translated
    def schedule_marks(self, schedule_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per schedule: the last due time handled, and when it last fired which job (None if never)."""
        fields = [f for sid in schedule_ids for f in (sid, f"{sid}:fired_at", f"{sid}:job")]
        values = self.client.hmget(self.keys.schedules, fields) if fields else []
        marks = {}
        for i, sid in enumerate(schedule_ids):
            due, fired_at, job = values[3 * i:3 * i + 3]
            marks[sid] = {"due": _float(due), "fired_at": _float(fired_at), "job": _text(job) if job else None}
        return marks

    def in_flight(self) -> int:
        return sum(w["in_flight"] for w in self.workers())

    def is_idle(self, queues: Sequence[str]) -> bool:
        """Nothing queued, in any worker's hands or waiting for a retry: what --until-empty waits for.
        Jobs delayed on purpose, and jobs in paused queues, are left for a later run."""
        queues = [q for q in queues if q not in set(self.paused())]
        return (sum(self.queue_depths(queues).values()) == 0 and self.in_flight() == 0
                and self.retrying_count() == 0)

    def status(self, queues: Sequence[str]) -> dict[str, Any]:
        workers = self.workers()
        return {
            "queues": self.queue_depths(queues),
            "workers": workers,
            "hosts": by_host(workers),
            "in_flight": sum(w["in_flight"] for w in workers),
            "scheduled": self.scheduled_count(),
            "dead": self.dead_count(),
            "paused": self.paused(),
        }


def decode_job(job_id: str, fields: dict[str, bytes]) -> dict[str, Any]:
    """Turn a job hash into plain data; fields that are JSON (params, result) are parsed when they can be."""
    info: dict[str, Any] = {"id": job_id, "attempts": 0, "failures": 0, "crashes": 0}
    for name, value in fields.items():
        text = _text(value)
        if name in INT_FIELDS or name in TIME_FIELDS:
            info[name] = _number_or_text(text, int if name in INT_FIELDS else float)
        elif name in ("params", "result", "progress"):
            info[name] = _json_or_text(value)
        elif name == "checkpoint":
            info["checkpoint_bytes"] = len(value)
        else:
            info[name] = text
    return info


def _float(value: bytes | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _number_or_text(text: str, kind: type) -> Any:
    """A tampered record must still be shown, not crash `batchrun show`."""
    try:
        return kind(text)
    except ValueError:
        return text


def _json_or_text(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _text(value)
