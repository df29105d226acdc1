"""Real Redis servers for tests that need more than the session's one: a password, TLS, Sentinel, Cluster.

Each comes from Debian's redis-server (CI installs it in both lanes) on
127.0.0.1, in the test's own folder; `Servers.cleanup()` stops every process it
started. A missing binary fails the test with a message saying what to
install; nothing is skipped silently.
"""
from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.project import wait_for


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: `apt-get install -y redis-server` (CI's .ci/run does)")
    return path


def free_port(bus: bool = False) -> int:
    """A free port on 127.0.0.1; with `bus`, one whose Cluster bus port (port + 10000) is free too."""
    if not bus:
        return _bind(0)
    for _ in range(200):
        port = random.randrange(20000, 40000)
        try:
            _bind(port), _bind(port + 10000)
        except OSError:
            continue
        return port
    raise AssertionError("no free pair of ports for a Cluster node")


def _bind(port: int) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        return sock.getsockname()[1]


@dataclass
class Server:
    port: int
    proc: subprocess.Popen
    folder: Path

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **options)

    def kill(self) -> None:
        """SIGKILL: the way a host dies."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


class Servers:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Server] = []

    def redis(self, *args: str, ready: bool = True, **client_options: object) -> Server:
        """A redis-server on a free port with `args` added to its command line."""
        port = free_port(bus="--cluster-enabled" in args)
        folder = self.root / f"redis-{port}"
        folder.mkdir(parents=True)
        command = [require("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                   "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(folder / "log"), *args]
        server = self._start(command, port, folder)
        if ready:
            wait_for(lambda: _pings(server.client(**client_options)), timeout=10, what=f"redis-server on {port}")
        return server

    def sentinel_set(self, service: str = "main") -> tuple[Server, Server, Server]:
        """A master, a replica and one Sentinel that promotes the replica 1 s after the master dies."""
        master = self.redis()
        replica = self.redis("--replicaof", "127.0.0.1", str(master.port))
        wait_for(lambda: replica.client().info("replication").get("master_link_status") == "up", timeout=15,
                 what="the replica to sync")
        port = free_port()
        folder = self.root / f"sentinel-{port}"
        folder.mkdir(parents=True)
        conf = folder / "sentinel.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {folder}\nlogfile {folder / 'log'}\n"
                        f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
                        f"sentinel down-after-milliseconds {service} 1000\n"
                        f"sentinel failover-timeout {service} 5000\n")
        sentinel = self._start([require("redis-server"), str(conf), "--sentinel"], port, folder)
        wait_for(lambda: _master_of(sentinel, service) == master.port, timeout=10, what="the Sentinel to see the master")
        wait_for(lambda: _replicas_known(sentinel, service), timeout=15, what="the Sentinel to find the replica")
        return master, replica, sentinel

    def cluster(self, masters: int = 3) -> list[Server]:
        """A Cluster of `masters` nodes with no replicas, its slots spread by `redis-cli --cluster create`."""
        nodes = [self.redis("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "2000") for _ in range(masters)]
        subprocess.run([require("redis-cli"), "--cluster", "create",
                        *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        wait_for(lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in nodes), timeout=30,
                 what="the cluster to be ok")
        return nodes

    def tls(self, *args: str) -> tuple[Server, Path]:
        """A server that speaks only TLS, with a certificate made here; returns it and the CA file."""
        folder = self.root / "tls"
        folder.mkdir(parents=True, exist_ok=True)
        ca, cert, key = make_certificate(folder)
        server = self.redis("--port", "0", "--tls-port", str(port := free_port()), "--tls-cert-file", str(cert),
                            "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
                            *args, ready=False)
        server.port = port
        return server, ca

    def _start(self, command: list[str], port: int, folder: Path) -> Server:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        server = Server(port, proc, folder)
        self.started.append(server)
        return server

    def cleanup(self) -> None:
        for server in self.started:  # nothing here is kept, so no clean shutdown is owed
            server.kill()


def make_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a certificate for 127.0.0.1 signed by it, made with openssl."""
    openssl = require("openssl")
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=batchrun test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
         "-extfile", ext],
    ]
    for step in steps:
        subprocess.run([openssl, *map(str, step)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _master_of(sentinel: Server, service: str) -> int | None:
    try:
        host_port = sentinel.client().sentinel_get_master_addr_by_name(service)
    except redis.RedisError:
        return None
    return int(host_port[1]) if host_port else None


def _replicas_known(sentinel: Server, service: str) -> bool:
    try:
        return bool(sentinel.client().sentinel_slaves(service))
    except redis.RedisError:
        return False


def wait_for_failover(sentinel: Server, service: str, old_port: int, timeout: float = 30.0) -> int:
    """Wait until the Sentinel names a new master; returns its port."""
    return wait_for(lambda: (p := _master_of(sentinel, service)) not in (None, old_port) and p, timeout=timeout,
                    what="the Sentinel to promote the replica")

