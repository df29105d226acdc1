"""Streamed script calls (store/bulkcall.py) and the bulk submit that uses them, against the real server."""
from __future__ import annotations

import threading

import pytest
import redis

from batchrun.ids import new_job_ids
from batchrun.store.broker import Broker
from batchrun.store.bulkcall import call_streamed
from batchrun.store.clients import build
from batchrun.store.events import EventReader
from tests.support.project import wait_for

APPEND = "redis.call('RPUSH', KEYS[1], unpack(ARGV)) return redis.call('LLEN', KEYS[1])"
FAILS_ON_BAD = "if ARGV[1] == 'bad' then return redis.error_reply('BAD input') end return ARGV[1]"


@pytest.fixture
def client(redis_url: str):
    client = build(redis_url, socket_timeout_s=5.0, retries=3)  # as every batchrun process builds its client
    yield client
    client.close()


def test_replies_come_back_in_order_and_a_lazy_iterable_is_sent_once(client, namespace):
    key = f"{namespace}:list"
    script = client.register_script(APPEND)
    built: list[int] = []

    def calls():
        for n in range(5):
            built.append(n)
            yield [key], [f"{n}a", f"{n}b"]

    assert call_streamed(client, script, calls()) == [2, 4, 6, 8, 10]
    assert built == [0, 1, 2, 3, 4]
    assert client.lrange(key, 0, -1)[:3] == [b"0a", b"0b", b"1a"]


def test_a_flushed_script_cache_is_answered_with_eval(client, namespace):
    script = client.register_script(APPEND + " -- " + namespace)  # a script this server has never seen
    key = f"{namespace}:list"
    assert call_streamed(client, script, [([key], ["x"]), ([key], ["y"])]) == [1, 2]
    client.script_flush()
    assert call_streamed(client, script, [([key], ["z"])]) == [3]


def test_an_error_reply_is_raised_after_every_reply_is_read(client, namespace):
    script = client.register_script(FAILS_ON_BAD)
    with pytest.raises(redis.ResponseError, match="BAD input"):
        call_streamed(client, script, [([namespace], ["ok"]), ([namespace], ["bad"]), ([namespace], ["after"])])
    # the connection went back to the pool in step: the next call reads its own replies
    assert call_streamed(client, script, [([namespace], ["next"])]) == [b"next"]


def test_a_dropped_connection_sends_every_call_again(client, namespace, redis_url):
    """The first send is cut off by CLIENT KILL; the retry sends all calls, the lazy ones included."""
    key = f"{namespace}:list"
    script = client.register_script("redis.call('SADD', KEYS[1], ARGV[1]) return redis.call('SCARD', KEYS[1])")
    script([key], ["warm"])
    killer = redis.Redis.from_url(redis_url)
    killed = threading.Event()

    def calls():
        yield [key], ["a"]
        if not killed.is_set():
            killer.client_kill_filter(_type="normal", skipme=True)
            killed.set()
        yield [key], ["b"]

    try:
        replies = call_streamed(client, script, calls())
    finally:
        killer.close()
    assert killed.is_set()
    assert client.smembers(key) == {b"warm", b"a", b"b"}
    assert replies[-1] == 3


def test_a_bulk_submit_sent_again_creates_nothing_twice(client, namespace):
    broker = Broker(client, namespace)
    items = [(job_id, b"{}") for job_id in new_job_ids(2500)]
    assert broker.enqueue_many("noop", "default", items) == 2500
    assert broker.enqueue_many("noop", "default", items[1000:] + [(new_job_ids(1)[0], b"{}")]) == 1
    assert client.llen(broker.keys.queue("default")) == 2501
    events = EventReader(client, namespace).history(10_000)
    assert [e["id"] for e in events if e["event"] == "queued"] == [job_id for job_id, _ in items] + [
        events[-1]["id"]]
    assert client.xlen(broker.keys.events) == 26, "100 jobs' queued events per stream entry"


def test_bulk_ids_are_unique_and_time_ordered():
    first = new_job_ids(10_000)
    wait_for(lambda: new_job_ids(1)[0][:12] > first[0][:12], timeout=5)
    later = new_job_ids(10)
    assert len(set(first)) == len(first)
    assert all(len(job_id) == 24 for job_id in first + later)
    assert max(first)[:12] < min(later)[:12]
