"""batchrun: run CPU-heavy data jobs from YAML definitions, with Redis as the only moving part."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batchrun.errors import (
    BatchrunError, ConfigError, JobInterrupted, JobNotFound, NotInJob, NotReplicated, PermanentError, RedisUnavailable,
    StaleAttempt, SubmitError, WaitTimeout,
)

if TYPE_CHECKING:
    from batchrun.runtime.jobcontext import CurrentJob, checkpoint, current_job, last_checkpoint, progress
    from batchrun.surfaces.client import Client

__all__ = ["Client", "BatchrunError", "ConfigError", "JobInterrupted", "JobNotFound", "NotInJob", "NotReplicated",
           "PermanentError", "RedisUnavailable", "StaleAttempt", "SubmitError", "WaitTimeout",
           "CurrentJob", "checkpoint", "current_job", "last_checkpoint", "progress"]
__version__ = "0.1.0"

_LAZY = {"Client": "batchrun.surfaces.client", "CurrentJob": "batchrun.runtime.jobcontext",
         "checkpoint": "batchrun.runtime.jobcontext", "current_job": "batchrun.runtime.jobcontext",
         "last_checkpoint": "batchrun.runtime.jobcontext", "progress": "batchrun.runtime.jobcontext"}


def __getattr__(name: str) -> Any:
    """The client and the job context (and with them redis-py) are imported on first use, not with the
    package: `python -m batchrun` imports the package before its own start-up code runs (see __main__.py),
    and most commands, `supervise` first, never open a Client."""
    if name not in _LAZY:
        raise AttributeError(f"module 'batchrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
