"""The CLI of schedules and flow control: refusals with file, line and field, and what `events` shows of a fire."""
from __future__ import annotations

import pytest

from batchrun.surfaces import render


@pytest.mark.timeout(60)
def test_supervise_refuses_to_start_with_a_bad_schedule(project):
    (project.root / "jobs" / "nightly.yaml").write_text(
        "name: nightly\nhandler: testjobs:noop\nschedule:\n  cron: '61 * * * *'\n  timezone: UTC\n")
    result = project.cli("supervise", "--workers", "1", "--until-empty")
    assert result.returncode == 3
    assert "jobs/nightly.yaml:4: schedule.cron: bad cron expression '61 * * * *'" in result.stderr
    assert project.client.status()["workers"] == []


@pytest.mark.timeout(60)
def test_a_unique_submit_prints_the_same_id_and_says_already_queued(project):
    (project.root / "jobs" / "once.yaml").write_text(
        "name: once\nhandler: testjobs:noop\nunique: true\nparams:\n  n: {type: int, default: 1}\n")
    first = project.cli("submit", "once", "-p", "n=2")
    again = project.cli("submit", "once", "--json", '{"n": 2}')
    other = project.cli("submit", "once")
    assert (first.returncode, again.returncode, other.returncode) == (0, 0, 0)
    assert first.stdout == again.stdout and other.stdout != first.stdout
    assert "already queued" in again.stderr and "already queued" not in first.stderr + other.stderr


@pytest.mark.timeout(10)
def test_a_fire_event_shows_its_due_time():
    line = render.event({"ts": 1796095217.5, "event": "fired", "id": "x", "job": "tick",
                         "detail": "tick#0 due 1796095217.0"})
    assert "tick#0 due 2026-12-01T03:20:17.000+00:00" in line
