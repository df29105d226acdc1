"""Bad input gets a clear error and changes nothing; a malformed message in Redis is dead-lettered."""
from __future__ import annotations

import orjson
import pytest


pytestmark = pytest.mark.timeout(60)


def _keys(project) -> set[bytes]:
    return set(project.redis.scan_iter(match=project.keys.pattern))


def test_submit_prints_an_id_that_show_reports_as_queued(project):
    result = project.cli("submit", "sleep", "-p", "seconds=0.5", "-p", "tag=x")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    shown = project.cli("show", job_id, "--json")
    info = orjson.loads(shown.stdout)
    assert info["state"] == "queued" and info["params"] == {"seconds": 0.5, "tag": "x"}


def test_submit_json_params_with_cli_override(project):
    result = project.cli("submit", "sleep", "--json", '{"seconds": 1, "tag": "a"}', "-p", "tag=b")
    assert result.returncode == 0, result.stderr
    assert project.job(result.stdout.strip())["params"] == {"seconds": 1.0, "tag": "b"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "no-such-job"], "unknown job 'no-such-job'"),
        (["submit", "sleep"], "seconds"),
        (["submit", "sleep", "-p", "seconds=abc"], "seconds"),
        (["submit", "sleep", "-p", "seconds=1", "-p", "colour=red"], "colour"),
        (["submit", "sleep", "-p", "seconds"], "expected name=value"),
        (["submit", "sleep", "--json", "[1, 2]"], "JSON object"),
        (["submit", "sleep", "--json", "{bad"], "not valid JSON"),
    ],
)
def test_bad_submits_are_refused_and_write_nothing(project, args, message):
    before = _keys(project)
    result = project.cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert _keys(project) == before


def test_oversized_payload_is_refused(make_project):
    project = make_project(max_payload="1KiB")
    before = _keys(project)
    result = project.cli("submit", "sleep", "-p", "seconds=1", "-p", "tag=" + "x" * 2000)
    assert result.returncode == 2
    assert "limit is 1024" in result.stderr
    assert _keys(project) == before


def test_show_unknown_job_id(project):
    result = project.cli("show", "0123456789abcdef01234567")
    assert result.returncode == 5
    assert "no job" in result.stderr


def test_jobs_lists_definitions_and_reports_every_invalid_file(project):
    (project.root / "jobs" / "bad1.yaml").write_text("name: bad1\nhandler: testjobs:noop\nqueue: nowhere\n")
    (project.root / "jobs" / "bad2.yaml").write_text("name: bad2\nhandler: [unclosed\n")
    result = project.cli("jobs")
    assert result.returncode == 3
    assert "noop" in result.stdout and "sleep" in result.stdout
    assert "bad1.yaml:3" in result.stderr and "queue" in result.stderr
    assert "bad2.yaml:3: invalid YAML" in result.stderr and "on line 2" in result.stderr


def test_garbage_pushed_into_a_queue_is_dead_lettered_and_the_worker_goes_on(project):
    project.redis.rpush(project.keys.queue("default"), b"\xff\x00garbage")
    project.redis.rpush(project.keys.queue("default"), b"not-a-job-id")
    good = project.submit("sleep", seconds=0.01, tag="after")
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=30) == 0
    assert project.state(good) == "succeeded"
    dead = project.client.inspector.dead_ids()
    assert len(dead) == 2
    errors = [project.job(i)["error"] for i in dead]
    assert all("malformed message" in e for e in errors)
    assert "crashed" not in project.supervisor_log()


@pytest.mark.timeout(30)
def test_a_queue_entry_that_is_not_a_job_id_is_dead_lettered_even_with_a_record(project):
    """Such an id could not be tracked in the supervisor's slots (fixed width), so it never runs."""
    odd = "a" + "\u00e9" * 12
    project.redis.hset(project.keys.job(odd), mapping={"job": "noop", "params": "{}", "queue": "default",
                                                      "state": "queued"})
    project.redis.rpush(project.keys.queue("default"), odd)
    good = project.submit("noop")
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=30) == 0
    assert project.state(good) == "succeeded"
    [dead] = project.client.inspector.dead_ids()
    assert "is not a job id" in project.job(dead)["error"]


def test_a_record_naming_an_unknown_job_or_bad_params_is_dead_lettered(project):
    unknown = project.submit("noop")
    project.redis.hset(project.keys.job(unknown), "job", "vanished-job")
    bad_params = project.submit("sleep", seconds=1.0)
    project.redis.hset(project.keys.job(bad_params), "params", b"{not json")
    wrong_type = project.submit("sleep", seconds=1.0)
    project.redis.hset(project.keys.job(wrong_type), "params", b'{"seconds": "soon"}')
    proc = project.supervise("--workers", "1", "--until-empty")
    assert proc.wait(timeout=30) == 0
    assert project.job(unknown)["state"] == "dead"
    assert "unknown job 'vanished-job'" in project.job(unknown)["error"]
    assert project.job(bad_params)["state"] == "dead"
    assert project.job(wrong_type)["state"] == "dead" and "seconds" in project.job(wrong_type)["error"]
    assert len(project.client.inspector.dead_ids()) == 3


def test_a_failing_handler_is_marked_failed_with_its_traceback(project):
    job_id = project.submit("fail", tag="f")
    project.supervise("--workers", "1", "--until-empty").wait(timeout=30)
    info = project.job(job_id)
    assert info["state"] == "failed"
    assert info["error"] == "RuntimeError: boom f"
    assert "Traceback" in info["traceback"] and "testjobs.py" in info["traceback"]
    assert project.client.inspector.dead_ids() == [job_id]
    shown = project.cli("show", job_id)
    assert "RuntimeError: boom f" in shown.stdout and "traceback:" in shown.stdout


def test_an_unserialisable_result_fails_the_job_clearly(project):
    job_id = project.submit("unserialisable")
    project.supervise("--workers", "1", "--until-empty").wait(timeout=30)
    assert project.job(job_id)["state"] == "failed"
    assert "not JSON-serialisable" in project.job(job_id)["error"]


def test_command_jobs_get_params_in_argv_and_their_exit_code_decides(project):
    ok = project.submit("echo", word="hello; rm -rf /")
    bad = project.submit("exit3")
    project.supervise("--workers", "1", "--until-empty").wait(timeout=30)
    assert project.job(ok)["result"] == {"exit_code": 0, "stdout": "hello; rm -rf /\n"}
    assert project.job(bad)["state"] == "failed"
    assert "exited with code 3" in project.job(bad)["error"]


def test_status_shows_queues_workers_and_counts(project):
    project.submit("sleep", seconds=0.01)
    project.submit("sleep-low", seconds=0.01)
    result = project.cli("status", "--json")
    status = orjson.loads(result.stdout)
    assert status["queues"] == {"high": 0, "default": 1, "low": 1}
    assert status["in_flight"] == 0 and status["dead"] == 0 and status["workers"] == []
    text = project.cli("status").stdout
    assert "default" in text and "dead-lettered: 0" in text
