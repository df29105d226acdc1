"""The lean script-call path of one-call submits: packed EVALSHA bytes, one send and one read on a held connection.

redis-py's own call path (Script.__call__, the pool's checkout and release, its
command packing and its read_response) costs about as much client time as the
round trip of a small command. Here a call is the already packed EVALSHA
(store/packing.py), one write to the connection's socket, and reads fed to the
connection's own hiredis reader until one reply is complete.

Nothing about the call's guarantees changes:
- the reply is read in full before the call returns, so a submit returns only
  after Redis holds the job;
- a NOSCRIPT reply (a restarted or flushed server) is answered by sending the
  same call as EVAL, which also caches the script again;
- a dropped connection or a timeout is retried with the connection's own Retry
  (our scripts are safe to repeat), each attempt reconnecting through the
  connection's connect(), which asks the Sentinels for a Sentinel-watched master;
  a READONLY reply from such a master (it was demoted) makes it reconnect, as
  redis-py's SentinelManagedConnection does;
- error replies are redis-py's own exceptions (its parser builds them), so
  Broker's translation applies unchanged; the socket's timeout, TLS and the
  RESP version (HELLO 3) are whatever redis-py negotiated when it connected;
- a call interrupted between send and reply (even by KeyboardInterrupt) drops
  the connection, so no later call can read an earlier call's reply.

Each connection is held by one call at a time: concurrent threads each take
their own (idle ones are kept, up to MAX_IDLE), and a forked child drops its
parent's connections without touching their sockets and opens its own.

redis-py internals: the raw path reads the connection's `_sock` and its
parser's `_reader` (a hiredis.Reader), `_buffer` and `handle_push_response`,
all in `_raw_parts`. When a redis-py version lays them out otherwise, or the
connection has no hiredis parser, the call goes through the connection's public
`send_packed_command` and `read_response` instead, with everything above
unchanged. Cluster clients keep
redis-py's ordinary path (Broker decides), as do durable submits (min_replicas).
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

import hiredis
import redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError, NoScriptError, ReadOnlyError, TimeoutError
from redis.sentinel import SentinelManagedConnection

from batchrun.store.packing import as_eval

MAX_IDLE = 8  # connections kept between calls; one freed while this many wait goes back to the pool
_PUSH = getattr(hiredis, "PushNotification", None)  # hiredis >= 3.2 marks RESP3 push messages


class _Raw(NamedTuple):
    sock: socket.socket
    plain: bool  # not TLS: bytes may go straight to the file descriptor
    reader: Any  # hiredis.Reader, configured by redis-py for this connection
    buffer: bytearray
    more: object  # what reader.gets() returns while a reply is incomplete
    on_push: Callable[[Any], Any] | None


def _raw_parts(conn: Any) -> _Raw | None:
    """The only place that reads redis-py's private attributes. None: use the connection's public methods."""
    sock = getattr(conn, "_sock", None)
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    buffer = getattr(parser, "_buffer", None)
    if sock is None or not isinstance(reader, hiredis.Reader) or not isinstance(buffer, bytearray):
        return None
    if reader.has_data():
        return None  # a fresh connection has nothing to read; let redis-py deal with whatever this is
    more = reader.gets()
    if more is None or more is False:
        return None  # a redis-py that does not mark incomplete replies: False could be a RESP3 reply
    plain = type(sock) is socket.socket
    return _Raw(sock, plain, reader, buffer, more, getattr(parser, "handle_push_response", None))


class Wire:
    """One connection held between calls, with its socket and reader while it stays connected.

    The common call (attached, raw parts known, a plain reply) runs through `call` and `request` only:
    beside a busy server every further Python frame costs about 0.4 us of client time per call."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.attached = False
        self.raw: _Raw | None = None

    def attach(self) -> None:
        """Connect if need be, and take the socket and reader of the connection as they are now."""
        if not self.conn.is_connected:
            self.conn.connect()  # not the implicit connect of a send: this one asks the Sentinels
        self.raw = _raw_parts(self.conn)
        self.attached = True

    def dropped(self, _error: Exception | None = None) -> None:
        self.attached = False
        self.raw = None
        self.conn.disconnect()

    def call(self, script: Script, packed: bytes) -> Any:
        """One script call with the connection's Retry; the first attempt is made inline, as it nearly
        always succeeds, and its failure counts as the Retry's first."""
        try:
            if self.raw is None or not self.conn.is_connected:
                return self.attempt(script, packed)
            reply = self.request(packed)
            return self.answered(script, packed, reply) if isinstance(reply, Exception) else reply
        except (ConnectionError, TimeoutError) as error:
            failed = [error]

            def again() -> Any:
                if failed:
                    raise failed.pop()
                return self.attempt(script, packed)

            return self.conn.retry.call_with_retry(again, self.dropped)

    def attempt(self, script: Script, packed: bytes) -> Any:
        if not (self.attached and self.conn.is_connected):
            self.attach()
        reply = self.request(packed)
        return self.answered(script, packed, reply) if isinstance(reply, Exception) else reply

    def answered(self, script: Script, packed: bytes, reply: Exception) -> Any:
        """An error reply: NOSCRIPT is answered by sending the call as EVAL; others are raised."""
        if isinstance(reply, NoScriptError):
            reply = self.request(as_eval(script, packed))
            if not isinstance(reply, Exception):
                return reply
        raise self._refusal(reply)

    def request(self, packed: bytes) -> Any:
        """Send one command and read its reply; an error reply is returned, not raised. Whatever
        interrupts this (even KeyboardInterrupt) drops the connection: a reply may be on its way, and no
        later call may read it as its own.

        A plain (not TLS) socket is written with os.write: a socket with a timeout polls for room before
        every send, a system call for the few hundred bytes that always fit; only what did not fit goes
        through sendall. fileno() is read at the call (a closed socket's is -1), never kept: the number
        of a closed socket may be given to another file."""
        raw = self.raw
        try:
            if raw is None:
                return self._request_public(packed)
            sock = raw.sock
            if raw.plain:
                try:
                    sent = os.write(sock.fileno(), packed)
                except BlockingIOError:
                    sent = 0
                if sent < len(packed):
                    sock.sendall(memoryview(packed)[sent:])
            else:
                sock.sendall(packed)
            reader, more, buffer = raw.reader, raw.more, raw.buffer
            reply = more
            while reply is more:
                got = sock.recv_into(buffer)
                if not got:
                    raise ConnectionError("Connection closed by server.")
                reader.feed(buffer, 0, got)
                reply = reader.gets()
                while _PUSH is not None and isinstance(reply, _PUSH):
                    if raw.on_push is not None:
                        raw.on_push(reply)
                    reply = reader.gets()
            return reply
        except socket.timeout:
            self.dropped()
            raise TimeoutError("Timeout talking to Redis on its socket") from None
        except OSError as exc:
            self.dropped()
            raise ConnectionError(f"Error talking to Redis on its socket: {exc}") from None
        except BaseException:
            self.dropped()
            raise

    def _request_public(self, packed: bytes) -> Any:
        self.conn.send_packed_command([packed], check_health=False)
        try:
            return self.conn.read_response()
        except redis.ResponseError as exc:
            return exc

    def _refusal(self, reply: Exception) -> Exception:
        """The exception for an error reply, as redis-py's connection would raise it."""
        conn = self.conn
        if isinstance(reply, ReadOnlyError) and isinstance(conn, SentinelManagedConnection):
            if conn.connection_pool.is_master:
                self.dropped()  # the master was demoted: reconnecting asks the Sentinels anew
                return ConnectionError("The previous master is now a slave")
        if isinstance(reply, ConnectionError):
            self.dropped()
        return reply


_forks = 0  # forks this process descends from: a LeanCaller made before one must not use its connections


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class LeanCaller:
    """Calls scripts, as packed EVALSHA bytes, over connections of `client`'s pool held between calls."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._idle: list[Wire] = []
        self._forks = _forks

    def call(self, script: Script, packed: bytes) -> Any:
        try:
            wire = self._idle.pop() if self._forks == _forks else self._take()
        except IndexError:
            wire = self._take()
        try:
            return wire.call(script, packed)
        finally:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(wire)
            else:
                self.client.connection_pool.release(wire.conn)

    def _take(self) -> Wire:
        """An idle held connection, or a new one. A forked child forgets its parent's without touching
        their sockets (the parent still reads their other ends) and takes its own from the pool, which
        redis-py resets in a child."""
        if self._forks != _forks:
            self._idle = []
            self._forks = _forks
        try:
            return self._idle.pop()
        except IndexError:
            return Wire(self.client.connection_pool.get_connection())
