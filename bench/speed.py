"""The speed figures of issue 14, each beside the ceiling the same run measured on the same machine.

These VMs differ by more than 2x from one session to the next, so a figure
alone says little; its ratio to a bare client doing the same round trips in
the same minute does. Ceilings use redis-py's lowest layer (one Connection,
send_command/read_response) or a bare pipeline: nothing batchrun adds.
"""
from __future__ import annotations

import compileall
import secrets
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import redis

import batchrun

from bench.harness import Project, wait_until
from bench.throughput import enqueue_bulk
from bench.hosts import commandstats

PIPELINE_CHUNK = 10_000
# The commands a drain sends itself. Commands a script calls are counted in commandstats too, and
# their time is inside the script's, so summing every command would count them twice.
TOP_LEVEL = ("evalsha", "eval", "blpop")
ONE_KEY_SCRIPT = "return redis.call('RPUSH', KEYS[1], ARGV[1])"

# figure -> (ceiling figure or "", target description, predicate on (median, ratio to ceiling), unit)
SPEED: dict[str, tuple[str, str, Callable[[float, float], bool], str]] = {
    "submit_one_call_per_s": ("ceiling_evalsha_per_s", ">= 0.9 of ceiling", lambda v, r: r >= 0.9, "jobs/s"),
    "submit_bulk_100k_per_s": ("ceiling_pipeline_per_s", ">= 150,000 and >= 0.7 of ceiling",
                               lambda v, r: v >= 150_000 and r >= 0.7, "jobs/s"),
    "drain_steady_per_s": ("", ">= 25,000", lambda v, r: v >= 25_000, "jobs/s"),
    "drain_10k_with_startup_per_s": ("", ">= 15,000", lambda v, r: v >= 15_000, "jobs/s"),
    "first_job_done_s": ("", "<= 0.15", lambda v, r: v <= 0.15, "s"),
    "server_us_per_job": ("", "<= 15", lambda v, r: v <= 15, "us"),
}


