"""batchrun: run CPU-heavy data jobs from YAML definitions, with Redis as the only moving part."""
from batchrun.client import Client
from batchrun.errors import BatchrunError, ConfigError, JobNotFound, RedisUnavailable, SubmitError

__all__ = ["Client", "BatchrunError", "ConfigError", "JobNotFound", "RedisUnavailable", "SubmitError"]
__version__ = "0.1.0"
