"""Data jobs on a big host, with real supervisors: native thread caps, preloaded modules shared by the
workers, progress seen while a job runs, and resuming from a checkpoint after a SIGKILL."""
from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
import sys

import orjson
import psutil
import pytest

import batchrun
from batchrun.runtime.threads import available_cpus
from tests.support.project import HERE, wait_for

pytestmark = pytest.mark.timeout(90)

JOBS = {
    "read-threads": "handler: datajobs:read_threads\n",
    "read-two-threads": "handler: datajobs:read_threads\nthreads: 2\n",
    "steps": "handler: datajobs:steps\ntimeout: 60s\nparams:\n  total: {type: int, required: true}\n"
             "  pause: {type: float, default: 0.05}\n",
    "whoami": "handler: datajobs:whoami\ntimeout: 30s\nparams:\n  n: {type: int, default: 1}\n",
    "bad-input": "handler: datajobs:bad_input\n",
    "preloaded-sum": "handler: datajobs:preloaded_sum\n",
    "cmd-progress": "command: [" + repr(sys.executable) + ", progress_cmd.py]\n",
}

PROGRESS_COMMAND = """import sys, time
for i in range(1, 6):
    print(f"batchrun:progress {i} 5 chunk {i}", file=sys.stderr, flush=True)
    time.sleep(0.05)
print("noise", file=sys.stderr)
sys.exit(3)
"""


def _data_project(make_project, **config):
    project = make_project(**config)
    shutil.copy(HERE / "datahandlers.py", project.root / "datajobs.py")
    (project.root / "progress_cmd.py").write_text(PROGRESS_COMMAND)
    for name, body in JOBS.items():
        (project.root / "jobs" / f"{name}.yaml").write_text(f"name: {name}\nqueue: default\n{body}")
    return project


def _run(project, job: str, **params):
    job_id = project.submit(job, **params)
    wait_for(lambda: project.state(job_id) in ("succeeded", "failed", "dead"), timeout=60, what=f"{job} to end")
    info = project.job(job_id)
    assert info["state"] == "succeeded", (info.get("error"), info.get("traceback"))
    return info["result"]


