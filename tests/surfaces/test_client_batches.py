"""client.map and Batch against the real server: a fake worker ends jobs, so each test controls when."""
from __future__ import annotations

import pytest

from batchrun.errors import JobNotFound, SubmitError, WaitTimeout
from batchrun.store.broker import Failure
from batchrun.surfaces.client import Client

pytestmark = pytest.mark.timeout(30)


def _run_all(client: Client, fail: set[int] = frozenset(), worker: str = "w1") -> None:
    """Take every queued job; succeed each with {"n": n} as result, or fail those whose n is in `fail`."""
    client.broker.register_worker(worker, 10.0, {"host": "test", "pid": 1})
    while taken := client.broker.fetch(worker, client.settings.queues, 50):
        for job in taken:
            n = client.job(job.id)["params"].get("n", -1)
            if n in fail:
                client.broker.fail(worker, job.id, Failure("final", f"bad {n}"))
            else:
                client.broker.ack(worker, [(job.raw_id, f'{{"n": {n}}}'.encode())])


def test_map_returns_a_batch_whose_results_follow_input_order(project):
    client = project.client
    batch = client.map("square", ({"n": n} for n in range(2500)))
    assert batch.progress()["total"] == 2500 and batch.progress()["pending"] == 2500
    _run_all(client, fail={7})
    info = batch.wait(timeout_s=5)
    assert info["counts"] == {"succeeded": 2499, "failed": 1, "dead": 0, "cancelled": 0}
    results = list(batch.results())
    assert [r["index"] for r in results] == list(range(2500))
    assert [r["result"]["n"] for r in results if r["state"] == "succeeded"] == [n for n in range(2500) if n != 7]
    assert results[7] == {"index": 7, "id": results[7]["id"], "state": "failed", "error": "bad 7"}


def test_a_bad_input_names_its_index_and_queues_nothing(project):
    client = project.client
    with pytest.raises(SubmitError, match=r"input 3: job 'square': missing required param 'n'"):
        client.map("square", [{"n": 1}, {"n": 2}, {"n": 3}, {}])
    assert client.status()["queues"]["default"] == 0
    assert client.batches.recent(10) == []


def test_an_empty_map_is_refused(project):
    with pytest.raises(SubmitError, match="no inputs"):
        project.client.map("square", [])


def test_wait_times_out_and_an_unknown_batch_is_not_found(project):
    batch = project.client.map("square", [{"n": 1}])
    with pytest.raises(WaitTimeout):
        batch.wait(timeout_s=0.1)
    assert [(r["state"], r["error"]) for r in batch.results()] == [("queued", None)]
    with pytest.raises(JobNotFound):
        project.client.batch("0123456789abcdef")


def test_cancel_stops_waiting_jobs_and_asks_running_ones(project):
    client = project.client
    batch = client.map("square", [{"n": n} for n in range(4)])
    client.broker.register_worker("w1", 10.0, {"host": "test", "pid": 1})
    client.broker.fetch("w1", client.settings.queues, 1)
    assert batch.cancel() == {"cancelling": 1, "cancelled": 3}
    assert batch.progress()["counts"]["cancelled"] == 3 and batch.progress()["state"] == "running"


def test_an_unknown_on_complete_job_is_refused_before_anything_is_queued(project):
    with pytest.raises(SubmitError, match="unknown job 'nope'"):
        project.client.map("square", [{"n": 1}], on_complete="nope")
    assert project.client.batches.recent(10) == []
