"""Test session fixtures: one real Redis server for the session, and factories for projects and supervisors.

The server is the embedded Valkey unless BATCHRUN_REDIS_URL points at another
(CI's second lane runs the suite against Debian's redis-server 7.0). Each test
gets its own key namespace, so tests never see each other's keys.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from batchrun.store.embedded import EmbeddedServer
from tests.support.project import Project, ProjectFactory
from tests.support.servers import Servers


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("BATCHRUN_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedServer(tmp_path_factory.mktemp("redis-state"))
    try:
        yield server.acquire()
    finally:
        server.release()


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_project(tmp_path: Path, redis_url: str) -> Iterator[ProjectFactory]:
    """A factory of throw-away projects (config, jobs folder, handler module), each in its own namespace."""
    factory = ProjectFactory(tmp_path, redis_url)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def project(make_project: ProjectFactory) -> Project:
    return make_project()


@pytest.fixture
def namespace() -> str:
    return "t" + secrets.token_hex(4)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """A factory of extra real servers (password, TLS, Sentinel, Cluster), stopped after the test."""
    factory = Servers(tmp_path / "servers")
    try:
        yield factory
    finally:
        factory.cleanup()
