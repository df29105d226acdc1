"""importlib.metadata and redis.asyncio are deferred in batchrun processes (store/deferred.py), and work as
usual once used.

Each check runs in a fresh interpreter: this test session imported importlib.metadata long ago."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

CONNECT_AND_USE = """
import sys
from batchrun.store.deferred import defer
defer("importlib.metadata")  # as the batchrun command does first (batchrun/__main__.py)
from batchrun.store.connection import client_for
from redis import __version__ as redis_version

client = client_for(sys.argv[1])
client.ping()
deferred = "version" not in vars(sys.modules["importlib.metadata"])
heavy = sorted(name for name in ("email", "zipfile", "csv") if name in sys.modules)
lib_ver = client.client_info().get("lib-ver", redis_version)  # CLIENT SETINFO came with Redis 7.2

import importlib.metadata
from importlib.metadata import PackageNotFoundError, version
import redis, redis.utils

try:
    version("no-such-distribution-here")
    missing = "found"
except PackageNotFoundError:
    missing = "raised"
print(deferred, heavy, lib_ver == redis.__version__, version("redis") == redis.__version__,
      importlib.metadata.version is version, redis.utils.get_lib_version() == redis.__version__, missing)
"""


def test_a_connected_client_leaves_importlib_metadata_unloaded_and_it_works_when_used(redis_url):
    done = subprocess.run([sys.executable, "-c", CONNECT_AND_USE, redis_url], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "[]", "True", "True", "True", "True", "raised"]


def test_a_module_loaded_before_batchrun_is_left_alone():
    code = ("import importlib.metadata as before, sys; from batchrun.store.deferred import defer; "
            "defer('importlib.metadata'); print(sys.modules['importlib.metadata'] is before)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["True"], done.stderr


FIRST_USE_FROM_THREADS = """
import sys, threading
from batchrun.store.deferred import defer
defer("importlib.metadata")
import redis

results = []
start = threading.Barrier(8)


def use():
    start.wait()
    from importlib.metadata import version
    results.append(version("redis") == redis.__version__)


threads = [threading.Thread(target=use) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
import importlib.metadata
print(len(results), all(results), sys.modules["importlib.metadata"] is importlib.metadata)
"""


def test_first_use_from_many_threads_at_once_runs_the_module_once_for_all():
    done = subprocess.run([sys.executable, "-c", FIRST_USE_FROM_THREADS], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["8", "True", "True"], done.stderr


def test_a_program_using_batchrun_as_a_library_keeps_the_import_system_as_it_was(redis_url):
    code = ("import sys, types; from batchrun.store.connection import client_for; client_for(sys.argv[1]).ping(); "
            "m = sys.modules.get('importlib.metadata'); print(m is None or type(m) is types.ModuleType)")
    done = subprocess.run([sys.executable, "-c", code, redis_url], capture_output=True, text=True, timeout=30)
    assert done.stdout.split() == ["True"], done.stderr


ASYNC_CLIENT = """
import asyncio, sys
from batchrun.store.deferred import defer
defer("redis.asyncio")  # before redis is imported, as the batchrun command does (batchrun/__main__.py)
from batchrun.store.connection import client_for

client_for(sys.argv[1]).ping()
unrun = "Redis" not in vars(sys.modules["redis.asyncio"]) and "redis.asyncio.client" not in sys.modules
import redis
from redis.asyncio import Redis


async def ping():
    async with Redis.from_url(sys.argv[1]) as client:
        return await client.ping()


print(unrun, asyncio.run(ping()), redis.asyncio.Redis is Redis, sys.modules["redis.asyncio"] is redis.asyncio)
"""


def test_redis_asyncio_stays_unrun_while_a_sync_client_works_and_runs_when_used(redis_url):
    done = subprocess.run([sys.executable, "-c", ASYNC_CLIENT, redis_url], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True", "True"]
