"""Runs one job's code: a Python handler in this process, or a command as a child process.

Only callables named by job definitions can be reached, so a message in Redis
never decides what code is imported. Handlers are imported when the worker
boots, so a broken module stops the supervisor at start-up instead of failing
jobs one by one.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from batchrun.definitions.registry import JobDefinition, Registry
from batchrun.errors import ConfigError, JobInterrupted, Location, PermanentError
from batchrun.runtime.childproc import die_with_parent

OUTPUT_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """retry=False: the failure is permanent (the handler raised PermanentError, say)."""

    ok: bool
    result_json: bytes = b"null"
    error: str = ""
    traceback: str = ""
    retry: bool = True


def resolve(definition: JobDefinition) -> Callable[..., Any]:
    module_name, _, attr = (definition.handler or "").partition(":")
    where = Location(definition.source, None, "handler")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc!r}", where) from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise ConfigError(f"{module_name!r} has no callable {attr!r}", where)
    return func


class Executor:
    def __init__(self, registry: Registry, project_dir: Path) -> None:
        self.registry = registry
        self.project_dir = project_dir
        self.handlers: dict[str, Callable[..., Any]] = {}

    def load_handlers(self) -> None:
        """Import every handler now, with the project folder first on sys.path."""
        if str(self.project_dir) not in sys.path:
            sys.path.insert(0, str(self.project_dir))
        for name, definition in self.registry.definitions.items():
            if definition.handler:
                self.handlers[name] = resolve(definition)

    def run(self, definition: JobDefinition, params: Mapping[str, Any]) -> Outcome:
        if definition.command:
            return self._run_command(definition, params)
        try:
            value = self.handlers[definition.name](**params)
        except JobInterrupted:
            raise
        except BaseException as exc:  # a handler's sys.exit() must not end the worker
            return Outcome(False, error=_describe(exc), traceback=traceback.format_exc(),
                           retry=not isinstance(exc, PermanentError))
        return _encode(value)

    def _run_command(self, definition: JobDefinition, params: Mapping[str, Any]) -> Outcome:
        """The command gets its own session (a Ctrl-C at the terminal is the supervisor's to handle)
        and dies with its worker, so a job put back can never run twice at once. When the job is
        interrupted its whole process group goes, including anything the command started."""
        argv = definition.render_command(params)
        try:
            proc = subprocess.Popen(argv, cwd=self.project_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=die_with_parent(signal.SIGKILL) if sys.platform == "linux" else None)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return Outcome(False, error=f"cannot run {argv[0]!r}: {exc}")
        try:
            stdout, stderr = proc.communicate()
        except BaseException:
            kill_group(proc.pid)
            proc.wait()
            raise
        if proc.returncode != 0:
            return Outcome(False, error=f"command exited with code {proc.returncode}", traceback=_tail(stderr))
        return _encode({"exit_code": 0, "stdout": _tail(stdout)})


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _encode(value: Any) -> Outcome:
    try:
        return Outcome(True, result_json=orjson.dumps(value))
    except TypeError as exc:
        return Outcome(False, error=f"result is not JSON-serialisable: {exc}", retry=False)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _tail(data: bytes) -> str:
    return data[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")
