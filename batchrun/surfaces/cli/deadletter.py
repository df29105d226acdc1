"""Commands for the dead-letter list: dead, requeue, purge."""
from __future__ import annotations

import argparse
import sys

from batchrun.errors import ExitCode, SubmitError
from batchrun.surfaces import render
from batchrun.surfaces.cli.common import open_client, print_read


def cmd_dead(args: argparse.Namespace) -> int:
    return print_read(args, lambda client: client.dead(args.limit), render.dead)


def cmd_requeue(args: argparse.Namespace) -> int:
    if bool(args.job_id) == args.all:
        raise SubmitError("give job ids or --all, not both or neither")
    with open_client(args) as client:
        if args.all:
            print(f"requeued {client.requeue_all(fresh=args.fresh)} jobs")
            return ExitCode.OK
        results = client.requeue(args.job_id, fresh=args.fresh)
    meaning = {1: "requeued", 0: "not in the dead-letter list", -1: "a malformed entry with no job to run",
               -2: "a unique job whose equal twin is queued or running; left dead-lettered"}
    for job_id, result in results.items():
        print(f"{job_id}: {meaning[result]}")
    return ExitCode.OK if all(r == 1 for r in results.values()) else ExitCode.FAILURE


def cmd_purge(args: argparse.Namespace) -> int:
    if not args.dead:
        raise SubmitError("say what to purge: --dead (the dead-letter list)")
    with open_client(args) as client:
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
