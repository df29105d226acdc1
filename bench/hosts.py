"""How far one Redis carries many hosts: the server's cost per job, per heartbeat and per sweep.

Costs are read from the server itself: INFO commandstats (calls and µs of each
command) and INFO cpu (the server process's CPU time), before and after. The
many-hosts scenario does not start 64,000 processes: each simulated host is a
supervisor's Redis traffic only, a beat script call renewing its 64 workers
and a sweep call, sent through one client in pipelines, so the server sees the
calls a real fleet would send, one interval's worth per round.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import redis

from bench.harness import Project, wait_until
from batchrun.store.broker import Broker

PIPELINE = 100


def server_cpu_s(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def commandstats(client: redis.Redis) -> dict[str, dict[str, float]]:
    return {name.removeprefix("cmdstat_"): stats for name, stats in client.info("commandstats").items()}


def _delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], name: str, field: str) -> float:
    return float(after.get(name, {}).get(field, 0)) - float(before.get(name, {}).get(field, 0))


def cost_per_job(workdir: Path, url: str, jobs: int, workers: int, seconds: float = 0.0) -> dict[str, float]:
    """Submit `jobs` jobs one call each (no-ops, or sleeps of `seconds`) and drain them: the server's cost
    per job, all traffic included (heartbeats, sweeps and idle waits of that run too). No-ops are taken in
    batches (pacing.py); jobs of 10 ms and longer one per fetch, as real jobs are."""
    project = Project(workdir, url)
    client = project.client.connection.client
    try:
        stats, cpu = commandstats(client), server_cpu_s(client)
        for _ in range(jobs):
            if seconds:
                project.client.submit("sleep", seconds=seconds)
            else:
                project.client.submit("noop")
        proc = project.supervise("--workers", str(workers), "--until-empty")
        wait_until(lambda: proc.poll() is not None, timeout_s=600, poll_s=0.05)
        after, cpu_after = commandstats(client), server_cpu_s(client)
    finally:
        project.close()
    scripts = _delta(stats, after, "evalsha", "calls") + _delta(stats, after, "eval", "calls")
    return {
        "scripts_per_job": scripts / jobs,
        "script_us_per_job": (_delta(stats, after, "evalsha", "usec") + _delta(stats, after, "eval", "usec")) / jobs,
        "blpop_per_job": _delta(stats, after, "blpop", "calls") / jobs,
        "server_cpu_us_per_job": (cpu_after - cpu) * 1e6 / jobs,
    }


def _register(broker: Broker, worker_ids: list[str], ttl_s: float) -> None:
    for start in range(0, len(worker_ids), PIPELINE):
        with broker.client.pipeline(transaction=False) as pipe:
            for worker_id in worker_ids[start:start + PIPELINE]:
                broker.scripts.register(keys=[broker.keys.worker(worker_id), broker.keys.workers,
                                              broker.keys.expiries],
                                        args=[worker_id, int(ttl_s * 1000), "host", "sim"], client=pipe)
            pipe.execute()


def _round(broker: Broker, hosts: list[list[str]], ttl_ms: int, sweep: bool) -> None:
    """One heartbeat interval of the whole fleet: every host beats its workers (and sweeps)."""
    keys = broker.keys
    for start in range(0, len(hosts), PIPELINE):
        with broker.client.pipeline(transaction=False) as pipe:
            for workers in hosts[start:start + PIPELINE]:
                if sweep:
                    broker.scripts.sweep(keys=[keys.expiries], args=[1000, ttl_ms], client=pipe)
                else:
                    broker.scripts.beat(keys=[keys.expiries, *map(keys.worker, workers)],
                                        args=[ttl_ms, time.time(), *workers], client=pipe)
            pipe.execute()


def fleet(url: str, hosts: int, workers: int, rounds: int) -> dict[str, Any]:
    """Server cost of `hosts` x `workers` heartbeats and sweeps, and of the sweep with few and many workers."""
    client = redis.Redis.from_url(url)
    broker = Broker(client, "benchfleet" + secrets.token_hex(3))
    ttl_ms = 600_000
    try:
        fleet_ids = [[f"h{h}-w{w}" for w in range(workers)] for h in range(hosts)]
        small = sweep_us(broker, client, rounds)
        _register(broker, [w for host in fleet_ids for w in host], ttl_ms / 1000)
        figures: dict[str, Any] = {"sweep_us_small": small, "sweep_us_fleet": sweep_us(broker, client, rounds)}
        for what in ("beat", "sweep"):
            cpu, started = server_cpu_s(client), time.perf_counter()
            for _ in range(rounds):
                _round(broker, fleet_ids, ttl_ms, sweep=what == "sweep")
            figures[f"{what}_round_server_cpu_s"] = (server_cpu_s(client) - cpu) / rounds
            figures[f"{what}_round_wall_s"] = (time.perf_counter() - started) / rounds
        figures["beat_us_per_call"] = figures["beat_round_server_cpu_s"] * 1e6 / hosts
        figures["beat_us_per_worker"] = figures["beat_us_per_call"] / workers
        figures["full_scan_ms"] = _full_scan_ms(broker)
        return figures
    finally:
        for batch in _batches(list(client.scan_iter(match=broker.keys.pattern, count=10_000)), 10_000):
            client.delete(*batch)
        client.close()


def sweep_us(broker: Broker, client: redis.Redis, calls: int) -> float:
    """Server µs of one sweep call (commandstats), however many workers are registered."""
    before = commandstats(client)
    for _ in range(calls * 50):
        broker.sweep(lease_s=600)
    after = commandstats(client)
    return _delta(before, after, "evalsha", "usec") / max(1.0, _delta(before, after, "evalsha", "calls"))


def _full_scan_ms(broker: Broker) -> float:
    """What the sweep replaced: reading every registered worker's heartbeat (kept for a supervisor's first sweep)."""
    started = time.perf_counter()
    broker.expired_workers()
    return (time.perf_counter() - started) * 1000


def _batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
