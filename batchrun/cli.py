"""The `batchrun` command. Each subcommand is one small function; errors become named exit codes."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from batchrun import logs, render
from batchrun.client import Client
from batchrun.config import Settings, load_settings
from batchrun.connection import connect
from batchrun.errors import AlreadyRunning, BatchrunError, ExitCode, SubmitError
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
        lock.acquire()
    except AlreadyRunning as exc:
        if not args.until_empty:
            raise
        print(f"batchrun: {exc}; leaving the queued work to it", file=sys.stderr)
        return ExitCode.OK
    try:
        with connect(settings, owner_only=True) as connection:
            release = [lock.close_in_child] + ([connection.server.forget_in_child] if connection.server else [])
            supervisor = Supervisor(settings, registry, connection, settings.workers or default_workers(),
                                    until_empty=args.until_empty, release_in_child=release)
            return supervisor.run()
    finally:
        lock.release()


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        definition = client.registry.get(args.job)
        params = _json_params(args.json) if args.json else {}
        params.update(definition.parse_cli_params(args.param, validate=False))
        job_id = client.submit_params(args.job, params)
    print(job_id)
    return ExitCode.OK


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
    print(orjson.dumps(status).decode() if args.json else render.status(status))
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.job(args.job_id)
    print(orjson.dumps(info).decode() if args.json else render.job(info))
    return ExitCode.OK


def cmd_jobs(args: argparse.Namespace) -> int:
    settings = _settings(args)
    registry = load_registry(settings.jobs_dir, settings.queues)
    print(render.definitions(registry.definitions.values()))
    for error in registry.errors:
        print(f"invalid: {error}", file=sys.stderr)
    return ExitCode.CONFIG if registry.errors else ExitCode.OK


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
