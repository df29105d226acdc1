"""batchrun: run CPU-heavy data jobs from YAML definitions, with Redis as the only moving part."""
from batchrun.errors import (
    BatchrunError, ConfigError, JobInterrupted, JobNotFound, NotInJob, NotReplicated, PermanentError, RedisUnavailable,
    StaleAttempt, SubmitError, WaitTimeout,
)
from batchrun.runtime.jobcontext import CurrentJob, checkpoint, current_job, last_checkpoint, progress
from batchrun.surfaces.client import Client

__all__ = ["Client", "BatchrunError", "ConfigError", "JobInterrupted", "JobNotFound", "NotInJob", "NotReplicated",
           "PermanentError", "RedisUnavailable", "StaleAttempt", "SubmitError", "WaitTimeout",
           "CurrentJob", "checkpoint", "current_job", "last_checkpoint", "progress"]
__version__ = "0.1.0"
