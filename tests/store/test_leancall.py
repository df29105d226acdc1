"""The lean EVALSHA path of one-call submits: the job is in Redis when the call returns, a flushed script
cache or a dropped connection is recovered, failures still reach callers as our own errors."""
from __future__ import annotations

import multiprocessing
import threading

import pytest
import redis

from batchrun.errors import RedisUnavailable
from batchrun.ids import new_job_id
from batchrun.store.broker import Broker
from batchrun.store.connection import client_for

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def broker(redis_url: str, namespace: str):
    client = client_for(redis_url)  # as every batchrun process builds it: retries a dropped connection
    yield Broker(client, namespace, result_ttl_s=60)
    client.close()


def _submit(broker: Broker) -> str:
    job_id = new_job_id()
    assert broker.enqueue(job_id, "noop", b'{"n": 1}', "default")
    return job_id


def _held(rclient: redis.Redis, job_id: str, broker: Broker) -> bool:
    return (rclient.hget(broker.keys.job(job_id), "state") == b"queued"
            and job_id.encode() in rclient.lrange(broker.keys.queue("default"), 0, -1))


def test_the_job_is_in_redis_when_enqueue_returns(broker, rclient):
    job_id = _submit(broker)
    assert _held(rclient, job_id, broker)
    assert rclient.hget(broker.keys.job(job_id), "params") == b'{"n": 1}'


def test_an_existing_id_is_refused_and_left_unchanged(broker, rclient):
    job_id = _submit(broker)
    assert not broker.enqueue(job_id, "other", b"{}", "default")
    assert rclient.hget(broker.keys.job(job_id), "job") == b"noop"
    assert rclient.llen(broker.keys.queue("default")) == 1


def test_a_flushed_script_cache_is_reloaded_on_the_next_submit(broker, rclient):
    _submit(broker)
    rclient.script_flush()
    job_id = _submit(broker)
    assert _held(rclient, job_id, broker)
    assert rclient.script_exists(broker.scripts.enqueue.sha) == [True]


def test_a_killed_connection_is_reopened_and_the_submit_lands(broker, rclient):
    _submit(broker)
    held = broker.lean._connection()
    rclient.client_kill_filter(_id=_connection_id(broker))
    job_id = _submit(broker)
    assert _held(rclient, job_id, broker)
    assert broker.lean._connection() is held, "the same held connection, reconnected"


def test_an_unreachable_server_is_redis_unavailable_without_the_password(namespace):
    client = redis.Redis.from_url("redis://:s3cret-pw@127.0.0.1:1/0", socket_connect_timeout=1)
    broker = Broker(client, namespace)
    with pytest.raises(RedisUnavailable) as raised:
        _submit(broker)
    assert "s3cret-pw" not in str(raised.value)
    client.close()


def test_submits_from_many_threads_all_land(broker, rclient):
    ids: list[str] = []
    lock = threading.Lock()

    def submit_some() -> None:
        for _ in range(50):
            job_id = _submit(broker)
            with lock:
                ids.append(job_id)

    threads = [threading.Thread(target=submit_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(ids) == 200
    queued = {x.decode() for x in rclient.lrange(broker.keys.queue("default"), 0, -1)}
    assert queued == set(ids)


def _connection_id(broker: Broker) -> int:
    held = broker.lean._connection()
    held.send_command("CLIENT", "ID")
    return held.read_response()


def _submit_in_child(broker: Broker, out: "multiprocessing.Queue[tuple[str, int]]") -> None:
    out.put((_submit(broker), _connection_id(broker)))


def test_a_forked_child_submits_on_its_own_connection(broker, rclient):
    parent_id = _submit(broker)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_submit_in_child, args=(broker, out))
    child.start()
    child_id, child_connection = out.get(timeout=10)
    child.join(timeout=10)
    assert child.exitcode == 0
    assert child_connection != _connection_id(broker), "the child must not share its parent's socket"
    assert _held(rclient, child_id, broker)
    assert _held(rclient, _submit(broker), broker), "the parent's connection still works after the fork"
    assert _held(rclient, parent_id, broker)
