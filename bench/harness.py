"""What every benchmark needs: its own Redis server, throw-away projects, supervisors, and statistics."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchrun.store.embedded import EmbeddedServer
from batchrun.surfaces.client import Client

HERE = Path(__file__).parent
JOBS = {
    "noop": "handler: benchjobs:noop\n",
    "burn": "handler: benchjobs:burn\nparams:\n  loops: {type: int, required: true}\n",
    "stamp": "handler: benchjobs:stamp\nparams:\n  sent: {type: float, required: true}\n",
    "sleep": "handler: benchjobs:sleep\nparams:\n  seconds: {type: float, required: true}\n",
    "sleep-limited": "handler: benchjobs:sleep\nconcurrency: 1\nparams:\n  seconds: {type: float, required: true}\n",
}


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """The suite's own embedded server, so a benchmark never touches the user's data."""
    server = EmbeddedServer(workdir / "redis")
    try:
        yield server.acquire()
    finally:
        server.release()


class Project:
    """A project folder with the benchmark jobs, in a fresh namespace of the suite's server."""

    def __init__(self, workdir: Path, redis_url: str, *, files: dict[str, str] | None = None,
                 jobs: dict[str, str] | None = None, **config: Any) -> None:
        """files: extra modules for the project folder; jobs: extra job definitions (name: YAML body)."""
        self.namespace = "bench" + secrets.token_hex(3)
        self.root = workdir / self.namespace
        (self.root / "jobs").mkdir(parents=True)
        (self.root / "configs").mkdir()
        shutil.copy(HERE / "handlers.py", self.root / "benchjobs.py")
        for name, text in (files or {}).items():
            (self.root / name).write_text(text)
        for name, body in {**JOBS, **(jobs or {})}.items():
            (self.root / "jobs" / f"{name}.yaml").write_text(f"name: {name}\nqueue: default\n{body}")
        settings = {"namespace": self.namespace, "heartbeat_interval": "1s", "heartbeat_ttl": "5s", **config}
        (self.root / "configs" / "batchrun.yaml").write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
        self.redis_url = redis_url
        self.client = Client.open(self.root / "configs" / "batchrun.yaml", self.root / "jobs", redis_url=redis_url)
        self.processes: list[subprocess.Popen] = []

    def supervise(self, *args: str) -> subprocess.Popen:
        env = {**os.environ, "BATCHRUN_REDIS_URL": self.redis_url, "BATCHRUN_LOG_LEVEL": "warning"}
        proc = subprocess.Popen([sys.executable, "-m", "batchrun", "supervise", *args], cwd=self.root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.processes.append(proc)
        return proc

    def finished_times(self, ids: list[str]) -> list[float]:
        redis = self.client.connection.client
        with redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.client.broker.keys.job(job_id), "finished_at")
            return sorted(float(v) for v in pipe.execute() if v is not None)

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        redis = self.client.connection.client
        for batch in _chunks(list(redis.scan_iter(match=self.client.broker.keys.pattern, count=10_000)), 10_000):
            redis.delete(*batch)
        self.client.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def wait_until(condition: Callable[[], Any], timeout_s: float, poll_s: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(poll_s)
    return value


def summary(values: list[float]) -> dict[str, float]:
    """Median and spread of repeated runs: these machines are noisy, one run says little."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
