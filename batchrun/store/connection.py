"""Finds the Redis to talk to: the configured URL, or the embedded server in the state folder."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from batchrun.definitions.config import Settings
from batchrun.definitions.urls import password_of, redact
from batchrun.errors import RedisUnavailable
from batchrun.store import clients

if TYPE_CHECKING:
    from batchrun.store.embedded import EmbeddedServer

SOCKET_TIMEOUT_S = 10.0


def client_for(url: str, *, socket_timeout_s: float = SOCKET_TIMEOUT_S, retries: int = 3) -> redis.Redis:
    """A client that retries briefly on dropped connections; our scripts are safe to repeat."""
    return clients.build(url, socket_timeout_s=socket_timeout_s, retries=retries)


@dataclass
class Connection:
    url: str
    client: redis.Redis
    server: EmbeddedServer | None = field(default=None)

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.release()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(settings: Settings) -> Connection:
    """Connect to settings.redis_url, or to the state folder's embedded server when none is set
    (starting it if no other batchrun process of that folder runs it yet)."""
    server = None
    url = settings.redis_url
    if not url:
        from batchrun.store.embedded import EmbeddedServer  # with its psutil, only when no URL is set

        server = EmbeddedServer(settings.state_dir, appendfsync=settings.appendfsync)
        url = server.acquire()
    try:
        client = client_for(url)
        _ping(client)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if server is not None:
            server.release()
        reason = str(exc).split(" : <", 1)[0]  # Sentinel's errors append the whole client's repr
        raise RedisUnavailable(redact(f"cannot reach Redis at {url}: {reason}", password_of(url))) from None
    return Connection(url, client, server)


def _ping(client: redis.Redis) -> None:
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError):
        client.close()
        raise
