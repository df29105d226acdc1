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
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from batchrun.definitions.registry import JobDefinition, Registry
from batchrun.errors import BatchrunError, ConfigError, JobInterrupted, Location, PermanentError
from batchrun.runtime import jobcontext
from batchrun.runtime.childproc import die_with_parent

OUTPUT_TAIL_BYTES = 64 * 1024
PROGRESS_PREFIX = b"batchrun:progress "


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
        stderr = _ProgressReader(proc.stderr)
        try:
            stdout = proc.stdout.read()
            proc.wait()
        except BaseException:
            kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            stderr.join()
        if proc.returncode != 0:
            return Outcome(False, error=f"command exited with code {proc.returncode}", traceback=stderr.tail())
        return _encode({"exit_code": 0, "stdout": _tail(stdout)})


class _ProgressReader(threading.Thread):
    """Reads a command's stderr as it comes: lines `batchrun:progress DONE [TOTAL] [MESSAGE]` report the
    job's progress (see jobcontext.progress); the rest is kept for the error report."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(name="command-stderr", daemon=True)
        self.stream = stream
        self.kept = bytearray()
        self.start()

    def run(self) -> None:
        for line in self.stream:
            if line.startswith(PROGRESS_PREFIX):
                _report(line[len(PROGRESS_PREFIX):].decode("utf-8", "replace"))
                continue
            self.kept += line
            del self.kept[:-OUTPUT_TAIL_BYTES]

    def tail(self) -> str:
        return bytes(self.kept).decode("utf-8", "replace")


def _report(text: str) -> None:
    """A malformed progress line is ignored: a command's chatter must not fail its job."""
    parts = text.split(maxsplit=2)
    try:
        done = _number(parts[0])
        total = _number(parts[1]) if len(parts) > 1 and parts[1] != "-" else None
        jobcontext.progress(done, total, parts[2].strip() if len(parts) > 2 else None)
    except (IndexError, ValueError, BatchrunError):
        return


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


def _number(text: str) -> float:
    return int(text) if text.isdigit() else float(text)


def _tail(data: bytes) -> str:
    return data[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")
