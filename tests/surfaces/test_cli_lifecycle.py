"""The lifecycle commands of the CLI, run as a user would: submit --delay/--at, cancel, wait, events,
dead, requeue and purge, against the session's Redis and, where jobs must run, a real supervisor."""
from __future__ import annotations

import queue
import subprocess
import sys
import threading

import orjson
import pytest

from batchrun.errors import ExitCode
from tests.support.project import wait_for


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == ExitCode.OK, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def _submit(project, *args: str) -> str:
    return _ok(project.cli("submit", *args)).strip()


def _show(project, job_id: str) -> dict:
    return orjson.loads(_ok(project.cli("show", job_id, "--json")))


def _drain(project) -> None:
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=20) == 0


def _dead_jobs(project, count: int) -> list[str]:
    """`count` jobs that failed for good (fail has no retries), dead-lettered by a real supervisor."""
    ids = [project.submit("fail", tag=f"d{i}") for i in range(count)]
    _drain(project)
    assert [project.state(j) for j in ids] == ["failed"] * count
    return ids


# --- submit, cancel ----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_delayed_submit_can_be_cancelled_once(project):
    job_id = _submit(project, "sleep", "-p", "seconds=0", "--delay", "90s")
    info = _show(project, job_id)
    assert info["state"] == "scheduled"
    assert 89 < info["due_at"] - info["enqueued_at"] <= 90.01
    assert "scheduled" in _ok(project.cli("show", job_id))
    cancelled = project.cli("cancel", job_id)
    assert cancelled.returncode == ExitCode.OK, cancelled.stderr
    assert f"{job_id}: cancelled" in cancelled.stdout
    assert _show(project, job_id)["state"] == "cancelled"
    assert project.client.inspector.scheduled_count() == 0


@pytest.mark.timeout(30)
def test_cancelling_a_cancelled_job_again_says_it_already_ended(project):
    job_id = _submit(project, "noop", "--delay", "90s")
    assert project.cli("cancel", job_id).returncode == ExitCode.OK
    again = project.cli("cancel", job_id)
    assert "already ended (cancelled)" in again.stdout
    assert again.returncode == ExitCode.FAILURE


@pytest.mark.timeout(30)
def test_cancelling_a_finished_job_says_it_already_ended(project):
    job_id = project.submit("noop")
    _drain(project)
    result = project.cli("cancel", job_id)
    assert result.returncode == ExitCode.FAILURE
    assert f"{job_id}: already ended (succeeded)" in result.stdout
    assert project.state(job_id) == "succeeded"


@pytest.mark.timeout(30)
def test_cancel_of_an_unknown_job_is_not_found(project):
    result = project.cli("cancel", "no-such-job")
    assert result.returncode == ExitCode.NOT_FOUND
    assert "no job 'no-such-job'" in result.stderr


@pytest.mark.timeout(30)
def test_submit_at_a_past_time_runs_at_once(project):
    job_id = _submit(project, "sleep", "-p", "seconds=0", "-p", "tag=past", "--at", "2000-01-01T00:00:00Z")
    info = _show(project, job_id)
    assert info["state"] == "queued" and "due_at" not in info
    assert project.client.inspector.scheduled_count() == 0
    project.supervise("--workers", "1")
    assert project.client.wait([job_id], 15) == {job_id: "succeeded"}
    assert project.tags_run() == ["past"]


@pytest.mark.timeout(30)
def test_submit_at_a_future_time_is_scheduled_then(project):
    job_id = _submit(project, "noop", "--at", "2999-01-01T00:00:00+02:00")
    info = _show(project, job_id)
    assert info["state"] == "scheduled"
    assert info["due_at"] == 32472136800.0  # 2998-12-31T22:00:00Z


@pytest.mark.timeout(30)
def test_submit_at_without_a_time_zone_is_refused(project):
    result = project.cli("submit", "noop", "--at", "2030-01-01T00:00:00")
    assert result.returncode == ExitCode.USAGE
    assert "no time zone" in result.stderr and "Z or +02:00" in result.stderr
    assert project.client.status()["scheduled"] == 0 and project.client.events.history(10) == []