def one_call(workdir: Path, url: str, calls: int, rounds: int = 20) -> dict[str, float]:
    """Client.submit beside its ceiling, a bare EVALSHA of a one-key script on one raw connection, one
    call at a time. The two alternate in `rounds` slices, so a change in how the VM schedules client
    and server (these machines flip between fast and slow modes) lands on both."""
    project = Project(workdir, url)
    client = redis.Redis.from_url(url)
    key = f"bench-ceiling:{secrets.token_hex(4)}"
    conn = client.connection_pool.get_connection()
    try:
        sha = client.script_load(ONE_KEY_SCRIPT)
        project.client.submit("noop")  # loads the script, as any long-lived client has
        bare = submits = 0.0
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(calls // rounds):
                conn.send_command("EVALSHA", sha, 1, key, "x")
                conn.read_response()
            bare += time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(calls // rounds):
                project.client.submit("noop")
            submits += time.perf_counter() - started
        per_side = calls // rounds * rounds
        return {"ceiling": per_side / bare, "submit": per_side / submits}
    finally:
        client.connection_pool.release(conn)
        client.delete(key)
        client.close()
        project.close()


def pipeline_ceiling(url: str, jobs: int) -> float:
    """Jobs/s of HSET (the fields a queued job has) + RPUSH per job, through bare pipelines."""
    client = redis.Redis.from_url(url)
    prefix = f"bench-ceiling:{secrets.token_hex(4)}:"
    try:
        started = time.perf_counter()
        ceiling_writes(client, prefix, jobs)
        return jobs / (time.perf_counter() - started)
    finally:
        for batch in _chunks(list(client.scan_iter(match=prefix + "*", count=10_000)), 10_000):
            client.delete(*batch)
        client.close()


def ceiling_writes(client: redis.Redis, prefix: str, jobs: int) -> None:
    """The bulk ceiling's writes: HSET of a queued job's fields and RPUSH of its id, per job, through bare
    pipelines of PIPELINE_CHUNK jobs (bench/instructions.py counts the same writes)."""
    now = time.time()
    for start in range(0, jobs, PIPELINE_CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(jobs, start + PIPELINE_CHUNK)):
                job_id = f"{i:026d}"
                pipe.hset(prefix + job_id, mapping={"job": "noop", "params": "{}", "queue": "default",
                                                    "state": "queued", "enqueued_at": now})
                pipe.rpush(prefix + "queue", job_id)
            pipe.execute()


def drain_with_server_time(workdir: Path, url: str, jobs: int, workers: int) -> dict[str, float]:
    """Drain `jobs` queued no-ops: jobs/s from `supervise` start to the last finish, the steady rate
    (10th to 90th percentile of finish times), and the server's time per job from INFO commandstats
    (the drain's script calls, heartbeats included, and its waits for work, over the jobs)."""
    project = Project(workdir, url)
    client = project.client.connection.client
    try:
        ids = project.client.submit_many("noop", [{}] * jobs)
        before = commandstats(client)
        started = time.time()
        proc = project.supervise("--workers", str(workers), "--until-empty")
        wait_until(lambda: proc.poll() is not None, timeout_s=600, poll_s=0.05)
        after = commandstats(client)
        done = project.finished_times(ids)
        assert len(done) == jobs, f"only {len(done)} of {jobs} jobs finished"
    finally:
        project.close()
    lo, hi = done[len(done) // 10], done[len(done) * 9 // 10]
    usec = sum(float(after.get(name, {}).get("usec", 0)) - float(before.get(name, {}).get("usec", 0))
               for name in TOP_LEVEL)
    return {"total": jobs / (done[-1] - started), "steady": len(done) * 0.8 / max(hi - lo, 1e-9),
            "server_us_per_job": usec / jobs}


def first_job_done(workdir: Path, url: str, workers: int) -> float:
    """Seconds from starting `supervise` (the process spawn included) to one queued job's finish.
    batchrun's bytecode is compiled first, as `pip install` does: an editable install run with
    PYTHONDONTWRITEBYTECODE (as on these machines) would otherwise compile every module at each start."""
    compileall.compile_dir(Path(batchrun.__file__).parent, quiet=1)
    project = Project(workdir, url)
    try:
        job_id = project.client.submit("noop")
        started = time.time()
        project.supervise("--workers", str(workers))
        key = project.client.broker.keys.job(job_id)
        redis_client = project.client.connection.client
        finished = wait_until(lambda: redis_client.hget(key, "finished_at"), timeout_s=60, poll_s=0.002)
        return float(finished) - started
    finally:
        project.close()


def measure(workdir: Path, url: str, quick: bool, workers: int) -> dict[str, float]:
    """One run of every speed figure, each ceiling taken right before its figure."""
    single = 3_000 if quick else 10_000
    calls = one_call(workdir, url, single)
    figures = {"ceiling_evalsha_per_s": calls["ceiling"], "submit_one_call_per_s": calls["submit"],
               "ceiling_pipeline_per_s": pipeline_ceiling(url, 100_000),
               "submit_bulk_100k_per_s": enqueue_bulk(workdir, url, 100_000)}
    drain = drain_with_server_time(workdir, url, 10_000, workers)
    figures.update(drain_steady_per_s=drain["steady"], drain_10k_with_startup_per_s=drain["total"],
                   server_us_per_job=drain["server_us_per_job"])
    figures["first_job_done_s"] = sorted(first_job_done(workdir, url, workers) for _ in range(3))[1]
    return figures


def table(runs: list[dict[str, float]]) -> str:
    """Figure, ceiling and ratio (medians over runs; the ratio is the median of per-run ratios), target."""
    lines = [f"{'figure':<30} {'median':>10} {'ceiling':>10} {'ratio':>6} {'unit':<7} {'target':<34} met"]
    for name, (ceiling, target, check, unit) in SPEED.items():
        value = statistics.median(r[name] for r in runs)
        if ceiling:
            roof = statistics.median(r[ceiling] for r in runs)
            ratio = statistics.median(r[name] / r[ceiling] for r in runs)
            roof_text, ratio_text = f"{roof:>10.5g}", f"{ratio:>6.2f}"
        else:
            ratio, roof_text, ratio_text = 1.0, f"{'-':>10}", f"{'-':>6}"
        met = "yes" if check(value, ratio) else "NO"
        lines.append(f"{name:<30} {value:>10.5g} {roof_text} {ratio_text} {unit:<7} {target:<34} {met}")
    return "\n".join(lines)


def _chunks(items: list, size: int) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]
