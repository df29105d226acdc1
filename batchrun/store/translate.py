"""redis-py's errors turned into batchrun's at the store's boundary, so callers handle one error type and
never see a URL with its password."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from redis.exceptions import RedisClusterException

from batchrun.definitions.urls import redact
from batchrun.errors import BrokerError, RedisUnavailable

P = ParamSpec("P")
R = TypeVar("R")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Turn redis-py's connection errors into our own, at the boundary."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisUnavailable(redact(f"Redis is unreachable: {exc}")) from exc
        except (redis.RedisError, RedisClusterException) as exc:
            raise BrokerError(redact(f"Redis refused {method.__name__}: {exc}")) from exc

    return wrapper
