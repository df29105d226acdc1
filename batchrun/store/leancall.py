"""A lean EVALSHA path for the one-call hot path (submit), on a connection this object holds.

redis-py's Script.__call__ plus the pool's checkout and release of a connection
cost about as much as the round trip itself (`python -m bench --speed`). Here a
call is one send and one read on a connection kept between calls: the command
goes out as EVALSHA, and a NOSCRIPT reply (a restarted or flushed server) is
answered by sending the same call as EVAL, which also caches the script again.

Nothing about the reply changes: it is read in full before the call returns,
so a submit still returns only after Redis holds the job. Dropped connections
are retried with the client's own Retry (our scripts are safe to repeat), and
errors are redis-py's own, so Broker's translation applies unchanged. On a
Sentinel-watched master the connection is the pool's own kind, which asks the
Sentinels for the master on every reconnect and turns a demoted master's
READONLY reply into a reconnect. Cluster clients, and a call made while another
thread is inside this one, take redis-py's ordinary path.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from batchrun.store.clients import is_cluster


class LeanCaller:
    """Calls registered scripts of `client` over one held connection."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.usable = not is_cluster(client)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0

    def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if not self.usable or not self._lock.acquire(blocking=False):
            return script(keys=keys, args=args)
        try:
            conn = self._connection()
            return conn.retry.call_with_retry(lambda: self._run(conn, script, keys, args),
                                              lambda _error: conn.disconnect())
        finally:
            self._lock.release()

    def _connection(self) -> Any:
        """The held connection; a forked child takes its own instead of sharing its parent's socket."""
        if self._conn is None or self._pid != os.getpid():
            self._conn = self.client.connection_pool.get_connection()
            self._pid = os.getpid()
        return self._conn

    @staticmethod
    def _run(conn: Any, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if not conn.is_connected:
            conn.connect()  # not the implicit connect of send_command: this one asks the Sentinels
        conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return conn.read_response()
        except NoScriptError:
            conn.send_command("EVAL", script.script, len(keys), *keys, *args)
            return conn.read_response()
