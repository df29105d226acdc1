"""The embedded Valkey server: one server per state folder, shared by every batchrun process of it,
shut down cleanly after the last, never losing an acknowledged write.

Every test runs real processes. A helper process acquires the server, prints
what it got as one JSON line, and obeys commands on stdin (release, alive), so
a test can hold the server exactly as long as it needs.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from batchrun.errors import EmbeddedServerError
from batchrun.store.embedded import EmbeddedServer

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]

HOLDER = r"""
import json, os, sys
from pathlib import Path
from batchrun.store.embedded import EmbeddedServer

def say(state, **fields):
    print(json.dumps({"state": state, **fields}), flush=True)

server = EmbeddedServer(Path(sys.argv[1]))
say("ready")
if sys.argv[2] == "gated":
    sys.stdin.readline()  # "go": every holder of a test acquires at the same instant
url = server.acquire()
say("acquired", url=url, pid=server.pid, me=os.getpid())
for line in sys.stdin:
    if line.strip() == "alive":
        say("alive", alive=server.alive())
    else:
        break
say("releasing")
server.release()
say("released")
"""

FORKER = r"""
import fcntl, os, sys
from pathlib import Path
import redis
from batchrun.store.embedded import EmbeddedServer
state = Path(sys.argv[1])
server = EmbeddedServer(state)
url = server.acquire()
polite = os.fork()
if polite == 0:
    server.forget_in_child()
    sys.exit(0)
explicit = os.fork()
if explicit == 0:
    server.release()  # in a child, release only forgets: the parent still uses the server
    os._exit(0)
careless = os.fork()
if careless == 0:
    sys.exit(0)  # the inherited atexit hook must not release the parent's use
for child in (polite, explicit, careless):
    os.waitpid(child, 0)
probe = os.open(state / "clients.lock", os.O_RDWR)
try:
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("the parent's shared lock was dropped", flush=True)
    sys.exit(1)
except BlockingIOError:
    pass
print(redis.Redis.from_url(url).ping(), flush=True)
server.release()
"""


class Holder:
    """A process that holds the embedded server until told to release it."""

    def __init__(self, state_dir: Path, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(state_dir), mode],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.lines: list[dict[str, Any]] = []

    def expect(self, state: str) -> dict[str, Any]:
        """Read lines until `state`: reads block, and the test's timeout bounds them."""
        while not self.lines or self.lines[-1]["state"] != state:
            line = self.proc.stdout.readline()
            assert line, f"holder {self.proc.pid} exited with {self.proc.wait()} before {state!r}"
            self.lines.append(json.loads(line))
        return self.lines[-1]

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def alive(self) -> bool:
        self.send("alive")
        return self.expect("alive")["alive"]

    def release(self) -> None:
        self.send("release")


@pytest.fixture
def spawn_holder(tmp_path: Path) -> Iterator[Callable[..., Holder]]:
    holders: list[Holder] = []

    def spawn(state_dir: Path, mode: str = "now") -> Holder:
        holders.append(Holder(state_dir, mode))
        return holders[-1]

    try:
        yield spawn
    finally:
        for holder in holders:
            holder.proc.kill()
            holder.proc.wait()
        _stop_leftovers(tmp_path)


