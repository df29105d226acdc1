"""What jobs waiting for a concurrency slot cost: CPU of the supervisor and its workers, and Redis
commands per second, while one limited job runs and 50 wait, against the same supervisor idle."""
from __future__ import annotations

import time
from pathlib import Path

import psutil

from bench.harness import Project, wait_until

WINDOW_S = 2.0
WAITING = 50


def waiting_cost(workdir: Path, url: str, workers: int) -> dict[str, float]:
    project = Project(workdir, url)
    try:
        proc = project.supervise("--workers", str(workers))
        wait_until(lambda: len(project.client.status()["workers"]) == workers, timeout_s=30)
        idle = _window(project, proc.pid)
        project.client.submit_params("sleep-limited", {"seconds": 60})
        for _ in range(WAITING):
            project.client.submit_params("sleep-limited", {"seconds": 0})
        waiting_key = project.client.broker.keys.waiting("sleep-limited")
        redis = project.client.connection.client
        wait_until(lambda: redis.llen(waiting_key) == WAITING, timeout_s=30)
        waiting = _window(project, proc.pid)
        return {"idle_cpu_ms_per_s": idle[0], "idle_redis_cmds_per_s": idle[1],
                "waiting_cpu_ms_per_s": waiting[0], "waiting_redis_cmds_per_s": waiting[1]}
    finally:
        project.close()


def _window(project: Project, pid: int) -> tuple[float, float]:
    """CPU milliseconds per second of the supervisor and its workers, and server commands per second."""
    redis = project.client.connection.client
    procs = [psutil.Process(pid), *psutil.Process(pid).children()]
    cpu_before = sum(sum(p.cpu_times()[:2]) for p in procs)
    commands_before = redis.info("stats")["total_commands_processed"]
    time.sleep(WINDOW_S)
    cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu_before
    commands = redis.info("stats")["total_commands_processed"] - commands_before - 1
    return 1000 * cpu / WINDOW_S, commands / WINDOW_S
