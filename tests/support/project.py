"""A throw-away batchrun project for one test: config, job definitions, handlers, and its processes."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from batchrun.store.keys import Keys
from batchrun.surfaces.client import Client

HERE = Path(__file__).parent
REPO = HERE.parent.parent

JOBS = {
    "noop": "handler: testjobs:noop\nqueue: default\n",
    "sleep": "handler: testjobs:sleep\nqueue: default\nparams:\n  seconds: {type: float, required: true}\n"
             "  tag: {type: str, default: ''}\n",
    "sleep-high": "handler: testjobs:sleep\nqueue: high\nparams:\n  seconds: {type: float, required: true}\n"
                  "  tag: {type: str, default: ''}\n",
    "sleep-low": "handler: testjobs:sleep\nqueue: low\nparams:\n  seconds: {type: float, required: true}\n"
                 "  tag: {type: str, default: ''}\n",
    "spin": "handler: testjobs:spin\nqueue: default\nparams:\n  seconds: {type: float, required: true}\n"
            "  tag: {type: str, default: ''}\n",
    "gil": "handler: testjobs:hold_gil\nqueue: default\nparams:\n  seconds: {type: float, required: true}\n"
           "  tag: {type: str, default: ''}\n",
    "crash": "handler: testjobs:crash\nqueue: default\nparams:\n  tag: {type: str, default: ''}\n",
    "crash-once": "handler: testjobs:crash_once\nqueue: default\nparams:\n  tag: {type: str, default: ''}\n",
    "fail": "handler: testjobs:fail\nqueue: default\nparams:\n  tag: {type: str, default: ''}\n",
    "unserialisable": "handler: testjobs:unserialisable\nqueue: default\n",
    "echo": "command: [" + repr(sys.executable) + ", -c, 'import sys; print(sys.argv[1])', '{word}']\n"
            "queue: default\nparams:\n  word: {type: str, required: true}\n",
    "exit3": "command: [" + repr(sys.executable) + ", -c, 'raise SystemExit(3)']\nqueue: default\n",
    "flaky": "handler: testjobs:fail_times\nqueue: default\nretries: 3\nbackoff: {delay: 100ms, jitter: false}\n"
             "params:\n  times: {type: int, required: true}\n  tag: {type: str, default: ''}\n",
    "flaky-slow": "handler: testjobs:fail_times\nqueue: default\nretries: 2\nbackoff: {delay: 1s, jitter: false}\n"
                  "params:\n  times: {type: int, required: true}\n  tag: {type: str, default: ''}\n",
    "fail-retried": "handler: testjobs:fail\nqueue: default\nretries: 2\nbackoff: 50ms\n"
                    "params:\n  tag: {type: str, default: ''}\n",
    "permanent": "handler: testjobs:permanent\nqueue: default\nretries: 3\nbackoff: 50ms\n"
                 "params:\n  tag: {type: str, default: ''}\n",
    "forever": "handler: testjobs:forever\nqueue: default\ntimeout: 1s\nparams:\n  tag: {type: str, default: ''}\n",
    "block": "handler: testjobs:block\nqueue: default\ntimeout: 1s\nretries: 1\nbackoff: 50ms\n"
             "params:\n  tag: {type: str, default: ''}\n",
    "deaf": "handler: testjobs:deaf\nqueue: default\ntimeout: 500ms\nparams:\n  tag: {type: str, default: ''}\n",
    "hang": "handler: testjobs:block\nqueue: default\nparams:\n  tag: {type: str, default: ''}\n",
    "allocate": "handler: testjobs:allocate\nqueue: default\nmemory_limit: 150MiB\n"
                "params:\n  megabytes: {type: int, required: true}\n  tag: {type: str, default: ''}\n",
    "spawner": "command: [" + repr(sys.executable) + ", -c, 'import subprocess, sys, time; "
               "subprocess.Popen([\"sleep\", \"61\", sys.argv[1]]); time.sleep(60)', '{marker}']\n"
               "queue: default\ntimeout: 1s\nparams:\n  marker: {type: str, required: true}\n",
    "big-result": "handler: testjobs:big_result\nqueue: default\nparams:\n  size: {type: int, required: true}\n",
    "square": "handler: testjobs:square\nqueue: default\nparams:\n  n: {type: int, required: true}\n"
              "  seconds: {type: float, default: 0.0}\n  label: {type: str, default: ''}\n",
    "batch-done": "handler: testjobs:batch_done\nqueue: default\nparams:\n  batch_id: {type: str, required: true}\n",
}

DEFAULT_CONFIG = {
    "queues": ["high", "default", "low"],
    "heartbeat_interval": "200ms",
    "heartbeat_ttl": "1s",
    "grace_period": "10s",
    "crash_limit": 3,
    "workers": 2,
}


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll a condition instead of sleeping a fixed time; fail with a message naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Project:
    def __init__(self, root: Path, redis_url: str | None, namespace: str, config: dict[str, Any]) -> None:
        self.root = root
        self.redis_url = redis_url
        self.namespace = namespace
        self.keys = Keys(namespace)
        self.processes: list[subprocess.Popen] = []
        (root / "jobs").mkdir(parents=True)
        (root / "configs").mkdir()
        shutil.copy(HERE / "handlers.py", root / "testjobs.py")
        for name, body in JOBS.items():
            (root / "jobs" / f"{name}.yaml").write_text(f"name: {name}\n{body}")
        self.write_config(**config)
        self._client: Client | None = None

    def write_config(self, **settings: Any) -> None:
        lines = [f"namespace: {self.namespace}"]
        for key, value in settings.items():
            lines.append(f"{key}: {value!r}" if not isinstance(value, list) else f"{key}: [{', '.join(value)}]")
        (self.root / "configs" / "batchrun.yaml").write_text("\n".join(lines) + "\n")

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHRUN_")}
        if self.redis_url:
            env["BATCHRUN_REDIS_URL"] = self.redis_url
        env["PYTHONPATH"] = str(REPO)
        return env

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.open(self.root / "configs" / "batchrun.yaml", self.root / "jobs",
                                       redis_url=self.redis_url)
        return self._client

    @property
    def redis(self) -> redis.Redis:
        return self.client.connection.client

    def submit(self, job: str, **params: Any) -> str:
        return self.client.submit(job, **params)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.job(job_id)

    def state(self, job_id: str) -> str:
        return self.job(job_id)["state"]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "batchrun", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def supervise(self, *args: str, host: str | None = None) -> subprocess.Popen:
        """Start a real supervisor in its own process group, so cleanup can kill it and all its workers.
        `host` names a separate state folder, which is how a test simulates another host."""
        log = open(self.root / f"supervisor-{len(self.processes)}.log", "w")
        env = self.env if host is None else {**self.env, "BATCHRUN_STATE_DIR": str(self.root / f"host-{host}"),
                                             "BATCHRUN_HOST_NAME": f"host-{host}"}
        proc = subprocess.Popen([sys.executable, "-m", "batchrun", "supervise", *args], cwd=self.root,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes.append(proc)
        return proc

    def supervisor_log(self, index: int = -1) -> str:
        logs = sorted(self.root.glob("supervisor-*.log"), key=lambda p: int(p.stem.split("-")[1]))
        return logs[index].read_text()

    def runs(self, event: str = "start") -> list[tuple[str, int]]:
        path = self.root / "runs.log"
        if not path.exists():
            return []
        rows = [line.split() for line in path.read_text().splitlines()]
        return [(r[1], int(r[2])) for r in rows if r[0] == event]

    def tags_run(self, event: str = "start") -> list[str]:
        return [tag for tag, _ in self.runs(event)]

    def workers(self) -> list[dict[str, Any]]:
        return self.client.status()["workers"]

    def processing_total(self) -> int:
        return self.client.status()["in_flight"]

    def cleanup(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
            _kill_group(proc.pid)
        if self._client is not None:
            self._client.close()


def _kill_group(pgid: int) -> None:
    """Orphaned workers keep their supervisor's process group: make sure none outlives the test."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ProjectFactory:
    def __init__(self, tmp_path: Path, redis_url: str | None) -> None:
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.projects: list[Project] = []

    def __call__(self, *, embedded: bool = False, **config: Any) -> Project:
        root = self.tmp_path / f"project{len(self.projects)}"
        namespace = "t" + secrets.token_hex(4)
        project = Project(root, None if embedded else self.redis_url, namespace, {**DEFAULT_CONFIG, **config})
        self.projects.append(project)
        return project

    def cleanup(self) -> None:
        for project in self.projects:
            project.cleanup()


__all__ = ["Project", "ProjectFactory", "wait_for"]
