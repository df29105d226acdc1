"""Human-readable text for the CLI's status, show and jobs commands (--json prints the data itself)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import orjson

from batchrun.definitions.registry import JobDefinition

JOB_ORDER = ("id", "job", "state", "queue", "params", "attempts", "failures", "crashes", "worker",
             "enqueued_at", "due_at", "started_at", "finished_at", "cancel_requested", "progress",
             "checkpoint_at", "checkpoint_bytes", "result", "error", "last_crash", "raw")


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="milliseconds")


def progress(value: Any) -> str:
    """`40% (400/1000) loading shard 3`; without a total, `400 loading shard 3`."""
    if not isinstance(value, dict):
        return str(value)
    done, total, message = value.get("done"), value.get("total"), value.get("message")
    numbers = f"{_number(done)}" if not total else f"{100 * done / total:.0f}% ({_number(done)}/{_number(total)})"
    return f"{numbers} {message}" if message else numbers


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value(name: str, value: Any) -> str:
    if name == "progress":
        return progress(value)
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
    paused = set(data.get("paused", ()))
    lines += [f"  {name:<20} {depth:>8}{'  paused' if name in paused else ''}" for name, depth in data["queues"].items()]
    lines.append(f"in flight: {data['in_flight']}    scheduled: {data.get('scheduled', 0)}    "
                 f"dead-lettered: {data['dead']}")
    waiting = {job: n for job, n in data.get("waiting", {}).items() if n}
    if waiting:
        lines.append("waiting for a concurrency slot: " + ", ".join(f"{job} {n}" for job, n in waiting.items()))
    hosts = data["hosts"]
    lines.append(f"workers: {len(data['workers'])} on {len(hosts)} host{'' if len(hosts) == 1 else 's'}")
    by_id = {w["id"]: w for w in data["workers"]}
    for host, entry in hosts.items():
        lines.append(f"  host {host}: {entry['alive']} alive, {entry['busy']} busy, {entry['in_flight']} jobs in flight")
        lines += [_worker_line(by_id[w]) for w in entry["workers"]]
    return "\n".join(lines)


def _worker_line(worker: dict[str, Any]) -> str:
    beat = worker["heartbeat"] or {}
    state = f"running {beat['job']}" if beat.get("job") else ("idle" if worker["alive"] else "heartbeat expired")
    threads = f"  threads {beat['threads']}" if beat.get("threads") else ""
    return f"    {worker['id']:<40} pid {beat.get('pid', '?'):>7}  {state}{threads}"


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
    if data.get("event") == "fired" and " due " in detail:
        schedule, _, rest = detail.partition(" due ")
        due, _, note = rest.partition(";")
        detail = f"{schedule} due {_when(float(due))}{';' + note if note else ''}" if _is_number(due) else detail
    detail = f"  {detail}" if detail else ""
    return f"{when}  {data.get('event', '?'):<10} {data.get('id', '?')}  {data.get('job', '')}{detail}"


def definitions(defs: Iterable[JobDefinition]) -> str:
    lines = []
    for d in sorted(defs, key=lambda d: d.name):
        runs = d.handler or " ".join(d.command or ())
        params = ", ".join(f"{p.name}:{p.type}{'' if p.required else '?'}" for p in d.params.values())
        lines.append(f"{d.name:<24} queue={d.queue:<10} {runs}  ({params})")
    return "\n".join(lines) if lines else "(no job definitions)"


def schedules(data: list[dict[str, Any]]) -> str:
    if not data:
        return "(no schedules in the job files)"
    lines = [f"{'job':<24} {'expression':<16} {'timezone':<16} {'last fire':<29} next fire"]
    for item in data:
        last = _when(item["last_fire"]) if item["last_fire"] is not None else "never"
        lines.append(f"{item['job']:<24} {item['expression']:<16} {item['timezone']:<16} {last:<29} "
                     f"{_when(item['next_fire'])}")
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
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
