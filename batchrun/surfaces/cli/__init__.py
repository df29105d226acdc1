"""The `batchrun` command. Each subcommand is one small function, in a module per group of commands;
errors become named exit codes here."""
from __future__ import annotations

import sys
from collections.abc import Sequence

from batchrun.definitions.urls import redact
from batchrun.errors import BatchrunError, ExitCode
from batchrun.surfaces.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BatchrunError as exc:
        print(redact(f"batchrun: error: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return ExitCode.FAILURE
