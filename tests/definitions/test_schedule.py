"""Schedules, unique and concurrency in job files: the three forms, due times, and every bad input
named by file, line and field."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from batchrun.definitions.registry import load_registry

QUEUES = ("high", "default", "low")
HEAD = "handler: m:f\nparams:\n  n: {type: int, default: 1}\n"


def _load(tmp_path, body: str, name: str = "job"):
    folder = tmp_path / "jobs"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(HEAD + body)
    return load_registry(folder, QUEUES)


def _error(tmp_path, body: str) -> str:
    registry = _load(tmp_path, body)
    assert len(registry.errors) == 1, registry.errors
    return str(registry.errors[0])


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.timeout(10)
def test_the_three_forms(tmp_path):
    registry = _load(tmp_path, 'schedule: "0 3 * * *"\n', "a")
    _load(tmp_path, "schedule: {every: 10m, params: {n: 5}, timezone: Europe/Paris, misfire: skip}\n", "b")
    registry = _load(tmp_path, "schedule:\n  - cron: '*/5 * * * *'\n  - every: 30s\n", "c")
    (a,) = registry.get("a").schedules
    assert (a.id, a.cron, a.every_s, a.timezone, a.misfire, dict(a.params)) == ("a#0", "0 3 * * *", None, "UTC",
                                                                                "once", {"n": 1})
    (b,) = registry.get("b").schedules
    assert (b.every_s, b.timezone, b.misfire, dict(b.params)) == (600, "Europe/Paris", "skip", {"n": 5})
    assert [s.id for s in registry.get("c").schedules] == ["c#0", "c#1"]
    assert registry.get("c").schedules[1].expression == "every 30s"


@pytest.mark.timeout(10)
def test_due_times_do_not_depend_on_when_they_are_asked(tmp_path):
    (every,) = _load(tmp_path, "schedule: {every: 10m}\n").get("job").schedules
    t = _at("2026-12-01T03:07:30+00:00")
    assert every.next_after(t) == _at("2026-12-01T03:10:00+00:00")
    assert every.latest_at_or_before(t) == _at("2026-12-01T03:00:00+00:00")
    assert every.next_after(_at("2026-12-01T03:10:00+00:00")) == _at("2026-12-01T03:20:00+00:00")


@pytest.mark.timeout(10)
def test_cron_in_a_time_zone_across_daylight_saving(tmp_path):
    (cron,) = _load(tmp_path, "schedule: {cron: '0 3 * * *', timezone: Europe/Paris}\n").get("job").schedules
    paris = ZoneInfo("Europe/Paris")
    before = datetime(2026, 3, 27, 12, 0, tzinfo=paris).timestamp()
    first = cron.next_after(before)
    second = cron.next_after(first)
    assert datetime.fromtimestamp(first, paris).hour == datetime.fromtimestamp(second, paris).hour == 3
    assert second - first == 23 * 3600          # the night the clocks go forward is an hour short
    assert cron.latest_at_or_before(first) == first
    assert cron.latest_at_or_before(first - 1) == first - 86400
    utc = datetime.fromtimestamp(first, timezone.utc)
    assert utc.hour == 2


@pytest.mark.timeout(10)
@pytest.mark.parametrize("body, where, words", [
    ('schedule: "61 * * * *"\n', "jobs/job.yaml:4: schedule.cron", "bad cron expression '61 * * * *'"),
    ('schedule: "* * * *"\n', "jobs/job.yaml:4: schedule.cron", "5 fields"),
    ("schedule: {every: 0s}\n", "jobs/job.yaml:4: schedule.every", "greater than zero"),
    ("schedule: {every: 1m, timezone: Mars/Olympus}\n", "jobs/job.yaml:4: schedule.timezone", "unknown time zone"),
    ("schedule: {every: 1m, params: {n: x}}\n", "jobs/job.yaml:4: schedule.params", "param 'n'"),
    ("schedule: {every: 1m, params: {m: 1}}\n", "jobs/job.yaml:4: schedule.params", "'m'"),
    ("schedule: {cron: '* * * * *', every: 1m}\n", "jobs/job.yaml:4: schedule", "exactly one of 'cron' and 'every'"),
    ("schedule: {every: 1m, misfire: twice}\n", "jobs/job.yaml:4: schedule.misfire", "unknown misfire policy"),
    ("schedule:\n  - every: 1m\n  - cron: '0 0 32 * *'\n", "jobs/job.yaml:6: schedule[1].cron", "bad cron"),
    ("schedule: 5\n", "jobs/job.yaml:4: schedule", "expected a cron string"),
    ("concurrency: 0\n", "jobs/job.yaml:4: concurrency", ">= 1"),
    ("unique: yes please\n", "jobs/job.yaml:4: unique", "true or false"),
])
def test_bad_input_names_file_line_and_field(tmp_path, monkeypatch, body, where, words):
    monkeypatch.chdir(tmp_path)
    message = _error(tmp_path, body)
    assert message.startswith(where), message
    assert words in message


@pytest.mark.timeout(10)
def test_unique_key_is_the_job_and_its_canonical_params(tmp_path):
    definition = _load(tmp_path, "unique: true\nconcurrency: 2\n").get("job")
    assert definition.concurrency == 2
    key = definition.unique_key({"n": 1, "a": [1, 2]})
    assert key == definition.unique_key({"a": [1, 2], "n": 1})
    assert key != definition.unique_key({"n": 2, "a": [1, 2]})
    assert key.startswith("job:")
    plain = _load(tmp_path, "", "plain").get("plain")
    assert plain.unique_key({"n": 1}) == "" and plain.concurrency is None
