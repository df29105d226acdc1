"""The lean script-call path of one-call submits (store/leancall.py): the job is in Redis when the call returns;
a flushed script cache, a killed connection or a timed-out reply is recovered without any call reading
another's reply; error replies reach callers as our own errors; RESP2 and RESP3, TLS, a parser without
hiredis, threads and forked children all get the same."""
from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest
import redis
from redis._parsers import _RESP3Parser
from redis.backoff import NoBackoff
from redis.retry import Retry

from batchrun.errors import BrokerError, RedisUnavailable
from batchrun.ids import new_job_id
from batchrun.store.broker import Broker
from batchrun.store.connection import client_for
from batchrun.store.leancall import Wire
from tests.support.project import wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker(redis_url: str, namespace: str):
    client = client_for(redis_url)  # as every batchrun process builds it: retries a dropped connection
    yield Broker(client, namespace, result_ttl_s=60)
    client.close()


def _submit(broker: Broker, params: bytes = b'{"n": 1}', queue: str = "default") -> str:
    job_id = new_job_id()
    assert broker.enqueue(job_id, "noop", params, queue)
    return job_id


def _held(rclient: redis.Redis, job_id: str, broker: Broker, queue: str = "default") -> bool:
    return (rclient.hget(broker.keys.job(job_id), "state") == b"queued"
            and job_id.encode() in rclient.lrange(broker.keys.queue(queue), 0, -1))


def _wire(broker: Broker) -> Wire:
    """The connection the last call used (it is back among the idle ones)."""
    return broker.lean._idle[-1]


def _connection_id(broker: Broker) -> int:
    conn = _wire(broker).conn
    conn.send_command("CLIENT", "ID")
    return conn.read_response()


def test_the_job_is_in_redis_when_enqueue_returns(broker, rclient):
    job_id = _submit(broker)
    assert _held(rclient, job_id, broker)
    assert rclient.hget(broker.keys.job(job_id), "params") == b'{"n": 1}'
    assert _wire(broker).raw is not None, "the raw path was taken, not the fallback"


def test_a_call_larger_than_the_socket_buffer_is_sent_whole(broker, rclient):
    params = b'{"blob": "%s"}' % (b"0123456789abcdef" * 250_000)  # 4 MB: the first write takes only part
    job_id = _submit(broker, params)
    assert rclient.hget(broker.keys.job(job_id), "params") == params
    assert _held(rclient, _submit(broker), broker), "the connection is in step after it"


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
    rclient.script_flush()
    found, created = broker.enqueue_controlled(new_job_id(), "noop", b"{}", "default", unique_key="u1")
    assert created and _held(rclient, found, broker), "the generic path answers NOSCRIPT too"


def test_a_killed_connection_is_reopened_and_the_submit_lands(broker, rclient):
    _submit(broker)
    wire, killed = _wire(broker), _connection_id(broker)
    assert rclient.client_kill_filter(_id=killed) == 1
    job_id = _submit(broker)
    assert _held(rclient, job_id, broker)
    assert _wire(broker) is wire and _connection_id(broker) != killed, "the same held connection, reconnected"


def test_a_call_cut_off_by_a_timeout_drops_its_connection(redis_url, namespace, rclient):
    """A call that times out may still get its reply later; its connection is dropped, so no later call can
    take that reply for its own: the next call on the same id gets its own answer (the paused command
    went with the dropped connection, so the id is still free)."""
    client = client_for(redis_url, socket_timeout_s=0.2, retries=0)
    broker = Broker(client, namespace, result_ttl_s=60)
    try:
        _submit(broker)
        before = _connection_id(broker)
        job_id = new_job_id()
        rclient.client_pause(5000, all=False)  # writes wait, so the script does
        try:
            with pytest.raises(RedisUnavailable, match="Timeout"):
                broker.enqueue(job_id, "noop", b"{}", "default")
        finally:
            rclient.client_unpause()
        assert broker.enqueue(job_id, "noop", b"{}", "default") is True
        assert _held(rclient, job_id, broker) and _connection_id(broker) != before
    finally:
        client.close()


def test_an_error_reply_is_a_broker_error_and_the_connection_stays_in_use(broker, rclient):
    _submit(broker)
    connection = _connection_id(broker)
    rclient.set(broker.keys.queue("broken"), "not a list")
    with pytest.raises(BrokerError, match="Redis refused enqueue: .*WRONGTYPE"):
        _submit(broker, queue="broken")
    assert _held(rclient, _submit(broker), broker)
    assert _connection_id(broker) == connection, "an error reply does not drop the connection"


