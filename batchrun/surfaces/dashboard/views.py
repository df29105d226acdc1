"""What the dashboard shows, as plain data: the pages render it and the JSON API returns it."""
from __future__ import annotations

import socket
import time
from typing import Any

import psutil

from batchrun.surfaces.client import Client

WAITING_SHOWN = 10
THROUGHPUT_MINUTES = 60
THROUGHPUT_EVENTS = 50_000
JOB_EVENTS_SCANNED = 10_000
DEAD_SHOWN = 500
ENDED = ("succeeded", "failed", "dead", "cancelled")


def overview(client: Client) -> dict[str, Any]:
    status = client.status()
    paused = set(status["paused"])
    queues = [{"name": name, "depth": depth, "paused": name in paused} for name, depth in status["queues"].items()]
    workers = [worker(w) for w in status["workers"]]
    counts = {"queued": sum(status["queues"].values()), "in_flight": status["in_flight"],
              "scheduled": status["scheduled"], "dead": status["dead"],
              "workers": sum(1 for w in workers if w["alive"])}
    return {"queues": queues, "workers": workers, "counts": counts}


def worker(info: dict[str, Any]) -> dict[str, Any]:
    beat = info["heartbeat"] or {}
    started = _float(beat.get("started_at"))
    pid = _int(beat.get("pid"))
    return {"id": info["id"], "host": beat.get("host", "?"), "pid": pid, "alive": info["alive"],
            "supervisor": beat.get("supervisor"), "job": beat.get("job") or None,
            "job_started_at": _float(beat.get("job_started_at")), "in_flight": info["in_flight"],
            "started_at": started, "uptime_s": time.time() - started if started else None,
            "memory_bytes": _memory(beat.get("host"), pid, started)}


def _memory(host: str | None, pid: int | None, started: float | None) -> int | None:
    """Resident memory, for workers on this host only (a pid means nothing elsewhere)."""
    if host != socket.gethostname() or not pid:
        return None
    try:
        process = psutil.Process(pid)
        if started and abs(process.create_time() - started) > 60:
            return None  # the pid was reused by another process
        return process.memory_info().rss
    except psutil.Error:
        return None


def waiting(client: Client) -> dict[str, list[str]]:
    return client.inspector.waiting(client.settings.queues, WAITING_SHOWN)


def throughput(client: Client, now: float | None = None) -> dict[str, Any]:
    """Jobs ended per minute over the last hour, from the events stream (as far back as it reaches)."""
    now = time.time() if now is None else now
    first = (int(now) // 60 - THROUGHPUT_MINUTES + 1) * 60
    minutes = [{"t": first + 60 * i, "succeeded": 0, "failed": 0} for i in range(THROUGHPUT_MINUTES)]
    events = client.events.since(first, THROUGHPUT_EVENTS)
    for event in events:
        kind, ts = event.get("event"), event.get("ts")
        if isinstance(ts, float) and kind in ENDED and first <= ts:
            index = min(THROUGHPUT_MINUTES - 1, int(ts - first) // 60)
            minutes[index]["succeeded" if kind == "succeeded" else "failed"] += 1
    since = events[0]["ts"] if events and isinstance(events[0].get("ts"), float) else None
    return {"minutes": minutes, "events_since": since}


def job_events(client: Client, job_id: str) -> list[dict[str, Any]]:
    """This job's events among the most recent ones the stream keeps."""
    return [e for e in client.events.history(JOB_EVENTS_SCANNED) if e.get("id") == job_id]


def dead(client: Client) -> list[dict[str, Any]]:
    return client.dead(DEAD_SHOWN)


def _float(text: object) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int(text: object) -> int | None:
    try:
        return int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
