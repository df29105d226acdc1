"""Commands that only read: status, show, jobs, events."""
from __future__ import annotations

import argparse
import sys

from batchrun.definitions.registry import load_registry
from batchrun.errors import ExitCode
from batchrun.surfaces import render
from batchrun.surfaces.cli.common import open_client, output, print_read, settings_for


def cmd_status(args: argparse.Namespace) -> int:
    return print_read(args, lambda client: client.status(), render.status)


def cmd_show(args: argparse.Namespace) -> int:
    return print_read(args, lambda client: client.job(args.job_id), render.job)


def cmd_jobs(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    registry = load_registry(settings.jobs_dir, settings.queues)
    print(render.definitions(registry.definitions.values()))
    for error in registry.errors:
        print(f"invalid: {error}", file=sys.stderr)
    return ExitCode.CONFIG if registry.errors else ExitCode.OK


def cmd_events(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        history = client.events.history(args.count)
        for event in history:
            _print_event(event, args.json)
        if args.follow:
            after = history[-1]["stream_id"] if history else "$"
            for event in client.events.follow(after):
                _print_event(event, args.json)
    return ExitCode.OK


def _print_event(event: dict, as_json: bool) -> None:
    output(event, as_json, render.event)