@pytest.mark.timeout(30)
def test_submit_at_that_is_not_a_time_is_refused(project):
    result = project.cli("submit", "noop", "--at", "tomorrow")
    assert result.returncode == ExitCode.USAGE
    assert "--at: expected an ISO 8601 time" in result.stderr


@pytest.mark.timeout(30)
def test_submit_with_both_delay_and_at_is_a_usage_error(project):
    result = project.cli("submit", "noop", "--delay", "5s", "--at", "2030-01-01T00:00:00Z")
    assert result.returncode == ExitCode.USAGE
    assert "not allowed with argument" in result.stderr
    assert project.client.events.history(10) == []


@pytest.mark.timeout(30)
def test_submit_with_a_bad_delay_is_a_usage_error(project):
    result = project.cli("submit", "noop", "--delay", "soon")
    assert result.returncode == ExitCode.USAGE
    assert "--delay" in result.stderr
    assert project.client.events.history(10) == []


# --- wait ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_wait_exit_codes_follow_the_outcome(project):
    good = project.submit("sleep", seconds=0, tag="good")
    bad = project.submit("fail", tag="bad")
    project.supervise("--workers", "2")
    result = project.cli("wait", good)
    assert result.returncode == ExitCode.OK
    assert result.stdout.split() == [good, "succeeded"]
    result = project.cli("wait", good, bad)
    assert result.returncode == ExitCode.FAILURE
    assert sorted(line.split() for line in result.stdout.splitlines()) == sorted([[good, "succeeded"],
                                                                                  [bad, "failed"]])


@pytest.mark.timeout(30)
def test_wait_times_out_on_a_job_nobody_runs(project):
    job_id = project.submit("hang", tag="never")
    result = project.cli("wait", job_id, "--timeout", "1s")
    assert result.returncode == ExitCode.TIMEOUT
    assert result.stdout.split() == [job_id, "queued"]
    assert "1 of 1 jobs not finished" in result.stderr


@pytest.mark.timeout(30)
def test_wait_for_an_unknown_job_is_not_found(project):
    known = project.submit("noop")
    result = project.cli("wait", known, "no-such-job", "--timeout", "5s")
    assert result.returncode == ExitCode.NOT_FOUND
    assert "no-such-job" in result.stderr


@pytest.mark.timeout(30)
def test_wait_with_a_bad_timeout_is_a_usage_error(project):
    result = project.cli("wait", project.submit("noop"), "--timeout", "soon")
    assert result.returncode == ExitCode.USAGE
    assert "--timeout" in result.stderr


# --- events --------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_events_count_prints_the_latest_events_oldest_first(project):
    ids = [project.submit("noop") for _ in range(5)]
    lines = _ok(project.cli("events", "--count", "3")).splitlines()
    assert len(lines) == 3
    assert [line.split()[2] for line in lines] == ids[2:]
    assert all(line.split()[1] == "queued" for line in lines)
    assert len(_ok(project.cli("events")).splitlines()) == 5


@pytest.mark.timeout(30)
def test_events_json_lines_carry_id_event_job_and_time(project):
    first = project.submit("noop")
    later = project.client.submit_params("noop", {}, delay=60)
    events = [orjson.loads(line) for line in _ok(project.cli("events", "--json")).splitlines()]
    assert [(e["id"], e["event"], e["job"]) for e in events] == [(first, "queued", "noop"),
                                                                 (later, "scheduled", "noop")]
    assert all({"id", "event", "job", "ts"} <= set(e) for e in events)
    assert all(isinstance(e["ts"], float) for e in events)
    assert events[0]["ts"] <= events[1]["ts"]
    assert float(events[1]["detail"]) == pytest.approx(events[1]["ts"] + 60, abs=0.01)


