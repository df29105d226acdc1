"""The command line's grammar: one subcommand per function of run.py, inspect.py and deadletter.py."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from batchrun.surfaces.cli.batches import cmd_batch, cmd_batches, cmd_map
from batchrun.surfaces.cli.common import positive_int, seconds
from batchrun.surfaces.cli.deadletter import cmd_dead, cmd_purge, cmd_requeue
from batchrun.surfaces.cli.flow import cmd_pause, cmd_resume, cmd_schedules
from batchrun.surfaces.cli.inspect import cmd_events, cmd_jobs, cmd_show, cmd_status
from batchrun.surfaces.cli.operate import cmd_dashboard, cmd_top
from batchrun.surfaces.cli.run import cmd_cancel, cmd_submit, cmd_supervise, cmd_wait


Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchrun", description="Run CPU-heavy jobs defined in YAML, through Redis.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="runtime settings (default: configs/batchrun.yaml)")
    common.add_argument("--jobs", type=Path, help="folder of job definitions (default: jobs/)")
    common.add_argument("--redis-url", help="Redis URL (default: the embedded server)")
    common.add_argument("--namespace", help="key namespace, to share one Redis between projects")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(func=func)
        return sub

    for group in (_run_commands, _inspect_commands, _dead_letter_commands, _operate_commands, _flow_commands,
                  _batch_commands):
        group(add)
    return parser


def _run_commands(add: Add) -> None:
    sup = add("supervise", cmd_supervise, "run workers until stopped (or until the queues are empty)")
    sup.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    sup.add_argument("--until-empty", action="store_true", help="exit 0 once nothing is queued or running (for cron)")
    sup.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON")
    sup.add_argument("--metrics-port", help="serve /metrics and /healthz on this port (default: off)")
    sup.add_argument("--metrics-host", help="address for --metrics-port (default: 127.0.0.1)")
    sub = add("submit", cmd_submit, "validate and queue a job; prints its id")
    sub.add_argument("job", help="job name, as defined in the jobs folder")
    sub.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter")
    sub.add_argument("--json", help="parameters as a JSON object (-p values override it)")
    when = sub.add_mutually_exclusive_group()
    when.add_argument("--delay", help="run after this long, e.g. 90s, 5m, 2h")
    when.add_argument("--at", help="run at this time, ISO 8601 with a zone, e.g. 2026-12-01T03:00:00Z")
    cancel = add("cancel", cmd_cancel, "cancel jobs: waiting ones at once, running ones by stopping their worker")
    cancel.add_argument("job_id", nargs="*")
    cancel.add_argument("--batch", metavar="BATCH_ID", help="cancel every job of this batch")
    wait = add("wait", cmd_wait, "wait until jobs end; exit 0 only if all succeeded (8 on timeout)")
    wait.add_argument("job_id", nargs="*")
    wait.add_argument("--batch", metavar="BATCH_ID", help="wait until this batch ends")
    wait.add_argument("--timeout", type=seconds, help="give up after this long, e.g. 30s")


def _inspect_commands(add: Add) -> None:
    events = add("events", cmd_events, "print recent job events; --follow keeps printing new ones")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing events as they happen")
    events.add_argument("--count", type=positive_int, default=20, help="how many past events to print first (default 20)")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, func, help in (("status", cmd_status, "queues, workers, in-flight and dead-letter counts"),
                             ("show", cmd_show, "one job's state, attempts, timestamps and result or error")):
        cmd = add(name, func, help)
        cmd.add_argument("--json", action="store_true", help="print JSON")
        if name == "show":
            cmd.add_argument("job_id")
    add("jobs", cmd_jobs, "list job definitions and report invalid files")


def _dead_letter_commands(add: Add) -> None:
    dead = add("dead", cmd_dead, "list dead-lettered jobs with their reasons")
    dead.add_argument("--json", action="store_true", help="print JSON")
    dead.add_argument("--limit", type=positive_int, default=1000, help="list at most this many (default 1000)")
    requeue = add("requeue", cmd_requeue, "put dead-lettered jobs back in their queues, counters reset")
    requeue.add_argument("job_id", nargs="*")
    requeue.add_argument("--all", action="store_true", help="requeue the whole dead-letter list")
    requeue.add_argument("--fresh", action="store_true", help="drop the jobs' checkpoints: start from zero")
    purge = add("purge", cmd_purge, "delete dead-lettered jobs and their records")
    purge.add_argument("--dead", action="store_true", help="empty the dead-letter list")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _operate_commands(add: Add) -> None:
    dash = add("dashboard", cmd_dashboard, "serve the web dashboard (needs the web extra)")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    dash.add_argument("--port", type=int, default=8080, help="port to bind (default: 8080)")
    dash.add_argument("--token", help="token that actions need when bound beyond loopback "
                      "(default: $BATCHRUN_DASHBOARD_TOKEN); without one such a dashboard is read-only")
    top = add("top", cmd_top, "live view of queues, workers and throughput, refreshed every second")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument("--interval", type=seconds, default=1.0, help="refresh interval (default: 1s)")


def _flow_commands(add: Add) -> None:
    schedules = add("schedules", cmd_schedules, "list schedules with their job, expression, last and next fire")
    schedules.add_argument("--json", action="store_true", help="print JSON")
    for name, func, help in (("pause", cmd_pause, "stop taking jobs from queues; running jobs finish"),
                             ("resume", cmd_resume, "take jobs from paused queues again")):
        add(name, func, help).add_argument("queue", nargs="+", help="a configured queue")


def _batch_commands(add: Add) -> None:
    mapping = add("map", cmd_map, "queue one job per input (JSONL or CSV) as one batch; prints the batch id")
    mapping.add_argument("job", help="job name, as defined in the jobs folder")
    mapping.add_argument("--input", "-i", required=True, metavar="FILE", help="inputs: JSONL or CSV; - for stdin")
    mapping.add_argument("--format", choices=["jsonl", "csv"], help="input format (default: from the file name)")
    mapping.add_argument("--wait", action="store_true", help="show progress until the batch ends; exit 0 only "
                                                             "if every job succeeded")
    mapping.add_argument("--on-complete", metavar="JOB", help="job to queue once when the batch ends, with "
                                                              "batch_id (default: the job file's on_complete)")
    batch = add("batch", cmd_batch, "a batch's progress and counts; --results writes every result in input order")
    batch.add_argument("batch_id")
    batch.add_argument("--json", action="store_true", help="print JSON")
    batch.add_argument("--results", metavar="FILE", help="write one JSON line per input, in input order (- for stdout)")
    batches = add("batches", cmd_batches, "list recent batches with their progress")
    batches.add_argument("--json", action="store_true", help="print JSON")
    batches.add_argument("--limit", type=positive_int, default=20, help="list at most this many (default 20)")
