"""CPU efficiency against a bare multiprocessing.Pool, and scaling with the number of workers."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from bench.handlers import burn
from bench.harness import Project, wait_until


def calibrate(target_s: float = 0.1) -> int:
    """Loops of `burn` that take about target_s here, now."""
    loops = 100_000
    while True:
        started = time.perf_counter()
        burn(loops)
        took = time.perf_counter() - started
        if took > 0.02:
            return int(loops * target_s / took)
        loops *= 4


def pool_wall(jobs: int, loops: int, workers: int) -> float:
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(burn, [loops] * jobs, chunksize=1)
    return time.perf_counter() - started


def batchrun_wall(workdir: Path, url: str, jobs: int, loops: int, workers: int) -> float:
    """From submit (workers already idle) to the last job finished."""
    project = Project(workdir, url)
    try:
        project.supervise("--workers", str(workers))
        wait_until(lambda: len(project.client.status()["workers"]) == workers, timeout_s=30)
        started = time.time()
        ids = project.client.submit_many("burn", [{"loops": loops}] * jobs)
        wait_until(lambda: len(project.finished_times(ids)) == jobs, timeout_s=600, poll_s=0.02)
        return max(project.finished_times(ids)) - started
    finally:
        project.close()


def efficiency(workdir: Path, url: str, jobs: int, workers: int) -> dict[str, float]:
    loops = calibrate()
    ceiling = pool_wall(jobs, loops, workers)
    ours = batchrun_wall(workdir, url, jobs, loops, workers)
    return {"ratio": ceiling / ours, "pool_s": ceiling, "batchrun_s": ours}


def scaling(workdir: Path, url: str, jobs: int, workers: int) -> dict[str, float]:
    loops = calibrate()
    one = batchrun_wall(workdir, url, jobs, loops, 1)
    many = batchrun_wall(workdir, url, jobs, loops, workers)
    return {"one_worker_s": one, f"{workers}_workers_s": many, "speedup": one / many}
