"""Passwords in Redis URLs never reach output: not in errors, logs, status or events, whether the server
answers or not (see batchrun/definitions/urls.py)."""
from __future__ import annotations

import pytest

from batchrun.definitions.urls import parse_multi, redact
from tests.support.project import ProjectFactory, wait_for

pytestmark = pytest.mark.timeout(90)

SECRET = "s3cr3tpw"


@pytest.mark.parametrize("url, shown", [
    ("redis://admin:s3cr3tpw@127.0.0.1:1/0", "redis://admin:***@127.0.0.1:1/0"),
    ("rediss://:s3cr3tpw@h:6380", "rediss://:***@h:6380"),
    ("redis+sentinel://u:s3cr3tpw@a:1,b:2/main/0", "redis+sentinel://u:***@a:1,b:2/main/0"),
    ("redis+cluster://u:s3cr3tpw@a:1,b:2", "redis+cluster://u:***@a:1,b:2"),
    ("redis://h:1/0?password=s3cr3tpw&db=1", "redis://h:1/0?password=***&db=1"),
    ("redis://h:6379/0", "redis://h:6379/0"),
])
def test_redact_masks_the_password_and_keeps_the_rest(url, shown):
    assert redact(f"cannot reach Redis at {url}: refused") == f"cannot reach Redis at {shown}: refused"


def test_a_password_holding_at_and_slash_is_masked_whole():
    assert SECRET not in redact("at rediss://u:s3cr3tpw@x/y@h:1 now")
    assert parse_multi("redis+sentinel://u:p%40ss@a:1/main").password == "p@ss"


def test_a_malformed_sentinel_url_is_refused_without_its_password(project):
    result = project.cli("status", "--redis-url", f"redis+sentinel://u:{SECRET}@127.0.0.1:1")
    assert result.returncode == 3
    assert "/service_name" in result.stderr and SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [["status"], ["submit", "noop"], ["supervise", "--until-empty"]])
def test_no_command_shows_the_password_when_redis_is_unreachable(tmp_path, command):
    factory = ProjectFactory(tmp_path, f"redis://admin:{SECRET}@127.0.0.1:1/0")
    try:
        result = factory().cli(*command)
    finally:
        factory.cleanup()
    assert result.returncode == 4, result.stderr
    assert "cannot reach Redis at redis://admin:***@127.0.0.1:1/0" in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("auth", [("--requirepass", SECRET), ("--user", "admin", "on", f">{SECRET}", "~*", "&*",
                                                              "+@all", "--user", "default", "off")])
def test_no_output_or_log_shows_the_password_of_a_real_server(tmp_path, servers, auth):
    """requirepass (default user) and an ACL user; supervisor logs at debug level, as JSON."""
    user = "admin" if "--user" in auth else ""
    server = servers.redis(*auth, username=user or None, password=SECRET)
    factory = ProjectFactory(tmp_path, f"redis://{user}:{SECRET}@127.0.0.1:{server.port}/0")
    try:
        project = factory(log_level="debug", log_format="json")
        job_id = project.submit("noop")
        supervisor = project.supervise("--workers", "1", "--until-empty")
        assert supervisor.wait(timeout=60) == 0, project.supervisor_log()
        assert project.state(job_id) == "succeeded"
        outputs = [project.supervisor_log()]
        for command in (["status"], ["status", "--json"], ["submit", "noop"], ["events", "--json"], ["show", job_id]):
            result = project.cli(*command)
            assert result.returncode == 0, result.stderr
            outputs += [result.stdout, result.stderr]
        wrong = project.cli("status", "--redis-url", f"redis://{user}:{SECRET}x@127.0.0.1:{server.port}/0")
        assert wrong.returncode != 0
        outputs += [wrong.stdout, wrong.stderr]
    finally:
        factory.cleanup()
    assert not [text for text in outputs if SECRET in text]
