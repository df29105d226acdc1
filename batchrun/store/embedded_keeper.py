"""The keeper of one state folder's embedded Valkey server (see batchrun/embedded.py for the design).

batchrun.embedded starts it as a script, with server.lock already locked on descriptor N:

    python -I embedded_keeper.py --state-dir DIR --socket PATH --binary VALKEY_SERVER
                                 --appendfsync POLICY --start-timeout SECONDS --lock-fd N

It imports nothing from batchrun (the package's __init__ is heavy, and -I keeps
the project folder and PYTHON* variables out): the standard library and psutil.

    starter --Popen--> intermediate --fork--> keeper (new session) --Popen--> valkey-server

The intermediate process exits 0 once the keeper reports the server ready, or 1
with the reason on stderr (with the tail of valkey.log); the starter reaps it,
and the keeper, orphaned, is nobody's child to reap. The keeper then sleeps on
its signals, waking at least every 0.2 s:

* the server exited (a crash): clean up and exit;
* SIGTERM or SIGINT (the last user releasing, or an operator): stop the server;
* clients.lock taken exclusive without blocking (every user died without
  releasing): stop the server, then unlock server.lock and clients.lock.

Stopping is SHUTDOWN (the server fsyncs its AOF), then SIGTERM if it ignores
that, never SIGKILL; then reap it, remove server.json and the socket, and unlock
server.lock. The server gets PR_SET_PDEATHSIG SIGTERM, so it still shuts down
cleanly if the keeper itself is SIGKILLed.
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

import psutil

POLL_S = 0.2
READY_POLL_S = 0.02
STOP_WAIT_S = 10.0
LOG_ROTATE_BYTES = 4 * 1024 * 1024
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
READY = b"ready"


class StartFailed(Exception):
    """The server could not be started; the message goes back to the starter."""


class Keeper:
    def __init__(self, args: argparse.Namespace) -> None:
        self.state_dir = Path(args.state_dir)
        self.socket_path = Path(args.socket)
        self.binary = args.binary
        self.appendfsync = args.appendfsync
        self.start_timeout_s = args.start_timeout
        self.server_lock = args.lock_fd
        self.clients_lock = os.open(self.path("clients.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.server: subprocess.Popen[bytes] | None = None
        self.wakeup = _signal_wakeup(STOP_SIGNALS | {signal.SIGCHLD})

    def path(self, name: str) -> Path:
        return self.state_dir / name

    # --- starting ----------------------------------------------------------

    def start(self) -> None:
        self.wait_for_previous_server()
        self.socket_path.unlink(missing_ok=True)
        with open(self.path("valkey.log"), "ab") as log_file:
            self.server = subprocess.Popen(
                self.server_args(), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_keeper(),
            )
        self.write_record()
        self.wait_until_ready()

    def server_args(self) -> list[str]:
        return [
            self.binary, "--dir", str(self.path("data")),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
            "--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700",
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "notice",
            # Keep argv visible so `ps` shows which state folder a server belongs to.
            "--set-proc-title", "no",
        ]

    def wait_for_previous_server(self) -> None:
        """A server whose keeper died may still be flushing its AOF: never run two on one AOF."""
        previous = live_process(read_json(self.path("server.json")), "pid", "create_time")
        if previous is None:
            return
        note(f"waiting for the previous valkey-server (pid {previous.pid}) to exit")
        previous.terminate()  # PDEATHSIG normally sent this already; again is harmless
        if not _poll(lambda: not is_running(previous), self.start_timeout_s):
            raise StartFailed(f"a previous valkey-server (pid {previous.pid}) for {self.state_dir} "
                              f"did not exit within {self.start_timeout_s:g}s; stop it and retry")

    def write_record(self) -> None:
        """Written as soon as the server is spawned, so a later keeper always knows its pid."""
        record = {
            "keeper_pid": os.getpid(),
            "keeper_create_time": psutil.Process().create_time(),
            "pid": self.server.pid,
            "create_time": psutil.Process(self.server.pid).create_time(),  # unreaped: still there
            "socket": str(self.socket_path),
        }
        path = self.path("server.json")
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not answers_ping(self.socket_path):
            if self.server.poll() is not None:
                raise StartFailed(self.failure(f"valkey-server exited with code {self.server.returncode} "
                                               "while starting"))
            if time.monotonic() >= deadline:
                raise StartFailed(self.failure(f"valkey-server did not answer within {self.start_timeout_s:g}s"))
            time.sleep(READY_POLL_S)

    def failure(self, reason: str) -> str:
        return f"{reason}; last lines of {self.path('valkey.log')}:\n{tail(self.path('valkey.log'))}"

    # --- serving -----------------------------------------------------------

    def serve(self) -> str:
        """Wait until the server must stop, or has; return why."""
        while True:
            signals = _wait_for_signals(self.wakeup, POLL_S)
            if self.server.poll() is not None:
                return f"valkey-server exited with code {self.server.returncode}"
            if signals & STOP_SIGNALS:
                return f"stopping on {signal.Signals(min(signals & STOP_SIGNALS)).name}"
            if try_flock(self.clients_lock, fcntl.LOCK_EX):
                return "stopping: no batchrun process uses the server any more"

    def stop(self) -> None:
        """Shut the server down cleanly, reap it, remove its traces, and free the locks."""
        if self.server is None:
            pass  # never started: server.json, if any, names a previous server still to wait for
        elif not self.stopped():
            note(f"valkey-server (pid {self.server.pid}) did not stop; left running so it can finish "
                 "writing its AOF, and the next keeper will wait for it")
        else:
            self.remove_record()
            self.socket_path.unlink(missing_ok=True)
        fcntl.flock(self.server_lock, fcntl.LOCK_UN)
        fcntl.flock(self.clients_lock, fcntl.LOCK_UN)

    def stopped(self) -> bool:
        """SHUTDOWN, then SIGTERM if it is refused or ignored; never SIGKILL. True once reaped."""
        if self.server.poll() is None:
            reply = shutdown(self.socket_path)
            if reply:
                note(f"SHUTDOWN answered {reply!r}; sending SIGTERM")
            if reply or not _wait_for_exit(self.server, STOP_WAIT_S):
                self.server.terminate()
        return _wait_for_exit(self.server, STOP_WAIT_S)

    def remove_record(self) -> None:
        record = read_json(self.path("server.json"))
        if record and record.get("pid") == self.server.pid:
            self.path("server.json").unlink(missing_ok=True)


# --- the two processes ------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    report_read, report_write = os.pipe()
    if os.fork() != 0:
        os.close(report_write)
        os.close(args.lock_fd)  # only close: the keeper shares the lock
        return relay_report(report_read, Path(args.state_dir) / "valkey.log")
    os.close(report_read)
    os.setsid()  # a Ctrl-C at the starter's terminal must not reach the keeper
    keep(args, report_write)


def relay_report(report_fd: int, log_path: Path) -> int:
    """The intermediate process: exit 0 once the keeper is ready, 1 with its reason otherwise."""
    with os.fdopen(report_fd, "rb") as report:
        message = report.read().decode(errors="replace")
    if message == READY.decode():
        return 0
    sys.stderr.write(message or f"the embedded server's keeper exited while starting; see {log_path}")
    return 1


def keep(args: argparse.Namespace, report_fd: int) -> NoReturn:
    code = 1
    try:
        os.chdir("/")
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # a starter's blocked signals are not ours
        _rotate(Path(args.state_dir) / "valkey.log")
        _redirect_stdio(Path(args.state_dir) / "valkey.log")
        keeper = Keeper(args)
        try:
            keeper.start()
        except StartFailed as exc:
            keeper.stop()  # first, so the starter finds no server.json once it hears why
            os.write(report_fd, str(exc).encode())
            os._exit(1)
        os.write(report_fd, READY)
        os.close(report_fd)
        note(f"serving {args.state_dir} (valkey-server pid {keeper.server.pid})")
        note(keeper.serve())
        keeper.stop()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run and keep one state folder's embedded Valkey server.")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--appendfsync", required=True)
    parser.add_argument("--start-timeout", type=float, required=True)
    parser.add_argument("--lock-fd", type=int, required=True)
    return parser.parse_args(argv)


def _rotate(log_path: Path) -> None:
    if log_path.exists() and log_path.stat().st_size > LOG_ROTATE_BYTES:
        os.replace(log_path, log_path.with_suffix(".log.1"))


def _redirect_stdio(log_path: Path) -> None:
    """Let go of the starter's pipes (it waits for their end); our own notes go to valkey.log."""
    devnull = os.open(os.devnull, os.O_RDWR)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for fd, source in ((0, devnull), (1, devnull), (2, log_fd)):
        os.dup2(source, fd)
    os.close(devnull)
    os.close(log_fd)


