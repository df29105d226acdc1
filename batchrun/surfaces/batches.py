"""Batches: one job per input, queued as one batch, watched and collected as a whole.

Every input is validated and encoded before anything is queued: the encoded
params go to a temporary spool file, so a bad input changes nothing and a
million inputs take bounded memory. Only then is the batch's record created
(with its total, so it cannot look ended early) and the spool queued in
chunks, each one script call (store/lua/batch_enqueue.lua).
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import orjson

from batchrun.definitions.registry import JobDefinition
from batchrun.errors import BrokerError, JobNotFound, SubmitError, WaitTimeout
from batchrun.ids import MAX_BATCH_SIZE, batch_job_id, new_batch_id, new_job_id
from batchrun.store.batches import READ_CHUNK, BatchReader, decode_result
from batchrun.store.broker import Broker

CHUNK = 1000
CHUNKS_PER_ROUND_TRIP = 20
WAIT_POLL_S = 0.2
OPEN_TRIES = 5
CALLBACK_PARAM = "batch_id"


class Batch:
    """A handle on a batch: its progress (one read, however large), waiting for its end, its results."""

    def __init__(self, batch_id: str, reader: BatchReader, broker: Broker) -> None:
        self.id = batch_id
        self.reader = reader
        self.broker = broker

    def __repr__(self) -> str:
        return f"Batch({self.id!r})"

    def progress(self) -> dict[str, Any]:
        """The batch's record: total, counts per final state, pending, created/ended times, state."""
        info = self.reader.info(self.id)
        if info is None:
            raise JobNotFound(f"no batch {self.id!r} (unknown, or its record expired)")
        return info

    def wait(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Block until every job of the batch has ended; returns its progress. Raises WaitTimeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (info := self.progress())["state"] != "ended":
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"batch {self.id}: {info['done']} of {info['total']} jobs ended",
                                  {self.id: info["state"]})
            time.sleep(min(WAIT_POLL_S, remaining if remaining is not None else WAIT_POLL_S))
        return info

    def results(self) -> Iterator[dict[str, Any]]:
        """One record per input, in input order: index, id, state, and result (or error unless it succeeded)."""
        total = self.progress()["total"]
        for index, job_id, (state, result, error) in self.reader.jobs(self.id, total, ("state", "result", "error")):
            yield result_record(index, job_id, state, result, error)

    def cancel(self) -> dict[str, int]:
        """Cancel every job of the batch; returns how many were cancelled, are being stopped, or had ended.
        The batch is closed first: a map still queueing it stops, and inputs never queued no longer count."""
        self.broker.close_batch(self.id)
        total = self.progress()["total"]
        outcomes: dict[str, int] = {}
        for start in range(0, total, READ_CHUNK):
            ids = [batch_job_id(self.id, i) for i in range(start, min(total, start + READ_CHUNK))]
            for outcome in self.broker.cancel_many(ids):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes


def result_record(index: int, job_id: str, state: bytes | None, result: bytes | None,
                  error: bytes | None) -> dict[str, Any]:
    if state is None:
        return {"index": index, "id": job_id, "state": "expired", "error": "its record expired (result_ttl)"}
    text = state.decode()
    record: dict[str, Any] = {"index": index, "id": job_id, "state": text}
    if text == "succeeded":
        record["result"] = decode_result(result)
    else:
        record["error"] = None if error is None else error.decode("utf-8", "replace")
    return record


Inputs = Iterable[tuple[str, Mapping[str, Any]]]
Encode = Callable[[Mapping[str, Any]], bytes]


def submit_batch(broker: Broker, definition: JobDefinition, inputs: Inputs, encode: Encode, *,
                 result_ttl_s: float, on_complete: JobDefinition | None = None) -> str:
    """Validate every input (where: a location for errors, params), then queue them all as one batch.
    `encode` turns validated params into the JSON payload, refusing one over the size limit."""
    if definition.unique:
        raise SubmitError(f"job {definition.name!r} is unique: submit it one input at a time, since a batch's "
                          "jobs would not be checked against each other and their twins")
    callback = _callback_fields(on_complete)
    with tempfile.TemporaryFile(prefix="batchrun-map-") as spool:
        total = _spool(definition, inputs, encode, spool)
        fields: dict[str, str | int | float] = {"job": definition.name, "queue": definition.queue, "total": total,
                                                "pending": total, "ttl_ms": max(1, int(result_ttl_s * 1000))}
        if definition.concurrency:
            fields["limit"] = definition.concurrency
        batch_id = _open(broker, {**fields, **callback})
        spool.seek(0)
        _queue(broker, batch_id, definition, spool)
    return batch_id


def _callback_fields(on_complete: JobDefinition | None) -> dict[str, str]:
    """Checked before anything is queued: the callback job must take the batch id as `batch_id`."""
    if on_complete is None:
        return {}
    if CALLBACK_PARAM not in on_complete.params:
        raise SubmitError(f"on_complete job {on_complete.name!r} must declare a {CALLBACK_PARAM!r} param "
                          "(type str): it is called with the batch id")
    on_complete.validate_params({CALLBACK_PARAM: "0" * 16})
    limit = {"on_complete_limit": on_complete.concurrency} if on_complete.concurrency else {}
    return {"on_complete": on_complete.name, "on_complete_queue": on_complete.queue, **limit}


def _spool(definition: JobDefinition, inputs: Inputs, encode: Encode, spool: IO[bytes]) -> int:
    total = 0
    for where, params in inputs:
        try:
            payload = encode(definition.validate_params(params))
        except SubmitError as exc:
            raise SubmitError(f"{where}: {exc}") from None
        spool.write(payload + b"\n")
        total += 1
    if total == 0:
        raise SubmitError("no inputs: nothing to map")
    if total > MAX_BATCH_SIZE:
        raise SubmitError(f"{total} inputs; a batch holds at most {MAX_BATCH_SIZE}")
    return total


def _open(broker: Broker, fields: dict[str, str | int | float]) -> str:
    for _ in range(OPEN_TRIES):
        batch_id = new_batch_id()
        record = dict(fields)
        if "on_complete" in record:
            record["on_complete_id"] = new_job_id()
            record["on_complete_params"] = orjson.dumps({CALLBACK_PARAM: batch_id}).decode()
        if broker.open_batch(batch_id, record):
            return batch_id
    raise BrokerError(f"could not find a free batch id in {OPEN_TRIES} tries")


def _queue(broker: Broker, batch_id: str, definition: JobDefinition, spool: IO[bytes]) -> None:
    first, chunk, chunks = 0, [], []
    for line in spool:
        chunk.append(line[:-1])
        if len(chunk) == CHUNK:
            chunks.append((first, chunk))
            first, chunk = first + CHUNK, []
            if len(chunks) == CHUNKS_PER_ROUND_TRIP:
                broker.enqueue_batch(batch_id, definition.name, definition.queue, chunks)
                chunks = []
    if chunk:
        chunks.append((first, chunk))
    if chunks:
        broker.enqueue_batch(batch_id, definition.name, definition.queue, chunks)
