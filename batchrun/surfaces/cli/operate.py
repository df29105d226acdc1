"""Commands for operators: the web dashboard and `top`."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from batchrun.errors import ExitCode, SubmitError
from batchrun.surfaces.cli.common import open_client

TOKEN_ENV = "BATCHRUN_DASHBOARD_TOKEN"
log = logging.getLogger("batchrun.dashboard")


def cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from batchrun.surfaces.dashboard.app import build_app
        from batchrun.surfaces.dashboard.security import Guard
    except ImportError as exc:
        raise SubmitError(f"the dashboard needs the web extra: pip install 'batchrun[web]' ({exc.name} is missing)") \
            from None
    guard = Guard.for_binding(args.host, args.token or os.environ.get(TOKEN_ENV))
    if guard.read_only:
        print(f"batchrun: {args.host} is beyond loopback and no --token (or {TOKEN_ENV}) is set: "
              "the dashboard is read-only", file=sys.stderr)
    with open_client(args) as client:
        print(f"batchrun dashboard at http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
        uvicorn.run(build_app(client, guard), host=args.host, port=args.port, log_level="warning")
    return ExitCode.OK


def cmd_top(args: argparse.Namespace) -> int:
    from batchrun.surfaces.top import run_top

    with open_client(args) as client:
        run_top(client, once=args.once, interval_s=args.interval)
    return ExitCode.OK
