"""Schedules under real supervisors: each due time fires once whatever the number of supervisors,
supervisors killed around a due time, misfire after downtime, and --until-empty."""
from __future__ import annotations

import math
import signal
import time

import orjson
import pytest

from tests.support.project import wait_for


def _scheduled(project, name: str, schedule: str) -> None:
    (project.root / "jobs" / f"{name}.yaml").write_text(
        f"name: {name}\nhandler: testjobs:sleep\nqueue: default\n"
        "params:\n  seconds: {type: float, default: 0}\n  tag: {type: str, default: ''}\n"
        f"schedule: {schedule}\n")


def _fires(project, name: str) -> list[float]:
    """Due times of the fires of a job's first schedule, from the events, in order."""
    return [float(e["detail"].split(" due ")[1].split(";")[0]) for e in project.client.events.history(5000)
            if e["event"] == "fired" and e["job"] == name]


@pytest.mark.timeout(60)
def test_two_supervisors_fire_each_due_time_once(make_project):
    project = make_project()
    _scheduled(project, "tick", "{every: 1s, params: {tag: tick}}")
    project.supervise("--workers", "1", host="a")
    project.supervise("--workers", "1", host="b")
    wait_for(lambda: len(_fires(project, "tick")) >= 6, timeout=30, what="six fires")
    fires = _fires(project, "tick")
    assert len(fires) == len(set(fires)), fires
    gaps = [b - a for a, b in zip(fires, fires[1:])]
    assert all(gap >= 1 and gap == int(gap) for gap in gaps), fires
    assert sum(gap > 1 for gap in gaps) <= 1, f"fires skipped seconds (a supervisor late over 1 s?): {fires}"
    wait_for(lambda: len(project.tags_run("end")) >= len(fires), what="the fired jobs to run")


@pytest.mark.timeout(60)
def test_supervisors_killed_around_due_times_never_fire_twice(make_project):
    project = make_project()
    _scheduled(project, "tick", "{every: 1s, params: {tag: tick}}")
    other = project.supervise("--workers", "1", host="b")
    for round_ in range(3):
        sup = project.supervise("--workers", "1", host="a")
        count = len(_fires(project, "tick"))
        wait_for(lambda: len(_fires(project, "tick")) >= count + 2, timeout=20, what="two more fires")
        sup.send_signal(signal.SIGKILL)
        sup.wait(timeout=10)
    other.send_signal(signal.SIGKILL)
    other.wait(timeout=10)
    fires = _fires(project, "tick")
    assert len(fires) == len(set(fires)), fires
    assert fires == sorted(fires)


def _handled_long_ago(project, schedule_id: str, period_s: float, periods: int) -> float:
    """Pretend every supervisor was down: the schedule was last handled `periods` due times ago. Away from
    a due time, so that none comes while the test runs."""
    wait_for(lambda: 5 < time.time() % period_s < period_s - 20, timeout=30, what="a moment between due times")
    latest = math.floor(time.time() / period_s) * period_s
    project.redis.hset(project.keys.schedules, schedule_id, repr(latest - periods * period_s))
    return latest


@pytest.mark.timeout(90)
def test_misfire_once_runs_the_missed_time_once_and_until_empty_waits_for_it(make_project):
    project = make_project()
    _scheduled(project, "hourly", "{every: 1h, params: {tag: hourly}}")
    _scheduled(project, "later", "{cron: '0 0 1 1 *'}")
    latest = _handled_long_ago(project, "hourly#0", 3600, 5)
    sup = project.supervise("--workers", "1", "--until-empty")
    assert sup.wait(timeout=30) == 0
    assert _fires(project, "hourly") == [latest]
    assert project.tags_run("end") == ["hourly"]
    assert _fires(project, "later") == []
    again = project.supervise("--workers", "1", "--until-empty")
    assert again.wait(timeout=30) == 0
    assert _fires(project, "hourly") == [latest]


@pytest.mark.timeout(90)
def test_misfire_skip_runs_nothing_for_missed_times(make_project):
    project = make_project()
    _scheduled(project, "hourly", "{every: 1h, misfire: skip, params: {tag: hourly}}")
    _handled_long_ago(project, "hourly#0", 3600, 5)
    sup = project.supervise("--workers", "1", "--until-empty")
    assert sup.wait(timeout=30) == 0
    assert _fires(project, "hourly") == []
    assert project.tags_run() == []
    assert "missed; skipped" in project.supervisor_log()


@pytest.mark.timeout(60)
def test_schedules_command_lists_job_expression_timezone_last_and_next_fire(make_project):
    project = make_project()
    _scheduled(project, "tick", "{every: 1s, params: {tag: tick}}")
    _scheduled(project, "nightly", "{cron: '0 3 * * *', timezone: Europe/Paris}")
    before = project.cli("schedules", "--json")
    assert before.returncode == 0, before.stderr
    listed = {s["job"]: s for s in orjson.loads(before.stdout)}
    assert listed["nightly"]["expression"] == "0 3 * * *"
    assert listed["nightly"]["timezone"] == "Europe/Paris"
    assert listed["nightly"]["last_fire"] is None and listed["nightly"]["next_fire"] > time.time()
    project.supervise("--workers", "1")
    wait_for(lambda: _fires(project, "tick"), what="a fire")
    after = {s["job"]: s for s in orjson.loads(project.cli("schedules", "--json").stdout)}
    assert after["tick"]["last_fire"] is not None and after["tick"]["last_job"]
    text = project.cli("schedules").stdout
    assert "nightly" in text and "every 1s" in text and "never" in text