def note(message: str) -> None:
    """One line in valkey.log, in the server's own format, role K for keeper."""
    now = time.time()
    stamp = time.strftime("%d %b %Y %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    print(f"{os.getpid()}:K {stamp} * batchrun keeper: {message}", file=sys.stderr, flush=True)


# --- signals and processes --------------------------------------------------


def _signal_wakeup(signums: set[int]) -> int:
    """Handlers do nothing; Python writes each signal's number to a pipe the loop waits on."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for signum in signums:
        signal.signal(signum, lambda *_: None)
    return read_end


def _wait_for_signals(wakeup_fd: int, timeout_s: float) -> set[int]:
    ready, _, _ = select.select([wakeup_fd], [], [], timeout_s)
    if not ready:
        return set()
    try:
        return set(os.read(wakeup_fd, 64))
    except BlockingIOError:
        return set()


def _die_with_keeper() -> Any:
    """A preexec_fn: the kernel sends SIGTERM to the server when the keeper dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    keeper = os.getpid()

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != keeper:  # the keeper died before prctl took effect
            os._exit(1)

    return preexec


def _wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def live_process(record: dict[str, Any] | None, pid_key: str, time_key: str) -> psutil.Process | None:
    """The process a record names, if it still runs; a reused pid or a zombie does not count."""
    if not record:
        return None
    try:
        process = psutil.Process(record[pid_key])
        same = abs(process.create_time() - record[time_key]) < 0.5
    except (psutil.NoSuchProcess, KeyError, TypeError):
        return None
    return process if same and is_running(process) else None


def is_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _poll(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(READY_POLL_S)
    return True


def try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# --- raw RESP over the unix socket -----------------------------------------


def _ask(socket_path: Path, command: str, timeout_s: float) -> bytes:
    """Send one argument-less command; return the first bytes of the reply (b"" if the server hung up)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(socket_path))
        sock.sendall(f"*1\r\n${len(command)}\r\n{command}\r\n".encode())
        return sock.recv(512)


def answers_ping(socket_path: Path) -> bool:
    try:
        return _ask(socket_path, "PING", 1.0).startswith(b"+PONG")
    except OSError:
        return False  # not there yet, or -LOADING while the AOF loads


def shutdown(socket_path: Path) -> bytes:
    """SHUTDOWN: the server fsyncs its AOF and closes the connection as it exits. Returns an error reply, if any."""
    try:
        return _ask(socket_path, "SHUTDOWN", STOP_WAIT_S)
    except OSError:
        return b""  # already gone, or it hung up while exiting: both fine


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 8192))
            return b"\n".join(file.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(main())
