"""Commands that run and steer jobs: supervise, submit, cancel, wait."""
from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from batchrun.definitions.durations import parse_duration
from batchrun.definitions.config import Settings
from batchrun.definitions.registry import Registry, load_registry
from batchrun.errors import AlreadyRunning, ExitCode, JobNotFound, SubmitError, WaitTimeout
from batchrun.runtime import logs
from batchrun.runtime.datajobs import prepare_data_jobs
from batchrun.runtime.hostlock import SupervisorLock
from batchrun.runtime.supervisor import Supervisor, default_workers
from batchrun.store.connection import connect
from batchrun.surfaces.cli.batches import cancel_batch, wait_batch
from batchrun.surfaces.cli.common import open_client, settings_for
from batchrun.surfaces.cli.progressbar import ProgressBar

if TYPE_CHECKING:
    from batchrun.surfaces.client import Client


def cmd_supervise(args: argparse.Namespace) -> int:
    settings = settings_for(args, workers=args.workers, log_format=args.log_format,
                            metrics_port=args.metrics_port, metrics_host=args.metrics_host)
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
        workers = settings.workers or default_workers()
        cap = prepare_data_jobs(settings, registry, workers)
        with connect(settings) as connection:
            release = [lock.close_in_child] + ([connection.server.forget_in_child] if connection.server else [])
            supervisor = Supervisor(settings, registry, connection, workers, until_empty=args.until_empty,
                                    release_in_child=release, previous_id=previous_id, thread_cap=cap)
            lock.record(supervisor.id)
            with _metrics(settings, connection.url, registry, supervisor):
                return supervisor.run()
    finally:
        lock.release()


def _metrics(settings: Settings, url: str, registry: Registry, supervisor: Supervisor) -> contextlib.AbstractContextManager:
    """The metrics endpoint's context; prometheus-client (about 30 ms of imports) is loaded only when
    metrics_port asks for it, so neither other commands nor a plain supervisor's start-up pay for it."""
    if settings.metrics_port is None:
        return contextlib.nullcontext()
    from batchrun.surfaces.metrics import serving_metrics

    return serving_metrics(settings, url, registry, supervisor)


def cmd_submit(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        definition = client.registry.get(args.job)
        params = _json_params(args.json) if args.json else {}
        params.update(definition.parse_cli_params(args.param, validate=False))
        job_id, created = client.submit_checked(args.job, params, delay=_delay(args.delay), at=_at(args.at))
    print(job_id)
    if not created:
        print(f"batchrun: {args.job} with these params is already queued (unique: true); "
              "no new job was created", file=sys.stderr)
    return ExitCode.OK


def _json_params(text: str) -> dict:
    try:
        params = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SubmitError(f"--json is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise SubmitError("--json must be a JSON object of parameters")
    return params


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
    if args.batch or not args.job_id:
        return cancel_batch(args)
    code = ExitCode.OK
    with open_client(args) as client:
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
    if args.batch or not args.job_id:
        return wait_batch(args)
    with open_client(args) as client:
        bar = ProgressBar(client, args.job_id[0]) if len(args.job_id) == 1 and sys.stderr.isatty() else None
        try:
            states = client.wait(args.job_id, args.timeout, bar.draw if bar else None)
        except WaitTimeout as exc:
            _print_states(exc.states)
            raise
        finally:
            if bar:
                bar.close()
    _print_states(states)
    return ExitCode.OK if all(s == "succeeded" for s in states.values()) else ExitCode.FAILURE


def _print_states(states: dict[str, str]) -> None:
    for job_id, state in states.items():
        print(f"{job_id}  {state}")
