"""Redis memory per queued job, and the resident memory of a supervisor and its idle workers."""
from __future__ import annotations

from pathlib import Path

import psutil

from bench.harness import Project, wait_until


def redis_bytes_per_job(workdir: Path, url: str, jobs: int) -> float:
    project = Project(workdir, url)
    try:
        redis = project.client.connection.client
        before = redis.info("memory")["used_memory"]
        chunk = 50_000
        for start in range(0, jobs, chunk):
            project.client.submit_many("noop", [{}] * min(chunk, jobs - start))
        return (redis.info("memory")["used_memory"] - before) / jobs
    finally:
        project.close()


def resident_mb(workdir: Path, url: str, workers: int) -> dict[str, float]:
    project = Project(workdir, url)
    try:
        proc = project.supervise("--workers", str(workers))
        wait_until(lambda: len(project.client.status()["workers"]) == workers, timeout_s=30)
        supervisor = psutil.Process(proc.pid)
        children = [c for c in supervisor.children() if "valkey" not in c.name()]
        return {
            "supervisor_mb": supervisor.memory_info().rss / 2**20,
            "idle_worker_mb": max(c.memory_info().rss for c in children) / 2**20,
        }
    finally:
        project.close()
