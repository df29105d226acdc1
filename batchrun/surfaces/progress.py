"""Watching a batch until it ends: a progress bar on a terminal (rich), plain lines every few seconds otherwise.

Each look is one read of the batch's counters, so watching costs the same
for ten jobs or a million. Rate and time left are measured here, over the
last RATE_WINDOW_S, so a batch that sped up or stalled shows it.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, TextIO

from batchrun.surfaces.batches import Batch

POLL_S = 0.2
PLAIN_EVERY_S = 3.0
RATE_WINDOW_S = 10.0


class Rate:
    """Jobs ended per second over a sliding window, and the time the rest would take at that pace."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, done: int) -> None:
        now = time.monotonic()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW_S:
            self.samples.popleft()

    def per_s(self) -> float:
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def eta(self, left: int) -> str:
        rate = self.per_s()
        return "-" if rate <= 0 else _duration(left / rate)


def watch(batch: Batch, stream: TextIO) -> dict[str, Any]:
    """Show progress until the batch ends; returns its final record."""
    return _rich(batch, stream) if stream.isatty() else _plain(batch, stream)


def line(info: dict[str, Any], rate: Rate) -> str:
    counts = info["counts"]
    text = (f"batch {info['id']}: {info['done']}/{info['total']} done, {_failed(counts)} failed, "
            f"{rate.per_s():.1f} jobs/s, ETA {rate.eta(info['pending'])}")
    return text + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else "")


def summary(info: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in info["counts"].items())
    took = (info["ended_at"] or time.time()) - (info["created_at"] or time.time())
    return f"batch {info['id']} ({info['job']}) ended: {info['total']} jobs, {counts}, in {_duration(took)}"


def _plain(batch: Batch, stream: TextIO) -> dict[str, Any]:
    rate, next_line = Rate(), time.monotonic() + PLAIN_EVERY_S
    while (info := batch.progress())["state"] != "ended":
        rate.add(info["done"])
        if time.monotonic() >= next_line:
            print(line(info, rate), file=stream, flush=True)
            next_line += PLAIN_EVERY_S
        time.sleep(POLL_S)
    print(summary(info), file=stream, flush=True)
    return info


def _rich(batch: Batch, stream: TextIO) -> dict[str, Any]:
    """rich is imported here, only when a terminal shows the bar: every other command starts faster."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    rate = Rate()
    columns = (TextColumn("batch {task.fields[id]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[failed]} failed  {task.fields[rate]} jobs/s  ETA {task.fields[eta]}"))
    console = Console(file=stream)
    with Progress(*columns, console=console, transient=False) as bar:
        info = batch.progress()
        task = bar.add_task("", total=info["total"], id=batch.id, failed=0, rate="-", eta="-")
        while True:
            rate.add(info["done"])
            bar.update(task, completed=info["done"], failed=_failed(info["counts"]), rate=f"{rate.per_s():.1f}",
                       eta=rate.eta(info["pending"]))
            if info["state"] == "ended":
                break
            time.sleep(POLL_S)
            info = batch.progress()
    console.print(summary(info), highlight=False)
    return info


def _failed(counts: dict[str, int]) -> int:
    return counts["failed"] + counts["dead"]


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
