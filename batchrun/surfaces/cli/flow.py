"""Commands that steer the flow of work: schedules, pause, resume."""
from __future__ import annotations

import argparse

from batchrun.errors import ExitCode
from batchrun.surfaces import render
from batchrun.surfaces.cli.common import open_client, print_read


def cmd_schedules(args: argparse.Namespace) -> int:
    return print_read(args, lambda client: client.schedules(), render.schedules)


def cmd_pause(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.pause(args.queue)
    print(f"paused: {', '.join(args.queue)} (running jobs finish; submits are still accepted)")
    return ExitCode.OK


def cmd_resume(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.resume(args.queue)
    print(f"resumed: {', '.join(args.queue)}")
    return ExitCode.OK
