"""Read-only views of batches: a batch's record with its progress, recent batches, and its jobs in input order.

Progress is read from the counters that the job-ending scripts keep in the
batch's record (lua/lib.lua: count_final), so it costs one HGETALL however
large the batch. Jobs are read by index: a batch's job ids are its id and
the index (ids.batch_job_id), so results come out in input order, a
pipelined chunk at a time, without a list of ids in Redis.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import redis

from batchrun.ids import batch_job_id
from batchrun.store.translate import translated
from batchrun.store.codec import text as _text
from batchrun.store.keys import Keys

FINAL_STATES = ("succeeded", "failed", "dead", "cancelled")
READ_CHUNK = 1000
_INT_FIELDS = ("total", "queued", "pending", "failed", "dead", "cancelled")
_TIME_FIELDS = ("created_at", "ended_at")


class BatchReader:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.keys = Keys(namespace)

    @translated
    def info(self, batch_id: str) -> dict[str, Any] | None:
        raw = self.client.hgetall(self.keys.batch(batch_id))
        return decode_batch(raw) if raw else None

    @translated
    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest batches first; index entries whose record expired are dropped on the way."""
        ids = [_text(i) for i in self.client.zrevrange(self.keys.batches, 0, limit - 1)]
        with self.client.pipeline(transaction=False) as pipe:
            for batch_id in ids:
                pipe.hgetall(self.keys.batch(batch_id))
            records = pipe.execute()
        gone = [batch_id for batch_id, raw in zip(ids, records) if not raw]
        if gone:
            self.client.zrem(self.keys.batches, *gone)
        return [decode_batch(raw) for raw in records if raw]

    def jobs(self, batch_id: str, total: int, fields: tuple[str, ...]) -> Iterator[tuple[int, str, list]]:
        """(index, job id, values of `fields`) for every job of the batch, in input order; values are
        None for a record that expired."""
        for start in range(0, total, READ_CHUNK):
            ids = [batch_job_id(batch_id, i) for i in range(start, min(total, start + READ_CHUNK))]
            for offset, (job_id, values) in enumerate(zip(ids, self._read(ids, fields))):
                yield start + offset, job_id, values

    @translated
    def _read(self, ids: list[str], fields: tuple[str, ...]) -> list[list]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), fields)
            return pipe.execute()


def decode_batch(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """A batch's record as plain data, with `counts` (a mapping of final state to number) and `done`.
    Successes are not counted on their own (that would cost each ack a call): they are the jobs that
    ended (total less pending) less those that failed, died or were cancelled."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    info: dict[str, Any] = {"id": fields.get("id", ""), "job": fields.get("job", ""), "queue": fields.get("queue", "")}
    numbers = {name: _int(fields.get(name)) for name in _INT_FIELDS}
    info["total"], info["queued"], info["pending"] = numbers["total"], numbers["queued"], numbers["pending"]
    info["done"] = numbers["total"] - numbers["pending"]
    others = {state: numbers[state] for state in FINAL_STATES[1:]}
    info["counts"] = {"succeeded": info["done"] - sum(others.values()), **others}
    for name in _TIME_FIELDS:
        info[name] = _float(fields.get(name))
    info["state"] = "ended" if info["ended_at"] is not None else (
        "queueing" if numbers["queued"] < numbers["total"] else "running")
    info["on_complete"] = fields.get("on_complete") or None
    if info["on_complete"]:
        info["on_complete_id"] = fields.get("on_complete_id")
        info["on_complete_queued_at"] = _float(fields.get("on_complete_queued"))
    return info


def decode_result(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _text(value)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
