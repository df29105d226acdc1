"""batchrun: run CPU-heavy data jobs from YAML definitions, with Redis as the only moving part."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchrun.errors import (
    BatchrunError, ConfigError, JobInterrupted, JobNotFound, NotInJob, NotReplicated, PermanentError, RedisUnavailable,
    StaleAttempt, SubmitError, WaitTimeout,
)
from batchrun.runtime.jobcontext import CurrentJob, checkpoint, current_job, last_checkpoint, progress

if TYPE_CHECKING:
    from batchrun.surfaces.client import Client

__all__ = ["Client", "BatchrunError", "ConfigError", "JobInterrupted", "JobNotFound", "NotInJob", "NotReplicated",
           "PermanentError", "RedisUnavailable", "StaleAttempt", "SubmitError", "WaitTimeout",
           "CurrentJob", "checkpoint", "current_job", "last_checkpoint", "progress"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`batchrun.Client` is imported on first use: every `batchrun` command and every forked worker imports
    this package, and most of them (`supervise` first) never open a Client, whose submit, batch and event
    modules would otherwise be on the path to the first job."""
    if name == "Client":
        from batchrun.surfaces.client import Client

        return Client
    raise AttributeError(f"module 'batchrun' has no attribute {name!r}")