def _processes_for(folder: Path, program: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE or not cmdline:
            continue
        if any(program in part for part in cmdline[:3]) and str(folder) in " ".join(cmdline):
            found.append(proc)
    return found


def _servers_for(folder: Path) -> list[psutil.Process]:
    return _processes_for(folder, "valkey-server")


def _keepers_for(folder: Path) -> list[psutil.Process]:
    return _processes_for(folder, "embedded_keeper.py")


def _stop_leftovers(folder: Path) -> None:
    """A failed test must not leave processes behind; SIGKILL is fine for a test's throw-away data."""
    for proc in _keepers_for(folder) + _servers_for(folder):
        proc.kill()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _record(state: Path) -> dict[str, Any]:
    return json.loads((state / "server.json").read_text())


def _stopped_cleanly(state: Path, server_pid: int) -> bool:
    """The server's own last words: it fsynced its AOF and exited (SIGKILL leaves none)."""
    lines = (state / "valkey.log").read_text().splitlines()
    return any(line.startswith(f"{server_pid}:M") and "ready to exit" in line for line in lines)


def wait_for(condition: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.02)
    return value


def test_writes_survive_release_and_a_new_acquire(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = EmbeddedServer(state)
    try:
        url = server.acquire()
        assert server.alive() and server.url == url
        assert url.startswith("unix://") and len(url) - len("unix://") < 108
        first_pid, keeper_pid = server.pid, _record(state)["keeper_pid"]
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.set("answer", "42")
        client.close()
        server.release()
        server.release()  # idempotent
        # the last user's release returns once the server has stopped
        assert _gone(first_pid) and _gone(keeper_pid) and server.pid is None and not server.alive()
        assert _stopped_cleanly(state, first_pid)
        assert not (state / "server.json").exists() and not Path(url[len("unix://"):]).exists()
        with EmbeddedServer(state) as again:
            assert again.pid != first_pid
            assert redis.Redis.from_url(again.acquire()).get("answer") == b"42"
        assert (state / "data").stat().st_mode & 0o777 == 0o700
    finally:
        server.release()
        _stop_leftovers(tmp_path)


def test_four_processes_acquiring_at_once_share_one_server(
    tmp_path: Path, spawn_holder: Callable[..., Holder]
) -> None:
    state = tmp_path / "state"
    holders = [spawn_holder(state, "gated") for _ in range(4)]
    for holder in holders:
        holder.expect("ready")
    for holder in holders:
        holder.send("go")
    got = [holder.expect("acquired") for holder in holders]
    assert len({g["url"] for g in got}) == 1
    assert len({g["pid"] for g in got}) == 1
    assert [s.pid for s in _servers_for(state)] == [got[0]["pid"]]
    assert len(_keepers_for(state)) == 1
    for holder in holders:
        holder.release()
    for holder in holders:
        holder.expect("released")
    # two users releasing at the same instant may both leave the stop to the keeper (within 0.2 s)
    wait_for(lambda: not _servers_for(state) and not _keepers_for(state), 10, "the server and keeper to exit")
    assert _stopped_cleanly(state, got[0]["pid"])


def test_the_server_lives_while_any_user_holds_it(tmp_path: Path, spawn_holder: Callable[..., Holder]) -> None:
    state = tmp_path / "state"
    starter = spawn_holder(state)
    server_pid = starter.expect("acquired")["pid"]
    user = EmbeddedServer(state)
    try:
        url = user.acquire()
        assert user.pid == server_pid and user.alive()
        starter.release()
        starter.expect("released")  # does not wait for us
        client = redis.Redis.from_url(url)
        for i in range(50):
            assert client.incr("uses") == i + 1
        assert not _gone(server_pid) and user.alive()
        client.close()
    finally:
        user.release()
    assert _gone(server_pid) and _servers_for(state) == [] and _keepers_for(state) == []
    assert _stopped_cleanly(state, server_pid)


def test_sigkill_of_the_starter_does_not_take_the_server_from_the_others(
    tmp_path: Path, spawn_holder: Callable[..., Holder]
) -> None:
    state = tmp_path / "state"
    starter = spawn_holder(state)
    got = starter.expect("acquired")
    other = spawn_holder(state)
    assert other.expect("acquired")["pid"] == got["pid"]
    client = redis.Redis.from_url(got["url"])
    client.rpush("acked", "before")
    starter.proc.send_signal(signal.SIGKILL)
    starter.proc.wait()
    client.rpush("acked", "after")
    assert other.alive() and [s.pid for s in _servers_for(state)] == [got["pid"]]
    client.close()
    other.release()
    other.expect("released")
    assert _servers_for(state) == [] and _keepers_for(state) == []
    assert _stopped_cleanly(state, got["pid"])
    with EmbeddedServer(state) as again:
        assert redis.Redis.from_url(again.url).lrange("acked", 0, -1) == [b"before", b"after"]


def test_a_killed_last_user_loses_no_acknowledged_write(
    tmp_path: Path, spawn_holder: Callable[..., Holder]
) -> None:
    state = tmp_path / "state"
    holder = spawn_holder(state)
    got = holder.expect("acquired")
    client = redis.Redis.from_url(got["url"])
    pipe = client.pipeline(transaction=False)
    for i in range(2000):
        pipe.rpush("acked", i)
    pipe.execute()
    client.close()
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait()
    wait_for(lambda: _gone(got["pid"]), 10, "the keeper to stop the unused server")
    assert _stopped_cleanly(state, got["pid"])
    wait_for(lambda: not _keepers_for(state), 10, "the keeper to exit")
    with EmbeddedServer(state) as successor:
        assert successor.pid != got["pid"]
        assert redis.Redis.from_url(successor.url).llen("acked") == 2000


def test_a_killed_keeper_still_stops_its_server_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = EmbeddedServer(state)
    try:
        url = server.acquire()
        client = redis.Redis.from_url(url)
        client.set("kept", "yes")
        client.close()
        first_pid, keeper_pid = server.pid, _record(state)["keeper_pid"]
        os.kill(keeper_pid, signal.SIGKILL)
        wait_for(lambda: _gone(keeper_pid), 10, "the keeper to die")
        # at once, while the orphaned server may still be flushing: the successor waits for it
        with EmbeddedServer(state) as again:
            assert again.pid != first_pid and _gone(first_pid)
            assert [s.pid for s in _servers_for(state)] == [again.pid]
            assert redis.Redis.from_url(again.url).get("kept") == b"yes"
        assert not server.alive() and _stopped_cleanly(state, first_pid)
        server.release()
    finally:
        server.release()
        _stop_leftovers(tmp_path)


def test_sigterm_to_the_keeper_shuts_the_server_down_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with EmbeddedServer(state) as server:
        keeper_pid = _record(state)["keeper_pid"]
        os.kill(keeper_pid, signal.SIGTERM)
        wait_for(lambda: _gone(keeper_pid), 10, "the keeper to exit")
        assert not server.alive() and _stopped_cleanly(state, server.pid)
        assert not (state / "server.json").exists()


def test_forked_children_never_shut_the_server_down(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKER, str(tmp_path / "state")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "True"
    assert _servers_for(tmp_path) == []


def test_alive_turns_false_when_the_server_dies(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with EmbeddedServer(state) as server:
        os.kill(server.pid, signal.SIGTERM)
        wait_for(lambda: not server.alive(), 10, "alive() to notice the exit")
        wait_for(lambda: not (state / "server.json").exists(), 10, "the keeper to clean up")
    with EmbeddedServer(state) as again:
        assert again.alive()


def test_lock_descriptors_are_not_inherited_by_commands(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with EmbeddedServer(state):
        child = subprocess.Popen(["sleep", "30"], close_fds=False)
        try:
            paths = [f.path for f in psutil.Process(child.pid).open_files()]
        finally:
            child.kill()
            child.wait()
    assert not [p for p in paths if p.endswith(".lock")]


def test_a_file_in_place_of_the_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a folder")
    with pytest.raises(EmbeddedServerError, match="cannot use .*state.* as the embedded server's state folder"):
        EmbeddedServer(state).acquire()


def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "data").mkdir(parents=True)
    (state / "data" / "appendonlydir").write_text("a file where the AOF folder goes")
    started = time.monotonic()
    with pytest.raises(EmbeddedServerError, match="(?s)exited with code .* while starting.*last lines of"):
        EmbeddedServer(state, start_timeout_s=20).acquire()
    assert time.monotonic() - started < 10, "a server that cannot start fails fast"
    assert not (state / "server.json").exists()
    assert _servers_for(tmp_path) == [] and _keepers_for(tmp_path) == []
    with open(state / "server.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it any more
