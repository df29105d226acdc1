"""`batchrun top`: a live terminal view of queues, workers and throughput (rich), one frame a second.

Values read from Redis go into cells as Text, never as strings, so rich never reads them as markup.

It reads the same data as the dashboard (dashboard/views.py), so the two
never disagree; `--once` prints a single frame, for scripts and tests.
"""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from batchrun.errors import BatchrunError
from batchrun.surfaces.client import Client
from batchrun.surfaces.dashboard import views

SPARKS = " ▁▂▃▄▅▆▇█"
STATE_STYLES = {"busy": "bold blue", "idle": "green", "expired": "bold red"}


def run_top(client: Client, *, once: bool = False, interval_s: float = 1.0, console: Console | None = None) -> None:
    console = console or Console()
    if once:
        console.print(frame(client))
        return
    try:
        with Live(frame(client), console=console, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval_s)
                live.update(frame(client))
    except KeyboardInterrupt:
        return


def frame(client: Client) -> Group:
    """One screenful; a Redis outage shows as a line instead of ending the view."""
    try:
        data, rate = views.overview(client), views.throughput(client)
    except BatchrunError as exc:
        return Group(Text(f"cannot read {client.settings.namespace}: {exc}", style="bold red"))
    return Group(_header(client, data, rate), _queues(data), _workers(data["workers"]))


def _header(client: Client, data: dict[str, Any], rate: dict[str, Any]) -> Text:
    counts = data["counts"]
    minutes = rate["minutes"]
    per_minute = [m["succeeded"] + m["failed"] for m in minutes]
    most = max(per_minute) or 1
    spark = "".join(SPARKS[round(n / most * (len(SPARKS) - 1))] for n in per_minute)
    text = Text()
    text.append(f"batchrun  {client.settings.namespace}  ", style="bold")
    text.append(time.strftime("%H:%M:%S"), style="dim")
    text.append(f"\nqueued {counts['queued']}   running {counts['in_flight']}   scheduled {counts['scheduled']}   ")
    text.append(f"dead {counts['dead']}", style="bold red" if counts["dead"] else "")
    text.append(f"   workers {counts['workers']}\n")
    ended_hour = sum(per_minute)
    failed_hour = sum(m["failed"] for m in minutes)
    text.append(f"ended last minute {per_minute[-1]}   last hour {ended_hour} ({failed_hour} not succeeded)\n")
    text.append(spark, style="green")
    return text


def _queues(data: dict[str, Any]) -> Table:
    table = Table(title="queues (highest priority first)", title_justify="left", expand=True)
    table.add_column("queue")
    table.add_column("depth", justify="right")
    table.add_column("state")
    for queue in data["queues"]:
        state = Text("paused", style="yellow") if queue["paused"] else Text("active", style="green")
        table.add_row(Text(queue["name"]), str(queue["depth"]), state)
    return table


def _workers(workers: list[dict[str, Any]]) -> Table:
    table = Table(title="workers", title_justify="left", expand=True)
    for name, justify in (("host", "left"), ("worker", "left"), ("pid", "right"), ("state", "left"),
                          ("job", "left"), ("memory", "right"), ("uptime", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for w in sorted(workers, key=lambda w: (w["host"], w["id"])):
        state = "expired" if not w["alive"] else "busy" if w["job"] else "idle"
        memory = f"{w['memory_bytes'] / 2**20:.0f} MiB" if w["memory_bytes"] else "—"
        uptime = f"{w['uptime_s']:.0f}s" if w["uptime_s"] is not None else "—"
        table.add_row(Text(w["host"]), Text(w["id"]), str(w["pid"] or "—"), Text(state, style=STATE_STYLES[state]),
                      Text(w["job"] or "—"), memory, uptime)
    if not workers:
        table.add_row("—", "no workers running", "", "", "", "", "")
    return table
