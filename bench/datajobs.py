"""Data jobs on this host: what the native thread cap is worth, and what a preload costs each worker.

Both figures need numpy (installed with the test extra). The matrix products run
with the cap (the default: CPUs / workers threads each) and with it turned off
(`threads_per_worker: 0`, numpy's own default of one thread per CPU in every
worker), side by side in the same run.
"""
from __future__ import annotations

import time
from pathlib import Path

import psutil

from bench.harness import Project, wait_until

MATMUL = '''import numpy

A = numpy.random.default_rng(1).random((400, 400))


def matmul(reps: int) -> float:
    total = 0.0
    for _ in range(reps):
        total += float((A @ A)[0, 0])
    return total
'''

TABLES = '''import numpy

TABLE = numpy.ones({size_mb} * 2**20 // 8)


def lookup() -> float:
    return float(TABLE[::4096].sum())
'''


def thread_cap(workdir: Path, url: str, jobs: int, workers: int) -> dict[str, float]:
    """Matrix products per second with the cap and without it."""
    return {"capped": _matmul_rate(workdir, url, jobs, workers, None),
            "uncapped": _matmul_rate(workdir, url, jobs, workers, 0)}


def _matmul_rate(workdir: Path, url: str, jobs: int, workers: int, threads: int | None) -> float:
    config = {} if threads is None else {"threads_per_worker": threads}
    reps = 10
    project = Project(workdir, url, files={"benchmatmul.py": MATMUL},
                      jobs={"matmul": "handler: benchmatmul:matmul\nparams:\n  reps: {type: int, required: true}\n"},
                      **config)
    try:
        ids = project.client.submit_many("matmul", [{"reps": reps}] * jobs)
        started = time.time()
        project.supervise("--workers", str(workers))
        wait_until(lambda: len(project.finished_times(ids)) == jobs, timeout_s=600, poll_s=0.05)
        return jobs * reps / (max(project.finished_times(ids)) - started)
    finally:
        project.close()


def preload_uss(workdir: Path, url: str, size_mb: int, workers: int) -> dict[str, float]:
    """Unique memory (USS) of each worker when they share a preloaded array of size_mb, after each
    worker has read from it."""
    project = Project(workdir, url, preload="[benchtables]", files={"benchtables.py": TABLES.format(size_mb=size_mb)},
                      jobs={"lookup": "handler: benchtables:lookup\n"})
    try:
        proc = project.supervise("--workers", str(workers))
        ids = project.client.submit_many("lookup", [{}] * (workers * 4))
        wait_until(lambda: len(project.finished_times(ids)) == len(ids), timeout_s=120, poll_s=0.05)
        children = psutil.Process(proc.pid).children()
        uss = [child.memory_full_info().uss / 2**20 for child in children]
        return {"worker_uss_mb_max": max(uss), "supervisor_rss_mb": psutil.Process(proc.pid).memory_info().rss / 2**20}
    finally:
        project.close()
