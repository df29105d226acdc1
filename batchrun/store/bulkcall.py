"""Many calls of one script down one connection, each sent as soon as it is packed, replies read after.

redis-py's pipeline packs every command before it sends the first, so the
client's packing and the server's running of the scripts take turns. Here
call k+1 is built and packed (the caller may build its arguments lazily)
while the server runs call k, which is what lets a bulk submit approach the
server's own rate (`python -m bench --speed`, submit_bulk_100k_per_s).

Every reply is read before this returns or raises, so the connection is never
left with replies pending, and a submit still returns only after Redis holds
its jobs. Calls are packed, and a NOSCRIPT reply (a restarted or flushed
server) answered with the same call as EVAL, as a one-call submit does
(packing.py). A dropped connection sends every call again, with the client's
own Retry: the scripts used here skip what a call already did (enqueue_many
skips existing ids, batch_enqueue applied chunks). The connection is the
pool's own kind, so on a Sentinel-watched master a reconnect asks the
Sentinels and a demoted master's READONLY reply becomes a reconnect.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, ResponseError

from batchrun.store.packing import as_eval, evalsha

Call = tuple[Sequence[Any], Sequence[Any]]


def call_streamed(client: redis.Redis, script: Script, calls: Iterable[Call]) -> list[Any]:
    """The replies of `calls` (keys, args) in order; the first error reply is raised after all are read.
    `calls` is iterated once, while sending, unless the connection drops and they are all sent again."""
    pending = calls if isinstance(calls, Sequence) else _Replayable(calls)
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        replies = conn.retry.call_with_retry(lambda: _send_all(conn, script, pending),
                                             lambda _error: conn.disconnect())
    finally:
        pool.release(conn)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _send_all(conn: Any, script: Script, calls: Iterable[Call]) -> list[Any]:
    sent: list[bytes] = []
    for keys, args in calls:
        packed = evalsha(script, keys, args)
        conn.send_packed_command([packed], check_health=not sent)
        sent.append(packed)
    replies = [_read(conn) for _ in sent]
    for index, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            conn.send_packed_command([as_eval(script, sent[index])], check_health=False)
            replies[index] = _read(conn)
    return replies


def _read(conn: Any) -> Any:
    """A reply, or the error reply as a value: the replies after it must still be read."""
    try:
        return conn.read_response()
    except ResponseError as error:
        return error


class _Replayable:
    """An iterable of calls that keeps what it has yielded, so a retry after a dropped connection can
    send them all again."""

    def __init__(self, calls: Iterable[Call]) -> None:
        self._source = iter(calls)
        self._seen: list[Call] = []

    def __iter__(self) -> Any:
        yield from list(self._seen)
        for call in self._source:
            self._seen.append(call)
            yield call
