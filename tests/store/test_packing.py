"""The bytes of a one-call submit are the bytes redis-py's ordinary path sends: a shape packed once per job and
queue, filled per call, must say what Broker.enqueue's keys and args say (enqueue.lua's KEYS and ARGV)."""
from __future__ import annotations

import time

import hiredis
import pytest
import redis

from batchrun.store.broker import WAKE_TOKEN_CAP, Broker
from batchrun.store.packing import as_eval, evalsha

pytestmark = pytest.mark.timeout(30)


def _items(packed: bytes) -> list[bytes]:
    """A packed command read back as its items (a command is a RESP array of bulk strings)."""
    reader = hiredis.Reader()
    reader.feed(packed)
    items = reader.gets()
    assert reader.gets() is False, "one command, nothing after it"
    return items


def _ordinary(broker: Broker, job_id: str, job: str, params: bytes, queue: str, due: float, now: bytes) -> list:
    """What Broker.enqueue sends through redis-py: its keys and args, in its order."""
    k = broker.keys
    keys = [k.job(job_id), k.queue(queue), k.scheduled]
    args = [k.prefix, float(now), broker.events_cap, job_id, job, params, queue, WAKE_TOKEN_CAP, due]
    return _items(evalsha(broker.scripts.enqueue, keys, args))


@pytest.fixture
def broker(namespace: str):
    client = redis.Redis()  # packing only: nothing is sent
    yield Broker(client, namespace, events_cap=777)
    client.close()


@pytest.mark.parametrize("job, params, queue, due", [
    ("noop", b"{}", "default", 0.0),
    ("per%cent", b'{"s": "100%d %s"}', "q%s", 0.0),
    ("café", '{"name": "Zoë ☃"}'.encode(), "файлы", 1_900_000_000.25),
    ("noop", b"{}", "default", 1_800_000_000),
])
def test_a_filled_shape_is_the_ordinary_call(broker, job, params, queue, due):
    for job_id in ("0" * 24, "019a3b5c7d9e0000ffffffff", "short"):
        before = time.time()
        items = _items(broker.enqueue_calls.packed(job_id, job, params, queue, due))
        assert before <= float(items[7]) <= time.time()
        assert items == _ordinary(broker, job_id, job, params, queue, due, items[7])


def test_one_shape_per_job_and_queue_is_kept(broker):
    for _ in range(3):
        broker.enqueue_calls.packed("a" * 24, "noop", b"{}", "default", 0.0)
        broker.enqueue_calls.packed("a" * 24, "noop", b"{}", "other", 0.0)
    assert set(broker.enqueue_calls._shapes) == {("noop", "default"), ("noop", "other")}


def test_as_eval_sends_the_script_text_with_the_same_keys_and_args(broker):
    script = broker.scripts.fire
    packed = evalsha(script, ["k1", "k2"], ["a", 1, 2.5, b"\x00\xff"])
    items = _items(as_eval(script, packed))
    assert items == [b"EVAL", script.script.encode(), b"2", b"k1", b"k2", b"a", b"1", b"2.5", b"\x00\xff"]
    with pytest.raises(ValueError):
        as_eval(broker.scripts.ack, packed)
