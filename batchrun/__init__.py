"""batchrun: run CPU-heavy data jobs from YAML definitions, with Redis as the only moving part."""
from batchrun.surfaces.client import Client
from batchrun.errors import (
    BatchrunError, ConfigError, JobInterrupted, JobNotFound, PermanentError, RedisUnavailable, SubmitError, WaitTimeout,
)
from batchrun.errors import NotReplicated

__all__ = ["Client", "BatchrunError", "ConfigError", "JobInterrupted", "JobNotFound", "PermanentError",
           "RedisUnavailable", "SubmitError", "WaitTimeout", "NotReplicated"]
__version__ = "0.1.0"
