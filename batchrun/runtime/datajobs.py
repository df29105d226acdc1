"""What a supervisor does for data jobs before it forks: cap native thread pools, then preload.

Pools a preloaded library already started are limited here, in the supervisor:
the libraries keep their thread counts in process memory, which every forked
worker inherits."""
from __future__ import annotations

import os

from batchrun.definitions.config import Settings
from batchrun.definitions.registry import Registry
from batchrun.errors import ConfigError, Location
from batchrun.runtime import threads
from batchrun.runtime.preload import preload


def prepare_data_jobs(settings: Settings, registry: Registry, workers: int) -> threads.ThreadCap:
    """The variables are set first, so a preloaded numpy starts its pools at the cap."""
    for definition in registry.definitions.values():
        if definition.threads and not threads.threadpoolctl_available():
            raise ConfigError("`threads` needs threadpoolctl: pip install 'batchrun[data]'",
                              Location(definition.source, None, "threads"))
    cap = threads.plan(settings.threads_per_worker, workers, threads.available_cpus(), os.environ)
    threads.apply_to_environment(cap)
    if settings.preload:
        preload(settings.preload, settings.project_dir)
        threads.limit_existing_pools(cap)
    return cap
