"""Workers grouped by the host they run on, for `batchrun status` when several hosts share one Redis.

A live worker's heartbeat names its host. An expired one has no heartbeat left,
so its host is read from its id, which starts with its supervisor's id
(`<host>-<pid>-<hex>-w<slot>-<hex>`): a dead host still shows under its name.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def host_of(worker: dict[str, Any]) -> str:
    beat = worker.get("heartbeat") or {}
    if beat.get("host"):
        return str(beat["host"])
    parts = str(worker["id"]).rsplit("-", 4)
    return parts[0] if len(parts) == 5 else "?"


def by_host(workers: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per host, sorted by name: its worker ids, and how many are alive, busy and hold jobs."""
    hosts: dict[str, dict[str, Any]] = {}
    for worker in workers:
        entry = hosts.setdefault(host_of(worker), {"workers": [], "alive": 0, "busy": 0, "in_flight": 0})
        entry["workers"].append(worker["id"])
        entry["alive"] += bool(worker["alive"])
        entry["busy"] += bool((worker.get("heartbeat") or {}).get("job"))
        entry["in_flight"] += worker["in_flight"]
    return dict(sorted(hosts.items()))
