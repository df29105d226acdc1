"""The embedded Valkey server: one server per state folder, shared safely, never losing acknowledged writes.

Every test runs real processes. A helper process acquires the server, prints
what it got as one JSON line, and releases when told to on stdin, so a test can
hold ownership open exactly as long as it needs.
"""
from __future__ import annotations

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

from batchrun.embedded import EmbeddedServer
from batchrun.errors import EmbeddedServerError

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]

HOLDER = r"""
import json, sys
from pathlib import Path
from batchrun.embedded import EmbeddedServer
server = EmbeddedServer(Path(sys.argv[1]), start_timeout_s=float(sys.argv[3]))
print(json.dumps({"state": "acquiring"}), flush=True)
url = server.acquire(owner_only=sys.argv[2] == "owner_only")
print(json.dumps({"state": "acquired", "url": url, "owner": server.is_owner, "pid": server.pid}), flush=True)
sys.stdin.readline()
print(json.dumps({"state": "releasing"}), flush=True)
server.release()
print(json.dumps({"state": "released"}), flush=True)
"""

FORKER = r"""
import os, sys
from pathlib import Path
import redis
from batchrun.embedded import EmbeddedServer
server = EmbeddedServer(Path(sys.argv[1]))
url = server.acquire()
polite = os.fork()
if polite == 0:
    server.forget_in_child()
    sys.exit(0)
careless = os.fork()
if careless == 0:
    sys.exit(0)  # inherited atexit hook must not shut the parent's server down
for child in (polite, careless):
    os.waitpid(child, 0)
print(redis.Redis.from_url(url).ping(), flush=True)
server.release()
"""


class Holder:
    """A process that holds the embedded server until told to release it."""

    def __init__(self, state_dir: Path, mode: str = "acquire", timeout_s: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(state_dir), mode, str(timeout_s)],
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

    def release(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()


@pytest.fixture
def spawn_holder(tmp_path: Path) -> Iterator[Callable[..., Holder]]:
    holders: list[Holder] = []

    def spawn(state_dir: Path, mode: str = "acquire", timeout_s: float = 20.0) -> Holder:
        holders.append(Holder(state_dir, mode, timeout_s))
        return holders[-1]

    try:
        yield spawn
    finally:
        for holder in holders:
            holder.proc.kill()
            holder.proc.wait()
        _stop_servers_for(tmp_path)


def _servers_for(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE or not cmdline:
            continue
        if "valkey-server" in cmdline[0] and str(folder) in " ".join(cmdline):
            found.append(proc)
    return found


def _stop_servers_for(folder: Path) -> None:
    for proc in _servers_for(folder):
        proc.kill()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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
        assert server.is_owner and server.alive()
        assert url.startswith("unix://") and len(url) - len("unix://") < 108
        first_pid = server.pid
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.set("answer", "42")
        client.close()
        server.release()
        server.release()  # idempotent
        assert _gone(first_pid) and server.pid is None
        assert not (state / "server.json").exists() and not Path(url[len("unix://"):]).exists()
        with EmbeddedServer(state) as again:
            assert again.pid != first_pid
            assert redis.Redis.from_url(again.acquire()).get("answer") == b"42"
        assert (state / "data").stat().st_mode & 0o777 == 0o700
    finally:
        server.release()
        _stop_servers_for(tmp_path)


def test_concurrent_acquires_share_one_server(tmp_path: Path, spawn_holder: Callable[..., Holder]) -> None:
    state = tmp_path / "state"
    holders = [spawn_holder(state) for _ in range(4)]
    got = [holder.expect("acquired") for holder in holders]
    assert len({g["url"] for g in got}) == 1
    assert [g["owner"] for g in got].count(True) == 1
    assert len(_servers_for(state)) == 1
    for holder in holders:
        holder.release()
    for holder in holders:
        holder.expect("released")
    assert _servers_for(state) == []


def test_owner_release_waits_for_a_client_mid_use(tmp_path: Path, spawn_holder: Callable[..., Holder]) -> None:
    state = tmp_path / "state"
    owner = spawn_holder(state)
    server_pid = owner.expect("acquired")["pid"]
    client_side = EmbeddedServer(state)
    try:
        url = client_side.acquire()
        assert not client_side.is_owner and client_side.pid is None and client_side.alive()
        owner.release()
        owner.expect("releasing")
        client = redis.Redis.from_url(url)
        for i in range(50):  # the owner is now waiting for us; the server keeps serving
            assert client.incr("uses") == i + 1
            time.sleep(0.01)
        assert owner.proc.poll() is None and not _gone(server_pid)
        client.close()
    finally:
        client_side.release()
    owner.expect("released")
    assert _gone(server_pid)


def test_a_killed_owner_leaves_no_server_and_loses_no_acknowledged_write(
    tmp_path: Path, spawn_holder: Callable[..., Holder]
) -> None:
    state = tmp_path / "state"
    owner = spawn_holder(state)
    got = owner.expect("acquired")
    client = redis.Redis.from_url(got["url"])
    pipe = client.pipeline(transaction=False)
    for i in range(2000):
        pipe.rpush("acked", i)
    pipe.execute()
    client.close()
    owner.proc.send_signal(signal.SIGKILL)
    owner.proc.wait()
    wait_for(lambda: _gone(got["pid"]), 10, "the orphaned server to exit")
    assert "Valkey is now ready to exit" in (state / "valkey.log").read_text()
    with EmbeddedServer(state) as successor:
        assert successor.is_owner and successor.pid != got["pid"]
        assert redis.Redis.from_url(successor.acquire()).llen("acked") == 2000


def test_owner_only_waits_for_a_short_lived_owner(tmp_path: Path, spawn_holder: Callable[..., Holder]) -> None:
    state = tmp_path / "state"
    cli = spawn_holder(state)
    cli_pid = cli.expect("acquired")["pid"]
    supervisor = spawn_holder(state, "owner_only")
    supervisor.expect("acquiring")
    lock = str(state / "server.lock")
    wait_for(lambda: any(f.path == lock for f in psutil.Process(supervisor.proc.pid).open_files()),
             10, "the supervisor to wait on server.lock")
    cli.release()
    cli.expect("released")
    got = supervisor.expect("acquired")
    assert got["owner"] and got["pid"] != cli_pid
    supervisor.release()
    supervisor.expect("released")


def test_owner_only_gives_up_after_its_timeout(tmp_path: Path, spawn_holder: Callable[..., Holder]) -> None:
    state = tmp_path / "state"
    spawn_holder(state).expect("acquired")
    with pytest.raises(EmbeddedServerError, match="still run by another process"):
        EmbeddedServer(state, start_timeout_s=0.3).acquire(owner_only=True)


def test_forked_children_never_shut_the_server_down(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKER, str(tmp_path / "state")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert _servers_for(tmp_path) == []


def test_alive_turns_false_when_the_server_dies(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "state") as server:
        os.kill(server.pid, signal.SIGTERM)
        wait_for(lambda: not server.alive(), 10, "alive() to notice the exit")


def test_a_file_in_place_of_the_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a folder")
    with pytest.raises(EmbeddedServerError, match="cannot use .*state.* as the embedded server's state folder"):
        EmbeddedServer(state).acquire()


def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "data").mkdir(parents=True)
    (state / "data" / "appendonlydir").write_text("a file where the AOF folder goes")
    with pytest.raises(EmbeddedServerError, match="exited with code .* while starting"):
        EmbeddedServer(state, start_timeout_s=10).acquire()
    assert not (state / "server.json").exists()
    assert _servers_for(tmp_path) == []