@pytest.mark.timeout(30)
def test_events_follow_prints_new_events_as_they_happen(project):
    before = project.submit("noop")
    follower = subprocess.Popen([sys.executable, "-m", "batchrun", "events", "--follow"], cwd=project.root,
                                env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
    seen: list[str] = []

    def saw(job_id: str, event: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(line.split()[1:3] == [event, job_id] for line in seen)

    try:
        wait_for(lambda: saw(before, "queued"), timeout=15, what="the history before following")
        after = project.submit("noop")
        wait_for(lambda: saw(after, "queued"), timeout=15, what="the new job's queued event")
        project.supervise("--workers", "1")
        wait_for(lambda: saw(after, "succeeded"), timeout=15, what="the new job's succeeded event")
        assert follower.poll() is None, "--follow keeps running"
    finally:
        follower.kill()
        follower.wait(timeout=10)
    assert sum(1 for line in seen if line.split()[1:3] == ["queued", after]) == 1


# --- dead, requeue, purge --------------------------------------------------------------


@pytest.mark.timeout(30)
def test_dead_lists_failed_jobs_with_their_error(project):
    assert "empty" in _ok(project.cli("dead"))
    [job_id] = _dead_jobs(project, 1)
    [line] = _ok(project.cli("dead")).splitlines()
    assert line.startswith(job_id) and "fail" in line and "failed" in line and "RuntimeError: boom d0" in line
    [entry] = orjson.loads(_ok(project.cli("dead", "--json")))
    assert entry["id"] == job_id and entry["state"] == "failed" and entry["error"] == "RuntimeError: boom d0"


@pytest.mark.timeout(30)
def test_requeue_puts_a_dead_job_back_with_its_counters_reset(project):
    dead, other = _dead_jobs(project, 2)
    result = project.cli("requeue", dead)
    assert result.returncode == ExitCode.OK
    assert result.stdout.strip() == f"{dead}: requeued"
    info = _show(project, dead)
    assert info["state"] == "queued"
    assert (info["attempts"], info["failures"], info["crashes"]) == (0, 0, 0)
    assert "error" not in info
    assert project.client.inspector.dead_ids() == [other]
    assert project.redis.lrange(project.keys.queue("default"), 0, -1) == [dead.encode()]
    again = project.cli("requeue", dead)
    assert again.returncode == ExitCode.FAILURE
    assert "not in the dead-letter list" in again.stdout


@pytest.mark.timeout(30)
def test_requeue_all_empties_the_dead_letter_list(project):
    ids = _dead_jobs(project, 3)
    result = project.cli("requeue", "--all")
    assert result.returncode == ExitCode.OK
    assert "requeued 3 jobs" in result.stdout
    assert project.client.inspector.dead_ids() == []
    assert [project.state(j) for j in ids] == ["queued"] * 3
    _drain(project)
    assert [project.state(j) for j in ids] == ["failed"] * 3, "requeued jobs ran again"
    assert sorted(project.tags_run()) == sorted(["d0", "d1", "d2"] * 2)


@pytest.mark.timeout(30)
def test_requeue_needs_ids_or_all_but_not_both(project):
    neither = project.cli("requeue")
    assert neither.returncode == ExitCode.USAGE
    assert "give job ids or --all" in neither.stderr
    both = project.cli("requeue", "some-id", "--all")
    assert both.returncode == ExitCode.USAGE


@pytest.mark.timeout(30)
def test_purge_without_yes_and_no_terminal_refuses_and_deletes_nothing(project):
    ids = _dead_jobs(project, 2)
    result = subprocess.run([sys.executable, "-m", "batchrun", "purge", "--dead"], cwd=project.root,
                            env=project.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode != ExitCode.OK
    assert "refusing to purge without confirmation" in result.stderr and "--yes" in result.stderr
    assert project.client.inspector.dead_ids() == ids
    assert [project.state(j) for j in ids] == ["failed", "failed"]


@pytest.mark.timeout(30)
def test_purge_with_yes_deletes_dead_jobs_and_their_records(project):
    ids = _dead_jobs(project, 2)
    keep = project.submit("noop")
    result = project.cli("purge", "--dead", "--yes")
    assert result.returncode == ExitCode.OK
    assert "deleted 2 dead-lettered jobs" in result.stdout
    assert project.client.inspector.dead_ids() == []
    for job_id in ids:
        assert project.cli("show", job_id).returncode == ExitCode.NOT_FOUND
    assert project.state(keep) == "queued"


@pytest.mark.timeout(30)
def test_purge_without_what_is_a_usage_error(project):
    result = project.cli("purge", "--yes")
    assert result.returncode == ExitCode.USAGE
    assert "--dead" in result.stderr
