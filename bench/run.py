"""The benchmark suite: `python -m bench [--quick] [--workers N] [--repeat K]`.

Starts its own embedded server in a temporary folder, measures every figure
K times, prints medians with their spread beside the targets, and writes all
runs as JSON. A figure never fails the command: these are measurements, and
the machine's noise is part of what they show.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import (batches, cpu, datajobs, flow, footprint, hosts, instructions, latency, recovery, replicas, speed,
                   throughput)
from bench.harness import redis_server, summary

RESULTS = Path(__file__).parent / "results"

# figure name -> (target description, predicate on the median, unit)
TARGETS: dict[str, tuple[str, Callable[[float], bool], str]] = {
    "enqueue_single_per_s": (">= 15,000", lambda v: v >= 15_000, "jobs/s"),
    "enqueue_bulk_per_s": (">= 150,000", lambda v: v >= 150_000, "jobs/s"),
    "drain_10k_total_per_s": (">= 20,000", lambda v: v >= 20_000, "jobs/s"),
    "drain_10k_steady_per_s": (">= 20,000", lambda v: v >= 20_000, "jobs/s"),
    "drain_100k_total_per_s": (">= 20,000", lambda v: v >= 20_000, "jobs/s"),
    "drain_100k_steady_per_s": (">= 20,000", lambda v: v >= 20_000, "jobs/s"),
    "cpu_efficiency_ratio": (">= 0.98", lambda v: v >= 0.98, "of Pool"),
    "latency_p50_ms": ("< 2", lambda v: v < 2, "ms"),
    "latency_p99_ms": ("< 10", lambda v: v < 10, "ms"),
    "due_latency_p50_ms": ("about 1 s", lambda v: v < 1000, "ms"),
    "due_latency_p99_ms": ("about 1 s", lambda v: v < 1000, "ms"),
    "recovery_worker_s": ("<= 1", lambda v: v <= 1, "s"),
    "recovery_supervisor_s": ("<= TTL + 2", lambda v: True, "s"),
    "kills_throughput_ratio": (">= 0.5", lambda v: v >= 0.5, "of calm"),
    "redis_bytes_per_job": ("< 300", lambda v: v < 300, "bytes"),
    "supervisor_rss_mb": ("", lambda v: True, "MB"),
    "idle_worker_rss_mb": ("< 40", lambda v: v < 40, "MB"),
    "scaling_speedup": ("", lambda v: True, "x"),
    "matmul_capped_per_s": ("", lambda v: True, "products/s"),
    "matmul_uncapped_per_s": ("", lambda v: True, "products/s"),
    "preload_worker_uss_mb": ("<< preload", lambda v: v < 100, "MB"),
    "server_cpu_us_per_job": ("", lambda v: True, "us"),
    "beat_us_per_worker": ("", lambda v: True, "us"),
    "sweep_us_fleet": ("flat", lambda v: True, "us"),
    "beat_round_server_cpu_s": ("< interval", lambda v: v < 2.0, "s"),
    "limited_waiting_cpu_ms_per_s": ("about idle", lambda v: True, "ms/s"),
    "limited_waiting_redis_cmds_per_s": ("about idle", lambda v: True, "cmd/s"),
    "map_submit_per_s": (">= 100,000", lambda v: v >= 100_000, "inputs/s"),
    "batch_drain_cost_ratio": ("<= 1.10", lambda v: v <= 1.10, "of plain"),
}


def measure(args: argparse.Namespace, workdir: Path, url: str) -> dict[str, float]:
    """One run of every figure."""
    quick = args.quick
    n = 2_000 if quick else 10_000
    w = args.workers
    if args.speed:
        return speed.measure(workdir, url, quick, w)
    figures: dict[str, float] = {
        "enqueue_single_per_s": throughput.enqueue_single(workdir, url, n),
        "enqueue_bulk_per_s": throughput.enqueue_bulk(workdir, url, n * 10),
    }
    drains = [(n, "10k")] if quick else [(10_000, "10k"), (100_000, "100k")]
    for jobs, label in drains:
        result = throughput.drain(workdir, url, jobs, w)
        figures[f"drain_{label}_total_per_s"] = result["total"]
        figures[f"drain_{label}_steady_per_s"] = result["steady"]
    eff = cpu.efficiency(workdir, url, 8 if quick else 64, w)
    figures.update(cpu_efficiency_ratio=eff["ratio"], cpu_pool_s=eff["pool_s"], cpu_batchrun_s=eff["batchrun_s"])
    lat = latency.submit_to_start(workdir, url, 50 if quick else 300, w)
    figures.update(latency_p50_ms=lat["p50_ms"], latency_p99_ms=lat["p99_ms"])
    due = latency.due_to_start(workdir, url, 10 if quick else 40, w)
    figures.update(due_latency_p50_ms=due["p50_ms"], due_latency_p99_ms=due["p99_ms"])
    figures["recovery_worker_s"] = recovery.worker_kill(workdir, url)
    ttl = "2s" if quick else "10s"
    figures["recovery_supervisor_s"] = recovery.supervisor_kill(workdir, url, ttl)
    figures["recovery_supervisor_ttl_s"] = float(ttl[:-1])
    chaos = recovery.drain_under_kills(workdir, url, 1_000 if quick else 4_000, w)
    figures.update(kills_calm_per_s=chaos["undisturbed_per_s"], kills_storm_per_s=chaos["under_kills_per_s"],
                   kills_throughput_ratio=chaos["ratio"])
    figures["redis_bytes_per_job"] = footprint.redis_bytes_per_job(workdir, url, 50_000 if quick else 1_000_000)
    rss = footprint.resident_mb(workdir, url, w)
    figures.update(supervisor_rss_mb=rss["supervisor_mb"], idle_worker_rss_mb=rss["idle_worker_mb"])
    scale = cpu.scaling(workdir, url, 4 if quick else 16, w)
    figures.update(scaling_one_worker_s=scale["one_worker_s"], scaling_n_workers_s=scale[f"{w}_workers_s"],
                   scaling_speedup=scale["speedup"])
    cap = datajobs.thread_cap(workdir, url, 8 if quick else 40, w)
    figures.update(matmul_capped_per_s=cap["capped"], matmul_uncapped_per_s=cap["uncapped"])
    shared = datajobs.preload_uss(workdir, url, 100 if quick else 300, 4)
    figures.update(preload_worker_uss_mb=shared["worker_uss_mb_max"], preload_supervisor_rss_mb=shared["supervisor_rss_mb"])
    figures.update(hosts.cost_per_job(workdir, url, 2_000 if quick else 10_000, w))
    timed = hosts.cost_per_job(workdir, url, 100 if quick else 1_000, w, seconds=0.01)
    figures.update({f"{name}_10ms": value for name, value in timed.items()})
    figures.update(hosts.fleet(url, 1_000, 64, 1 if quick else 3))
    figures.update(replicas.submit_rates(workdir / f"replicas-{time.monotonic_ns()}", 500 if quick else 3_000))
    waiting = flow.waiting_cost(workdir, url, w)
    figures.update({f"limited_{name}": value for name, value in waiting.items()})
    figures["map_submit_per_s"] = batches.map_submit(workdir, url, 20_000 if quick else 100_000)
    cost = batches.drain_cost(workdir, url, n if quick else 100_000, w)
    figures.update(batch_drain_plain_per_s=cost["plain_per_s"], batch_drain_batch_per_s=cost["batch_per_s"],
                   batch_drain_cost_ratio=cost["cost_ratio"])
    figures.update(speed.measure(workdir, url, quick, w))
    return figures


def table(runs: list[dict[str, float]], workers: int) -> tuple[str, dict[str, Any]]:
    summaries = {name: summary([r[name] for r in runs]) for name in runs[0]}
    lines = [f"batchrun benchmark: {workers} workers, {len(runs)} run(s), medians [min - max]", ""]
    lines.append(f"{'figure':<28} {'median':>12} {'spread':>24} {'unit':<8} {'target':<12} ok")
    for name, s in summaries.items():
        target, check, unit = TARGETS.get(name, ("", lambda v: True, ""))
        ok = ("yes" if check(s["median"]) else "NO") if target else ""
        spread = f"[{s['min']:.4g} - {s['max']:.4g}]"
        lines.append(f"{name:<28} {s['median']:>12.5g} {spread:>24} {unit:<8} {target:<12} {ok}")
    return "\n".join(lines), summaries


def count_instructions(out: Path | None) -> int:
    """Deterministic counts need no repeats: one run, printed and written like the other figures."""
    if not instructions.available():
        print("--instructions needs valgrind (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="batchrun-bench-") as tmp:
        figures = instructions.measure(Path(tmp))
    print(instructions.table(figures))
    write(out, {"instructions": figures, "seconds": time.monotonic() - started})
    return 0


def write(out: Path | None, document: dict[str, Any]) -> Path:
    out = out or RESULTS / f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    print(f"\nfigures written to {out} ({document['seconds']:.0f}s)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test for CI")
    parser.add_argument("--workers", type=int, default=2, help="workers for the multi-worker figures")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 3, or 1 with --quick)")
    parser.add_argument("--speed", action="store_true", help="only the speed figures beside their ceilings")
    parser.add_argument("--instructions", action="store_true",
                        help="only the server's instructions per job, counted by valgrind (bench/instructions.py)")
    parser.add_argument("--out", type=Path, help="JSON file to write (default bench/results/<time>.json)")
    args = parser.parse_args(argv)
    if args.instructions:
        return count_instructions(args.out)
    repeat = args.repeat or (1 if args.quick else 3)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="batchrun-bench-") as tmp, redis_server(Path(tmp)) as url:
        runs = []
        for index in range(repeat):
            print(f"run {index + 1}/{repeat}...", file=sys.stderr, flush=True)
            runs.append(measure(args, Path(tmp), url))
    text, summaries = table(runs, args.workers)
    print(text)
    print(f"\nspeed beside ceilings measured in the same run ({len(runs)} run(s), medians)\n")
    print(speed.table(runs))
    write(args.out, {"workers": args.workers, "quick": args.quick, "cpus": os.cpu_count(),
                     "seconds": time.monotonic() - started, "runs": runs, "summary": summaries})
    return 0
