"""The cost of durable submits (min_replicas): one-call submits against a master with one replica, with and
without waiting for the replica. Needs Debian's redis-server (CI installs it); without it the figure is
reported as missing, never guessed."""
from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import redis

from bench.harness import wait_until
from bench.throughput import enqueue_single


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(folder: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = _port()
    folder.mkdir(parents=True)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             "--save", "", "--appendonly", "no", "--daemonize", "no", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def submit_rates(workdir: Path, jobs: int) -> dict[str, float]:
    if shutil.which("redis-server") is None:
        print("replicas: redis-server is not installed; durable-submit figures skipped", flush=True)
        return {}
    master, port = _start(workdir / "master")
    replica, _ = _start(workdir / "replica", "--replicaof", "127.0.0.1", str(port))
    try:
        client = redis.Redis(port=port)
        wait_until(lambda: _ping(client) and _replica_online(client), 30, 0.05)
        url = f"redis://127.0.0.1:{port}/0"
        return {"submit_no_wait_per_s": enqueue_single(workdir, url, jobs, min_replicas=0),
                "submit_min_replicas_1_per_s": enqueue_single(workdir, url, jobs, min_replicas=1)}
    finally:
        for proc in (replica, master):
            proc.kill()
            proc.wait()


def _replica_online(client: redis.Redis) -> bool:
    replica = client.info("replication").get("slave0")
    return isinstance(replica, dict) and replica.get("state") == "online"


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