def _supervise_with_env(project, extra: dict[str, str], *args: str) -> subprocess.Popen:
    log = open(project.root / f"supervisor-{len(project.processes)}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "batchrun", "supervise", *args], cwd=project.root,
                            env={**project.env, **extra}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    project.processes.append(proc)
    return proc


def test_workers_cap_native_pools_and_a_job_gets_its_own_threads(make_project):
    project = _data_project(make_project)
    project.supervise("--workers", "2")
    expected = max(1, available_cpus() // 2)
    assert _run(project, "read-threads") == {"blas": expected, "env": str(expected)}
    assert _run(project, "read-two-threads")["blas"] == 2
    assert _run(project, "read-threads")["blas"] == expected, "the worker goes back to its cap"
    assert {w["heartbeat"]["threads"] for w in project.workers()} == {str(expected)}
    assert f"threads {expected}" in project.cli("status").stdout


def test_a_thread_variable_the_user_set_wins_and_status_says_so(make_project):
    project = _data_project(make_project)
    _supervise_with_env(project, {"OPENBLAS_NUM_THREADS": "2"}, "--workers", "2")
    assert _run(project, "read-threads") == {"blas": 2, "env": "2"}
    wait_for(lambda: project.workers(), what="workers")
    assert all("OPENBLAS_NUM_THREADS=2" in w["heartbeat"]["threads"] for w in project.workers())


def test_threads_per_worker_zero_leaves_the_libraries_alone(make_project):
    project = _data_project(make_project, threads_per_worker=0)
    project.supervise("--workers", "2")
    result = _run(project, "read-threads")
    assert result["env"] is None and result["blas"] == os.cpu_count()


def test_a_preload_is_imported_once_by_the_supervisor_and_shared_by_the_workers(make_project):
    project = _data_project(make_project, preload=["bigdata"])
    (project.root / "bigdata.py").write_text(
        "import os\nimport numpy\nARRAY = numpy.ones(40_000_000)  # 320 MB\n"
        "with open(os.path.join(os.path.dirname(__file__), 'imported.log'), 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n")
    sup = project.supervise("--workers", "2")
    results = [_run(project, "preloaded-sum") for _ in range(4)]
    assert {r["sum"] for r in results} == {10.0}
    assert (project.root / "imported.log").read_text().split() == [str(sup.pid)], "imported once, by the supervisor"
    workers = psutil.Process(sup.pid).children()
    assert len(workers) == 2
    for worker in workers:
        assert worker.memory_full_info().uss < 100 * 2**20, "the array's pages stay shared"
    assert psutil.Process(sup.pid).memory_info().rss > 300 * 2**20


def test_a_preload_that_fails_stops_supervise_with_its_traceback(make_project):
    project = _data_project(make_project, preload=["broken"])
    (project.root / "broken.py").write_text("raise RuntimeError('no tables today')\n")
    result = project.cli("supervise", "--until-empty")
    assert result.returncode == 3
    assert "Traceback" in result.stderr and "no tables today" in result.stderr


def test_a_preload_that_leaves_threads_running_is_refused(make_project):
    project = _data_project(make_project, preload=["threaded"])
    (project.root / "threaded.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n")
    result = project.cli("supervise", "--until-empty")
    assert result.returncode == 3
    assert "threads running" in result.stderr and "unsafe" in result.stderr


def test_progress_rises_while_the_job_runs(make_project):
    project = _data_project(make_project, progress_interval="100ms")
    job_id = project.submit("steps", total=30, pause=0.1)
    project.supervise("--workers", "1")
    seen = []

    def finished() -> bool:
        info = project.job(job_id)
        if info.get("progress"):
            seen.append(info["progress"]["done"])
        return info["state"] == "succeeded"

    wait_for(finished, timeout=60, what="the job to finish")
    assert len(set(seen)) >= 3 and seen == sorted(seen), f"progress rose while it ran: {seen}"
    final = project.job(job_id)["progress"]
    assert (final["done"], final["total"], final["message"]) == (30, 30, "step 29")
    assert "100% (30/30) step 29" in project.cli("show", job_id).stdout


def test_a_killed_worker_resumes_from_its_last_checkpoint(make_project):
    project = _data_project(make_project, progress_interval="50ms")
    job_id = project.submit("steps", total=20, pause=0.1)
    project.supervise("--workers", "1")
    wait_for(lambda: (project.job(job_id).get("progress") or {}).get("done", 0) >= 10, what="half the steps")
    os.kill(int(project.workers()[0]["heartbeat"]["pid"]), signal.SIGKILL)
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=60, what="the resumed job to finish")
    info = project.job(job_id)
    assert info["result"] == {"sum": sum(i * i for i in range(20))}, "the same result as an undisturbed run"
    starts = [line.split() for line in (project.root / "steps.log").read_text().splitlines()]
    assert starts[0] == ["1", "0"] and starts[1][0] == "2" and int(starts[1][1]) >= 10, starts
    assert info["checkpoint_bytes"] > 0 and info["checkpoint_at"] > info["started_at"]


def test_current_job_and_bad_input_inside_a_handler(make_project):
    project = _data_project(make_project)
    project.supervise("--workers", "1")
    me = _run(project, "whoami", n=3)
    assert (me["name"], me["attempt"], me["params"]) == ("whoami", 1, {"n": 3})
    assert 25 < me["deadline"] <= 30
    errors, kept = _run(project, "bad-input")
    assert len(errors) == 4 and "max_checkpoint" in errors[1] and "more than total" in errors[3]
    assert kept == {"kept": True}, "a refused checkpoint leaves the previous one in place"


def test_outside_a_job_the_functions_say_so():
    for call in (lambda: batchrun.progress(1), lambda: batchrun.checkpoint({}), batchrun.last_checkpoint,
                 batchrun.current_job):
        with pytest.raises(batchrun.NotInJob, match="only be called from a job's handler"):
            call()


def test_show_json_carries_progress_and_checkpoint_fields(make_project):
    project = _data_project(make_project)
    project.supervise("--workers", "1")
    job_id = project.submit("steps", total=3, pause=0.0)
    wait_for(lambda: project.state(job_id) == "succeeded", what="the job")
    info = orjson.loads(project.cli("show", job_id, "--json").stdout)
    assert set(info["progress"]) == {"done", "total", "message", "at"}
    assert {"checkpoint_at", "checkpoint_bytes"} <= set(info)


def test_a_command_job_reports_progress_on_stderr(make_project):
    project = _data_project(make_project, progress_interval="10ms")
    job_id = project.submit("cmd-progress")
    project.supervise("--workers", "1")
    wait_for(lambda: project.state(job_id) == "failed", what="the command to end")
    info = project.job(job_id)
    assert (info["progress"]["done"], info["progress"]["total"], info["progress"]["message"]) == (5, 5, "chunk 5")
    assert info["traceback"].strip() == "noise", "progress lines are not kept as output"


def test_wait_draws_a_progress_bar_on_a_terminal(make_project):
    project = _data_project(make_project, progress_interval="50ms")
    job_id = project.submit("steps", total=10, pause=0.1)
    project.supervise("--workers", "1")
    controller, terminal = pty.openpty()
    try:
        waiter = subprocess.Popen([sys.executable, "-m", "batchrun", "wait", job_id], cwd=project.root,
                                  env=project.env, stdout=subprocess.PIPE, stderr=terminal, text=True)
        os.close(terminal)
        stdout, _ = waiter.communicate(timeout=60)
        drawn = _read_all(controller)
    finally:
        os.close(controller)
    assert waiter.returncode == 0 and stdout.strip() == f"{job_id}  succeeded"
    assert "[########################] 100% (10/10) step 9  succeeded" in drawn
    assert drawn.count("\r") >= 2, "the bar was redrawn while the job ran"


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_a_stale_attempts_checkpoint_is_refused(make_project):
    """Host a is frozen (SIGSTOP) while its worker runs a checkpointing job: host b re-runs the job, and the
    old worker, still running, has its next checkpoint refused instead of overwriting the new attempt's."""
    project = _data_project(make_project)
    job_id = project.submit("steps", total=40, pause=0.1)
    frozen = project.supervise("--workers", "1", host="a")
    wait_for(lambda: (project.job(job_id).get("progress") or {}).get("done", 0) >= 3, what="a few steps on a")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        project.supervise("--workers", "1", host="b")
        wait_for(lambda: "its checkpoint is refused" in project.supervisor_log(0), timeout=30,
                 what="the old attempt's checkpoint to be refused")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_for(lambda: project.state(job_id) == "succeeded", timeout=60, what="the new attempt to finish")
    assert project.job(job_id)["result"] == {"sum": sum(i * i for i in range(40))}
