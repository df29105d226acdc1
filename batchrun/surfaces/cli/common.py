"""What every command shares: settings and a client from the common flags, and JSON-or-text output."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from batchrun.definitions.config import Settings, load_settings
from batchrun.definitions.durations import parse_duration
from batchrun.errors import ExitCode

if TYPE_CHECKING:
    from batchrun.surfaces.client import Client


def settings_for(args: argparse.Namespace, **overrides: object) -> Settings:
    flags = {"redis_url": args.redis_url, "namespace": args.namespace, **overrides}
    return load_settings(args.config, jobs_dir=args.jobs, overrides=flags)


def open_client(args: argparse.Namespace) -> Client:
    """The client and its submit, batch and event modules are imported by the commands that open one,
    not by `supervise`, whose start-up is timed to its first job."""
    from batchrun.surfaces.client import Client

    return Client.open(args.config, args.jobs, redis_url=args.redis_url, namespace=args.namespace)


def output(data: Any, as_json: bool, as_text: Callable[[Any], str]) -> None:
    print(orjson.dumps(data).decode() if as_json else as_text(data), flush=True)


def print_read(args: argparse.Namespace, read: Callable[[Client], Any], as_text: Callable[[Any], str]) -> int:
    """A read-only command: one read through a client, printed as JSON (--json) or as text."""
    with open_client(args) as client:
        data = read(client)
    output(data, args.json, as_text)
    return ExitCode.OK


def seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)
