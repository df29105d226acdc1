"""The `batchrun` command. Each subcommand is one small function; errors become named exit codes."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from batchrun import logs, render
from batchrun.client import Client
from batchrun.config import Settings, load_settings
from batchrun.connection import connect
from batchrun.durations import parse_duration
from batchrun.errors import AlreadyRunning, BatchrunError, ExitCode, JobNotFound, SubmitError, WaitTimeout
from batchrun.hostlock import SupervisorLock
from batchrun.registry import load_registry
from batchrun.supervisor import Supervisor, default_workers


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    flags = {"redis_url": args.redis_url, "namespace": args.namespace, **overrides}
    return load_settings(args.config, jobs_dir=args.jobs, overrides=flags)


def _client(args: argparse.Namespace) -> Client:
    return Client.open(args.config, args.jobs, redis_url=args.redis_url, namespace=args.namespace)


def cmd_supervise(args: argparse.Namespace) -> int:
    settings = _settings(args, workers=args.workers, log_format=args.log_format)
    logs.setup(settings.log_format, settings.log_level)
    registry = load_registry(settings.jobs_dir, settings.queues)
    registry.require_valid()
    lock = SupervisorLock(settings.state_dir, settings.namespace)
    try:
        previous_id = lock.acquire()
    except AlreadyRunning as exc:
        if not args.until_empty:
            raise
        print(f"batchrun: {exc}; leaving the queued work to it", file=sys.stderr)
        return ExitCode.OK
    try:
        with connect(settings) as connection:
            release = [lock.close_in_child] + ([connection.server.forget_in_child] if connection.server else [])
            supervisor = Supervisor(settings, registry, connection, settings.workers or default_workers(),
                                    until_empty=args.until_empty, release_in_child=release, previous_id=previous_id)
            lock.record(supervisor.id)
            return supervisor.run()
    finally:
        lock.release()


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        definition = client.registry.get(args.job)
        params = _json_params(args.json) if args.json else {}
        params.update(definition.parse_cli_params(args.param, validate=False))
        job_id = client.submit_params(args.job, params, delay=_delay(args.delay), at=_at(args.at))
    print(job_id)
    return ExitCode.OK


def _delay(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise SubmitError(f"--delay: {exc}") from None


def _at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise SubmitError(f"--at: expected an ISO 8601 time like 2026-12-01T03:00:00Z, got {text!r}") from None


def cmd_cancel(args: argparse.Namespace) -> int:
    code = ExitCode.OK
    with _client(args) as client:
        for job_id in args.job_id:
            try:
                outcome = client.cancel(job_id)
            except JobNotFound as exc:
                print(f"{job_id}: {exc}", file=sys.stderr)
                code = ExitCode.NOT_FOUND
                continue
            if outcome == "cancelling":
                print(f"{job_id}: running; its worker is being stopped")
            elif outcome == "cancelled":
                print(f"{job_id}: cancelled")
            else:
                print(f"{job_id}: already ended ({_state_of(client, job_id)}); nothing to cancel")
                code = code or ExitCode.FAILURE
    return code


def _state_of(client: Client, job_id: str) -> str:
    try:
        return str(client.job(job_id).get("state", "?"))
    except JobNotFound:
        return "expired"


def cmd_wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            states = client.wait(args.job_id, args.timeout)
        except WaitTimeout as exc:
            _print_states(exc.states)
            raise
    _print_states(states)
    return ExitCode.OK if all(s == "succeeded" for s in states.values()) else ExitCode.FAILURE


def _print_states(states: dict[str, str]) -> None:
    for job_id, state in states.items():
        print(f"{job_id}  {state}")


def cmd_events(args: argparse.Namespace) -> int:
    with _client(args) as client:
        history = client.events.history(args.count)
        for event in history:
            _print_event(event, args.json)
        if args.follow:
            after = history[-1]["stream_id"] if history else "$"
            for event in client.events.follow(after):
                _print_event(event, args.json)
    return ExitCode.OK


def _print_event(event: dict, as_json: bool) -> None:
    _output(event, as_json, render.event)


def cmd_dead(args: argparse.Namespace) -> int:
    with _client(args) as client:
        jobs = client.dead(args.limit)
    _output(jobs, args.json, render.dead)
    return ExitCode.OK


def cmd_requeue(args: argparse.Namespace) -> int:
    if bool(args.job_id) == args.all:
        raise SubmitError("give job ids or --all, not both or neither")
    with _client(args) as client:
        if args.all:
            print(f"requeued {client.requeue_all()} jobs")
            return ExitCode.OK
        results = client.requeue(args.job_id)
    meaning = {1: "requeued", 0: "not in the dead-letter list", -1: "a malformed entry with no job to run"}
    for job_id, result in results.items():
        print(f"{job_id}: {meaning[result]}")
    return ExitCode.OK if all(r == 1 for r in results.values()) else ExitCode.FAILURE


def cmd_purge(args: argparse.Namespace) -> int:
    if not args.dead:
        raise SubmitError("say what to purge: --dead (the dead-letter list)")
    with _client(args) as client:
        count = client.inspector.dead_count()
        if count and not args.yes and not _confirm(f"Delete {count} dead-lettered jobs and their records? [y/N] "):
            print("nothing deleted")
            return ExitCode.FAILURE
        print(f"deleted {client.purge_dead()} dead-lettered jobs")
    return ExitCode.OK


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise SubmitError("refusing to purge without confirmation; pass --yes")
    return input(question).strip().lower() in ("y", "yes")


def _output(data: Any, as_json: bool, as_text: Callable[[Any], str]) -> None:
    print(orjson.dumps(data).decode() if as_json else as_text(data), flush=True)


def _json_params(text: str) -> dict:
    try:
        params = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SubmitError(f"--json is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise SubmitError("--json must be a JSON object of parameters")
    return params


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.status()
    _output(status, args.json, render.status)
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.job(args.job_id)
    _output(info, args.json, render.job)
    return ExitCode.OK


def cmd_jobs(args: argparse.Namespace) -> int:
    settings = _settings(args)
    registry = load_registry(settings.jobs_dir, settings.queues)
    print(render.definitions(registry.definitions.values()))
    for error in registry.errors:
        print(f"invalid: {error}", file=sys.stderr)
    return ExitCode.CONFIG if registry.errors else ExitCode.OK


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


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

    sup = add("supervise", cmd_supervise, "run workers until stopped (or until the queues are empty)")
    sup.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    sup.add_argument("--until-empty", action="store_true", help="exit 0 once nothing is queued or running (for cron)")
    sup.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON")
    sub = add("submit", cmd_submit, "validate and queue a job; prints its id")
    sub.add_argument("job", help="job name, as defined in the jobs folder")
    sub.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter")
    sub.add_argument("--json", help="parameters as a JSON object (-p values override it)")
    when = sub.add_mutually_exclusive_group()
    when.add_argument("--delay", help="run after this long, e.g. 90s, 5m, 2h")
    when.add_argument("--at", help="run at this time, ISO 8601 with a zone, e.g. 2026-12-01T03:00:00Z")
    cancel = add("cancel", cmd_cancel, "cancel jobs: waiting ones at once, running ones by stopping their worker")
    cancel.add_argument("job_id", nargs="+")
    wait = add("wait", cmd_wait, "wait until jobs end; exit 0 only if all succeeded (8 on timeout)")
    wait.add_argument("job_id", nargs="+")
    wait.add_argument("--timeout", type=_seconds, help="give up after this long, e.g. 30s")
    events = add("events", cmd_events, "print recent job events; --follow keeps printing new ones")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing events as they happen")
    events.add_argument("--count", type=_positive_int, default=20, help="how many past events to print first (default 20)")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    dead = add("dead", cmd_dead, "list dead-lettered jobs with their reasons")
    dead.add_argument("--json", action="store_true", help="print JSON")
    dead.add_argument("--limit", type=_positive_int, default=1000, help="list at most this many (default 1000)")
    requeue = add("requeue", cmd_requeue, "put dead-lettered jobs back in their queues, counters reset")
    requeue.add_argument("job_id", nargs="*")
    requeue.add_argument("--all", action="store_true", help="requeue the whole dead-letter list")
    purge = add("purge", cmd_purge, "delete dead-lettered jobs and their records")
    purge.add_argument("--dead", action="store_true", help="empty the dead-letter list")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for name, func, help in (("status", cmd_status, "queues, workers, in-flight and dead-letter counts"),
                             ("show", cmd_show, "one job's state, attempts, timestamps and result or error")):
        cmd = add(name, func, help)
        cmd.add_argument("--json", action="store_true", help="print JSON")
        if name == "show":
            cmd.add_argument("job_id")
    add("jobs", cmd_jobs, "list job definitions and report invalid files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BatchrunError as exc:
        print(f"batchrun: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return ExitCode.FAILURE
