"""Commands for batches: map (queue one job per input), batch (progress and results), batches,
and the --batch forms of wait and cancel."""
from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import Any

import orjson

from batchrun.definitions.inputs import STDIN, input_format, read_inputs
from batchrun.errors import ExitCode, SubmitError, WaitTimeout
from batchrun.surfaces import render
from batchrun.surfaces.batches import Batch
from batchrun.surfaces.cli.common import open_client, output, print_read
from batchrun.surfaces.progress import summary, watch


def cmd_map(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        definition = client.registry.get(args.job)
        inputs = read_inputs(args.input, input_format(args.input, args.format), definition.params)
        batch = client.map_inputs(args.job, inputs, on_complete=args.on_complete)
        print(batch.id, flush=True)
        if not args.wait:
            return ExitCode.OK
        try:
            return _exit_code(watch(batch, sys.stderr))
        except KeyboardInterrupt:
            print(f"stopped watching; the batch goes on (batchrun wait --batch {batch.id})", file=sys.stderr)
            raise


def cmd_batch(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        batch = client.batch(args.batch_id)
        info = batch.progress()
        if args.results:
            written = _write_results(batch, args.results)
            if args.results == STDIN:
                return ExitCode.OK
            print(f"wrote {written} results to {args.results}", file=sys.stderr)
    output(info, args.json, render.batch)
    return ExitCode.OK


def _write_results(batch: Batch, path: str) -> int:
    """One JSON line per input, in input order; `-` writes to standard output."""
    written = 0
    with nullcontext(sys.stdout.buffer) if path == STDIN else open(path, "wb") as out:
        for record in batch.results():
            out.write(orjson.dumps(record) + b"\n")
            written += 1
        out.flush()
    return written


def cmd_batches(args: argparse.Namespace) -> int:
    return print_read(args, lambda client: client.batches.recent(args.limit), render.batches)


def wait_batch(args: argparse.Namespace) -> int:
    """`wait --batch ID`: the exit codes of `wait` (0 all succeeded, 1 not, 8 timed out, 5 unknown)."""
    _one_target(args)
    with open_client(args) as client:
        batch = client.batch(args.batch)
        try:
            info = batch.wait(args.timeout)
        except WaitTimeout:
            print(render.batch(batch.progress()))
            raise
    print(summary(info))
    return _exit_code(info)


def cancel_batch(args: argparse.Namespace) -> int:
    """`cancel --batch ID`: exits 1 when every job had already ended (nothing to cancel)."""
    _one_target(args)
    with open_client(args) as client:
        outcomes = client.batch(args.batch).cancel()
    cancelled, stopping, ended = (outcomes.get(k, 0) for k in ("cancelled", "cancelling", "ended"))
    print(f"batch {args.batch}: {cancelled} cancelled, {stopping} running (their workers are being stopped), "
          f"{ended} had already ended")
    return ExitCode.OK if cancelled or stopping else ExitCode.FAILURE


def _one_target(args: argparse.Namespace) -> None:
    if bool(args.job_id) == bool(args.batch):
        raise SubmitError("give job ids or --batch BATCH_ID, not both or neither")


def _exit_code(info: dict[str, Any]) -> int:
    return ExitCode.OK if info["counts"]["succeeded"] == info["total"] else ExitCode.FAILURE
