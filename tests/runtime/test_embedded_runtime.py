"""The runtime on its embedded server: what a user gets with no Redis configured."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import orjson
import psutil
import pytest

from batchrun.store.embedded import EmbeddedServer
from tests.support.project import REPO, wait_for

pytestmark = pytest.mark.timeout(120)


def _servers_for(state_dir) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any("valkey-server" in part for part in cmdline[:1]) and str(state_dir) in " ".join(cmdline):
            found.append(proc)
    return found


# An application that keeps a Client open on the embedded default (no BATCHRUN_REDIS_URL), driven by
# one JSON command a line on stdin, answering one JSON line each.
APPLICATION = r"""
import json, sys
import batchrun
client = batchrun.Client.open()
print(json.dumps({"open": True}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    if command["op"] == "submit":
        print(json.dumps({"id": client.submit(command["job"], **command["params"])}), flush=True)
    elif command["op"] == "state":
        print(json.dumps({"state": client.job(command["id"])["state"]}), flush=True)
    else:
        break
client.close()
print(json.dumps({"closed": True}), flush=True)
"""


class Application:
    def __init__(self, project) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", APPLICATION], cwd=project.root, env=project.env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        project.processes.append(self.proc)
        assert self._answer() == {"open": True}

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()  # blocks; the test's timeout bounds it
        assert line, f"the application exited with {self.proc.wait()}"
        return orjson.loads(line)

    def ask(self, **command) -> dict:
        self.proc.stdin.write(orjson.dumps(command).decode() + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def submit(self, job: str, **params) -> str:
        return self.ask(op="submit", job=job, params=params)["id"]

    def state(self, job_id: str) -> str:
        return self.ask(op="state", id=job_id)["state"]

    def close(self) -> None:
        assert self.ask(op="close") == {"closed": True}
        assert self.proc.wait(timeout=30) == 0


def _run(cwd, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHRUN_")}
    return subprocess.run([sys.executable, "-m", "batchrun", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=90)


def test_the_readme_quick_start_runs_the_shipped_example(tmp_path):
    for folder in ("jobs", "examples", "configs"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    submitted = _run(tmp_path, "submit", "count-primes", "-p", "stop=30000")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert _servers_for(tmp_path / ".batchrun") == [], "a CLI command does not leave its server running"
    drained = _run(tmp_path, "supervise", "--until-empty", "--workers", "2")
    assert drained.returncode == 0, drained.stderr
    shown = _run(tmp_path, "show", job_id, "--json")
    info = orjson.loads(shown.stdout)
    assert info["state"] == "succeeded"
    assert info["result"] == {"start": 0, "stop": 30000, "primes": 3245}
    assert _servers_for(tmp_path / ".batchrun") == []


def test_killed_supervisor_leaves_no_server_and_loses_no_job(make_project):
    project = make_project(embedded=True)
    ids = [project.cli("submit", "sleep", "-p", "seconds=0.8", "-p", f"tag=e{i}").stdout.strip()
           for i in range(3)]
    sup = project.supervise("--workers", "1")
    wait_for(lambda: project.runs(), what="a job to start")
    server = wait_for(lambda: _servers_for(project.root / ".batchrun"), what="the embedded server")[0]
    os.killpg(sup.pid, signal.SIGKILL)
    sup.wait(timeout=10)
    server.wait(timeout=15)
    project.supervise("--until-empty", "--workers", "2").wait(timeout=60)
    states = [orjson.loads(project.cli("show", i, "--json").stdout)["state"] for i in ids]
    assert states == ["succeeded"] * 3
    assert _servers_for(project.root / ".batchrun") == []


def test_a_redis_restart_loses_no_job(make_project, tmp_path):
    """Redis (with AOF) restarted while jobs run: workers wait for it, and every job still finishes."""
    server = EmbeddedServer(tmp_path / "restarting-redis")
    url = server.acquire()
    try:
        project = make_project()
        project.redis_url = url
        ids = [project.submit("sleep", seconds=0.3, tag=f"r{i}") for i in range(8)]
        project.client.close()
        project._client = None
        sup = project.supervise("--workers", "2")
        wait_for(lambda: len(project.runs()) >= 2, what="jobs to start")
        server.release()
        time.sleep(1.5)  # downtime longer than the heartbeat TTL: workers are fenced and their jobs reclaimed
        server.acquire()
        wait_for(lambda: all(project.state(j) == "succeeded" for j in ids), timeout=60, what="every job to finish")
        assert sorted(set(project.tags_run())) == sorted(f"r{i}" for i in range(8))
        assert sup.poll() is None, "the supervisor rode out the restart"
    finally:
        project.cleanup()
        server.release()


def test_a_supervisor_runs_jobs_while_an_application_keeps_its_client_open(make_project):
    project = make_project(embedded=True)
    state_dir = project.root / ".batchrun"
    app = Application(project)
    first = app.submit("sleep", seconds=0.1, tag="first")
    sup = project.supervise("--workers", "1", "--until-empty")
    assert sup.wait(timeout=60) == 0, project.supervisor_log()
    assert app.state(first) == "succeeded"
    assert len(_servers_for(state_dir)) == 1, "the application still uses the server"
    second = app.submit("sleep", seconds=0.1, tag="second")
    assert app.state(second) == "queued"
    app.close()
    assert _servers_for(state_dir) == [], "the last user's close stops the server"


def test_an_application_submits_to_a_running_supervisor(make_project):
    project = make_project(embedded=True)
    state_dir = project.root / ".batchrun"
    sup = project.supervise("--workers", "1")
    server = wait_for(lambda: _servers_for(state_dir), what="the supervisor's embedded server")[0]
    app = Application(project)
    job_id = app.submit("sleep", seconds=0.1, tag="from-app")
    wait_for(lambda: app.state(job_id) == "succeeded", what="the job to run")
    app.close()
    assert server.is_running() and sup.poll() is None, "the supervisor still uses the server"
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=30) == 0, project.supervisor_log()
    assert _servers_for(state_dir) == []
