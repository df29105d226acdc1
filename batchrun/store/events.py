"""Reading job events: the capped stream for history and `--follow`, pub/sub and states for `wait`.

Scripts append every transition to the stream and publish it on a channel of
the same name (see lua/lib.lua). History and following read the stream, so
nothing is missed between two reads; `wait` listens on the channel but
trusts only the job records, which it re-reads when an event names one of
its jobs and at least every WAIT_POLL_S in case events are off or a message
was lost with a connection.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis

from batchrun.errors import JobNotFound, WaitTimeout
from batchrun.store.translate import translated
from batchrun.store.codec import text as _text
from batchrun.store.keys import Keys

FINAL_STATES = frozenset({"succeeded", "failed", "dead", "cancelled"})
WAIT_POLL_S = 0.5
FOLLOW_BLOCK_MS = 1000
READ_COUNT = 5000


def _events(entry_id: bytes, fields: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """One event per job of a stream entry: an entry's `id` holds the space-separated ids of the jobs
    that had the same event in one script call (lua/lib.lua, emit_all)."""
    event: dict[str, Any] = {"stream_id": _text(entry_id)}
    for name, value in fields.items():
        event[_text(name)] = _text(value)
    try:
        event["ts"] = float(event.get("ts", ""))
    except ValueError:
        pass
    ids = str(event.get("id", "")).split(" ")
    if len(ids) == 1:
        return [event]
    return [{**event, "id": job_id} for job_id in ids]


def _expand(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    return [event for entry_id, fields in entries for event in _events(entry_id, fields)]


class EventReader:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.keys = Keys(namespace)

    @translated
    def history(self, count: int) -> list[dict[str, Any]]:
        """The last `count` events, oldest first."""
        entries = self.client.xrevrange(self.keys.events, count=count)
        return _expand(entries[::-1])[-count:] if count > 0 else []

    def follow(self, after: str = "$") -> Iterator[dict[str, Any]]:
        """Events as they are appended, forever; `after` is a stream id ('$': from now)."""
        last = after
        while True:
            for entry_id, fields in self._read_after(last):
                last = _text(entry_id)
                yield from _events(entry_id, fields)

    def after(self, last: str, block_ms: int | None = None) -> list[dict[str, Any]]:
        """The events of up to READ_COUNT entries appended after stream id `last`; with block_ms, wait that long for the
        first. A reader that polls this instead of following wakes once per poll, not once per event."""
        return _expand(self._read_after(last, block_ms))

    @translated
    def since(self, ts: float, count: int) -> list[dict[str, Any]]:
        """Up to `count` events from unix time `ts` on, oldest first (stream ids are milliseconds)."""
        entries = self.client.xrange(self.keys.events, min=str(int(ts * 1000)), count=count)
        return _expand(entries)[:count]

    def last_id(self) -> str:
        """The id of the newest event, or '0-0' for an empty stream: where a tally starts counting."""
        newest = self.history(1)
        return newest[0]["stream_id"] if newest else "0-0"

    @translated
    def _read_after(self, last: str, block_ms: int | None = FOLLOW_BLOCK_MS) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply = self.client.xread({self.keys.events: last}, block=block_ms, count=READ_COUNT)
        return reply[0][1] if reply else []

    @translated
    def states(self, job_ids: Sequence[str]) -> dict[str, str | None]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "state")
            return {j: None if s is None else _text(s) for j, s in zip(job_ids, pipe.execute())}

    def wait(self, job_ids: Sequence[str], timeout_s: float | None = None,
             on_tick: Callable[[], None] | None = None) -> dict[str, str]:
        """Block until every job has a final state; returns them. Raises JobNotFound for an unknown
        (or expired) id and WaitTimeout, carrying the states so far, when the timeout passes.
        on_tick runs after every event or poll (a progress bar redraws there)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            _subscribe(pubsub, self.keys.events)
            states = self._known_states(job_ids)
            while pending := [j for j, s in states.items() if s not in FINAL_STATES]:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise WaitTimeout(f"{len(pending)} of {len(states)} jobs not finished: {', '.join(pending)}",
                                      states)
                self._next_message(pubsub, min(WAIT_POLL_S, remaining or WAIT_POLL_S))
                states.update(self._known_states(pending))
                if on_tick is not None:
                    on_tick()
            return states
        finally:
            pubsub.close()

    def _known_states(self, job_ids: Sequence[str]) -> dict[str, str]:
        states = self.states(job_ids)
        missing = [j for j, s in states.items() if s is None]
        if missing:
            raise JobNotFound(f"no job {missing[0]!r} (unknown, or its record expired)")
        return {j: s for j, s in states.items() if s is not None}

    @translated
    def _next_message(self, pubsub: redis.client.PubSub, timeout_s: float) -> None:
        """Any event may be about one of our jobs; the records, not the message, say which."""
        pubsub.get_message(timeout=timeout_s)


@translated
def _subscribe(pubsub: redis.client.PubSub, channel: str) -> None:
    pubsub.subscribe(channel)
