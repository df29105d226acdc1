"""One exception tree for batchrun, and the exit codes the CLI maps it to.

Everything batchrun raises on purpose derives from BatchrunError, so a caller
can catch one type; redis-py's connection errors are translated at the broker
boundary into RedisUnavailable so users never see a stack trace for "Redis is
down".
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Exit codes of the `batchrun` command, named so scripts can rely on them."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    REDIS = 4
    NOT_FOUND = 5
    ALREADY_RUNNING = 6
    WORKER_BOOT = 7
    TIMEOUT = 8


class BatchrunError(Exception):
    exit_code: ExitCode = ExitCode.FAILURE


@dataclass
class Location:
    """Where in a YAML file a problem is: the file, the line and the field path."""

    file: Path | str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        text = str(self.file)
        if self.line is not None:
            text += f":{self.line}"
        if self.field:
            text += f": {self.field}"
        return text


class ConfigError(BatchrunError):
    """A configuration or job-definition file is invalid; the message names file, line and field."""

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.location = location
        self.reason = message
        super().__init__(f"{location}: {message}" if location else message)


class ConfigErrors(ConfigError):
    """Several invalid files at once, so a user fixes them all in one pass."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        BatchrunError.__init__(self, "\n".join(str(e) for e in errors))
        self.location = None
        self.reason = str(self)


class SubmitError(BatchrunError):
    """A submit was refused (unknown job, bad parameters, oversized payload); nothing was written."""

    exit_code = ExitCode.USAGE


class JobNotFound(BatchrunError):
    exit_code = ExitCode.NOT_FOUND


class RedisUnavailable(BatchrunError):
    exit_code = ExitCode.REDIS


class NotReplicated(RedisUnavailable):
    """A submit reached the master but fewer than min_replicas replicas confirmed it in time: a failover
    now could lose it. `job_ids` are the jobs written, so a caller can check on them before resubmitting."""

    def __init__(self, message: str, job_ids: list[str]) -> None:
        super().__init__(message)
        self.job_ids = job_ids


class BrokerError(BatchrunError):
    """Redis refused a command (a script error, a key of the wrong type): a bug or tampered data, not an outage."""

    exit_code = ExitCode.REDIS


class EmbeddedServerError(RedisUnavailable):
    """The embedded Valkey server could not be started or reached."""


class AlreadyRunning(BatchrunError):
    exit_code = ExitCode.ALREADY_RUNNING


class WaitTimeout(BatchrunError):
    """`wait` gave up before every job finished; `states` holds each job's state at that moment."""

    exit_code = ExitCode.TIMEOUT

    def __init__(self, message: str, states: dict[str, str]) -> None:
        super().__init__(message)
        self.states = states


class PermanentError(Exception):
    """Raise it from a handler when retrying cannot help (bad input data, say): the job fails at once."""


class JobInterrupted(BaseException):
    """Raised inside a handler when its job hits its timeout or is cancelled.

    A handler may catch it to clean up, but the job ends either way: its worker
    leaves and the supervisor records the outcome. It derives from
    BaseException so that `except Exception` in a handler does not swallow it.
    """


class PreloadError(BatchrunError):
    """A `preload` module failed to import, or left threads running: the supervisor does not start."""

    exit_code = ExitCode.CONFIG


class NotInJob(BatchrunError):
    """progress(), checkpoint(), last_checkpoint() or current_job() was called outside a running job."""


class StaleAttempt(BatchrunError):
    """This attempt's job was reclaimed (its worker was presumed dead): its writes are refused."""
