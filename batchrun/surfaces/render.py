"""Human-readable text for the CLI's status, show and jobs commands (--json prints the data itself)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import orjson

from batchrun.definitions.registry import JobDefinition

JOB_ORDER = ("id", "job", "state", "queue", "params", "attempts", "failures", "crashes", "worker",
             "enqueued_at", "due_at", "started_at", "finished_at", "cancel_requested", "result", "error",
             "last_crash", "raw")


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="milliseconds")


def _value(name: str, value: Any) -> str:
    if name.endswith("_at") and isinstance(value, float):
        return _when(value)
    if isinstance(value, (dict, list, bool)) or value is None:
        return orjson.dumps(value).decode()
    return str(value)


def job(info: dict[str, Any]) -> str:
    names = [n for n in JOB_ORDER if n in info] + sorted(set(info) - set(JOB_ORDER) - {"traceback"})
    width = max(len(n) for n in names)
    lines = [f"{n:<{width}}  {_value(n, info[n])}" for n in names]
    if info.get("traceback"):
        lines += ["traceback:", info["traceback"].rstrip()]
    return "\n".join(lines)


def status(data: dict[str, Any]) -> str:
    lines = ["queues (highest priority first):"]
    lines += [f"  {name:<20} {depth:>8}" for name, depth in data["queues"].items()]
    lines.append(f"in flight: {data['in_flight']}    scheduled: {data.get('scheduled', 0)}    "
                 f"dead-lettered: {data['dead']}")
    lines.append(f"workers: {len(data['workers'])}")
    for worker in data["workers"]:
        beat = worker["heartbeat"] or {}
        state = f"running {beat['job']}" if beat.get("job") else ("idle" if worker["alive"] else "heartbeat expired")
        lines.append(f"  {worker['id']:<40} pid {beat.get('pid', '?'):>7}  {state}")
    return "\n".join(lines)


def dead(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "(the dead-letter list is empty)"
    lines = []
    for info in jobs:
        when = _value("finished_at", info.get("finished_at", ""))
        reason = str(info.get("error", "")).splitlines()[0] if info.get("error") else ""
        lines.append(f"{info['id']}  {info.get('job') or '?':<20} {info.get('state', '?'):<7} {when}  {reason}")
    return "\n".join(lines)


def event(data: dict[str, Any]) -> str:
    when = _when(data["ts"]) if isinstance(data.get("ts"), float) else str(data.get("ts", ""))
    detail = data.get("detail") or ""
    if data.get("event") == "scheduled":
        detail = f"due {_when(float(detail))}" if detail.replace(".", "", 1).isdigit() else detail
    detail = f"  {detail}" if detail else ""
    return f"{when}  {data.get('event', '?'):<10} {data.get('id', '?')}  {data.get('job', '')}{detail}"


def definitions(defs: Iterable[JobDefinition]) -> str:
    lines = []
    for d in sorted(defs, key=lambda d: d.name):
        runs = d.handler or " ".join(d.command or ())
        params = ", ".join(f"{p.name}:{p.type}{'' if p.required else '?'}" for p in d.params.values())
        lines.append(f"{d.name:<24} queue={d.queue:<10} {runs}  ({params})")
    return "\n".join(lines) if lines else "(no job definitions)"


def batch(info: dict[str, Any]) -> str:
    names = ("id", "job", "state", "total", "done", "pending", "created_at", "ended_at", "on_complete",
             "on_complete_id")
    lines = [f"{n:<14}  {_value(n, info[n])}" for n in names if info.get(n) is not None]
    lines.append(f"{'counts':<14}  " + ", ".join(f"{state} {n}" for state, n in info["counts"].items()))
    return "\n".join(lines)


def batches(found: list[dict[str, Any]]) -> str:
    if not found:
        return "(no batches)"
    lines = []
    for info in found:
        counts = info["counts"]
        failed = counts["failed"] + counts["dead"]
        lines.append(f"{info['id']}  {info['job']:<20} {info['state']:<8} {info['done']:>8}/{info['total']:<8} "
                     f"{failed} failed  {_value('created_at', info['created_at'])}")
    return "\n".join(lines)