def test_an_unreachable_server_is_redis_unavailable_without_the_password(namespace):
    client = redis.Redis.from_url("redis://:s3cret-pw@127.0.0.1:1/0", socket_connect_timeout=1)
    broker = Broker(client, namespace)
    with pytest.raises(RedisUnavailable) as raised:
        _submit(broker)
    assert "s3cret-pw" not in str(raised.value)
    client.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_replies_of_every_shape_are_read_on_resp2_and_resp3(redis_url, namespace, rclient, protocol):
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    broker = Broker(client, namespace, result_ttl_s=60)
    try:
        job_id = _submit(broker)
        assert _wire(broker).conn.protocol in (protocol, str(protocol)) and _wire(broker).raw is not None
        assert broker.enqueue(job_id, "noop", b"{}", "default") is False
        first, created = broker.enqueue_controlled(new_job_id(), "noop", b"{}", "default", unique_key="u")
        twin, again = broker.enqueue_controlled(new_job_id(), "noop", b"{}", "default", unique_key="u")
        assert (created, again, twin) == (True, False, first), "a list reply, read whole"
        rclient.set(broker.keys.queue("broken"), "x")
        with pytest.raises(BrokerError, match="WRONGTYPE"):
            _submit(broker, queue="broken")
        assert _held(rclient, _submit(broker), broker)
    finally:
        client.close()


def test_a_parser_without_hiredis_takes_the_connection_s_own_send_and_read(redis_url, namespace, rclient):
    client = redis.Redis.from_url(redis_url, parser_class=_RESP3Parser, protocol=3, retry=Retry(NoBackoff(), 2))
    broker = Broker(client, namespace, result_ttl_s=60)
    try:
        job_id = _submit(broker)
        assert _wire(broker).raw is None and _held(rclient, job_id, broker)
        rclient.script_flush()
        assert _held(rclient, _submit(broker), broker)
        rclient.client_kill_filter(_id=_connection_id(broker))
        assert _held(rclient, _submit(broker), broker)
        rclient.set(broker.keys.queue("broken"), "x")
        with pytest.raises(BrokerError, match="WRONGTYPE"):
            _submit(broker, queue="broken")
    finally:
        client.close()


def test_submits_from_many_threads_all_land_each_with_its_own_params(broker, rclient):
    sent: dict[str, bytes] = {}
    lock = threading.Lock()

    def submit_some(thread: int) -> None:
        for n in range(100):
            params = b'{"thread": %d, "n": %d, "pad": "%s"}' % (thread, n, b"x" * (n * 37 % 3000))
            job_id = _submit(broker, params)
            with lock:
                sent[job_id] = params

    threads = [threading.Thread(target=submit_some, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(sent) == 600
    queued = {x.decode() for x in rclient.lrange(broker.keys.queue("default"), 0, -1)}
    assert queued == set(sent)
    with rclient.pipeline(transaction=False) as pipe:
        for job_id in sent:
            pipe.hget(broker.keys.job(job_id), "params")
        assert dict(zip(sent, pipe.execute())) == sent, "no call's bytes mixed with another's"
    assert 1 < len(broker.lean._idle) <= 6, "concurrent callers held connections of their own"


def _submit_in_child(broker: Broker, out: "multiprocessing.Queue[tuple[Any, ...]]") -> None:
    inherited = list(broker.lean._idle)
    job_id = _submit(broker)
    out.put((job_id, _connection_id(broker), _wire(broker) in inherited))


def test_a_forked_child_submits_on_its_own_connection(broker, rclient):
    parent_id = _submit(broker)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_submit_in_child, args=(broker, out))
    child.start()
    child_id, child_connection, reused = out.get(timeout=20)
    child.join(timeout=20)
    assert child.exitcode == 0
    assert not reused and child_connection != _connection_id(broker), "the child must not share the parent's socket"
    assert _held(rclient, child_id, broker)
    assert _held(rclient, _submit(broker), broker), "the parent's connection still works after the fork"
    assert _held(rclient, parent_id, broker)


def test_tls_sockets_take_the_lean_path_too(namespace, servers):
    server, ca = servers.tls()
    client = client_for(f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}")
    checker = server.client(ssl=True, ssl_ca_certs=str(ca))
    try:
        wait_for(lambda: _pings(checker), timeout=10, what="the TLS server")
        broker = Broker(client, namespace, result_ttl_s=60)
        assert _held(checker, _submit(broker), broker)
        assert _wire(broker).raw is not None and not _wire(broker).raw.plain
        checker.script_flush()
        checker.client_kill_filter(_id=_connection_id(broker))
        assert _held(checker, _submit(broker), broker)
    finally:
        client.close()
        checker.close()


def test_a_demoted_master_s_readonly_reply_makes_it_ask_the_sentinels(namespace, servers):
    """The held connection ends up on the replica (as on a master demoted under it): the READONLY reply
    drops it, and the retry's reconnect asks the Sentinel, which names the real master."""
    master, replica, sentinel = servers.sentinel_set()
    client = client_for(f"redis+sentinel://127.0.0.1:{sentinel.port}/main")
    try:
        broker = Broker(client, namespace, result_ttl_s=60)
        _submit(broker)
        conn = _wire(broker).conn
        conn.disconnect()
        conn.connect_to(("127.0.0.1", replica.port))
        _wire(broker).attach()
        job_id = _submit(broker)
        assert conn.port == master.port, "reconnected to the master the Sentinel names"
        assert _held(master.client(), job_id, broker)
        assert "errorstat_READONLY" in replica.client().info("errorstats"), "the replica refused the first try"
        direct = client_for(f"redis://127.0.0.1:{replica.port}/0")
        with pytest.raises(BrokerError, match="read only replica"):
            _submit(Broker(direct, namespace))  # not watched by Sentinels: the refusal is the caller's to see
        direct.close()
    finally:
        client.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
