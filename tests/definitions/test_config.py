from pathlib import Path

import pytest

from batchrun.definitions.config import load_settings
from batchrun.definitions.yamlfile import load
from batchrun.errors import ConfigError, ConfigErrors

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path):
    """A project folder with a writer for its config file; settings load with an empty environment."""
    def write(text: str, name: str = "configs/batchrun.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
    write.root = tmp_path
    return write


def settings(project, **kwargs):
    kwargs.setdefault("env", {})
    return load_settings(cwd=project.root, **kwargs)


def test_defaults_without_config_file(project):
    s = settings(project)
    assert s.redis_url is None
    assert s.namespace == "default"
    assert s.queues == ("high", "default", "low")
    assert s.workers is None
    assert (s.heartbeat_interval_s, s.heartbeat_ttl_s, s.grace_period_s) == (2.0, 10.0, 30.0)
    assert s.crash_limit == 3
    assert s.result_ttl_s == 7 * 86400
    assert s.max_payload_bytes == 1024 * 1024
    assert (s.memory_limit_bytes, s.max_jobs_per_worker, s.max_worker_memory_bytes) == (None, None, None)
    assert (s.max_result_bytes, s.event_history) == (1024 * 1024, 10000)
    assert (s.timeout_grace_s, s.promote_interval_s) == (2.0, 0.2)
    assert (s.log_format, s.log_level, s.appendfsync) == ("text", "info", "everysec")
    assert s.jobs_dir == project.root / "jobs"
    assert s.project_dir == project.root
    assert s.state_dir == project.root / ".batchrun"


def test_repo_config_file_is_valid_and_matches_defaults(project):
    from_repo = load_settings(REPO / "configs/batchrun.yaml", cwd=project.root, env={})
    assert from_repo == settings(project)


def test_file_values_are_parsed(project):
    project("""
redis_url: redis://db:6379/2
namespace: staging.v2
state_dir: var/state
queues: [urgent, bulk]
workers: 4
heartbeat_interval: 500ms
heartbeat_ttl: 3s
grace_period: 1m
crash_limit: 5
result_ttl: 2h
max_payload: 64KiB
memory_limit: 2GiB
max_jobs_per_worker: 500
max_worker_memory: 1.5GiB
max_result: 10MB
event_history: 0
timeout_grace: 0s
promote_interval: 1s
log_format: JSON
log_level: debug
appendfsync: no
""")
    s = settings(project, jobs_dir=Path("app/jobs"))
    assert s.redis_url == "redis://db:6379/2"
    assert s.namespace == "staging.v2"
    assert s.queues == ("urgent", "bulk")
    assert s.workers == 4
    assert (s.heartbeat_interval_s, s.heartbeat_ttl_s, s.grace_period_s) == (0.5, 3.0, 60.0)
    assert (s.crash_limit, s.result_ttl_s, s.max_payload_bytes) == (5, 7200.0, 65536)
    assert (s.memory_limit_bytes, s.max_jobs_per_worker, s.max_worker_memory_bytes) == (2 * 2**30, 500, 3 * 2**29)
    assert (s.max_result_bytes, s.event_history) == (10**7, 0)
    assert (s.timeout_grace_s, s.promote_interval_s) == (0.0, 1.0)
    assert (s.log_format, s.log_level, s.appendfsync) == ("json", "debug", "no")
    assert s.jobs_dir == project.root / "app/jobs"
    assert s.project_dir == project.root / "app"
    assert s.state_dir == project.root / "app/var/state"


def test_precedence_defaults_file_env_overrides(project):
    project("namespace: from-file\nworkers: 2\nlog_level: warning\ngrace_period: 5s\n")
    env = {"BATCHRUN_NAMESPACE": "from-env", "BATCHRUN_WORKERS": "3", "BATCHRUN_QUEUES": "a, b"}
    s = settings(project, env=env, overrides={"namespace": "from-flag", "workers": None})
    assert s.namespace == "from-flag"      # flag beats env and file
    assert s.workers == 3                  # env beats file; a None flag is ignored
    assert s.queues == ("a", "b")          # env beats default
    assert s.log_level == "warning"        # file beats default
    assert s.grace_period_s == 5.0
    assert s.crash_limit == 3              # default


def test_empty_env_redis_url_means_unset(project):
    project("redis_url: redis://file:6379\n")
    assert settings(project, env={"BATCHRUN_REDIS_URL": ""}).redis_url == "redis://file:6379"
    assert settings(project, env={"BATCHRUN_REDIS_URL": "redis://env"}).redis_url == "redis://env"


def test_limits_from_env(project):
    env = {"BATCHRUN_MEMORY_LIMIT": "256MiB", "BATCHRUN_MAX_JOBS_PER_WORKER": "100",
           "BATCHRUN_MAX_WORKER_MEMORY": "1GiB", "BATCHRUN_MAX_RESULT": "4KiB", "BATCHRUN_EVENT_HISTORY": "50",
           "BATCHRUN_TIMEOUT_GRACE": "5", "BATCHRUN_PROMOTE_INTERVAL": "50ms"}
    s = settings(project, env=env)
    assert (s.memory_limit_bytes, s.max_jobs_per_worker, s.max_worker_memory_bytes) == (2**28, 100, 2**30)
    assert (s.max_result_bytes, s.event_history) == (4096, 50)
    assert (s.timeout_grace_s, s.promote_interval_s) == (5.0, 0.05)


@pytest.mark.parametrize("word", ["none", "NULL", " None "])
def test_no_limit_from_env_and_flags(project, word):
    project("memory_limit: 1GiB\nmax_jobs_per_worker: 10\nmax_worker_memory: 2GiB\n")
    env = {"BATCHRUN_MEMORY_LIMIT": word, "BATCHRUN_MAX_JOBS_PER_WORKER": word}
    s = settings(project, env=env, overrides={"max_worker_memory": word})
    assert (s.memory_limit_bytes, s.max_jobs_per_worker, s.max_worker_memory_bytes) == (None, None, None)


def test_empty_env_limit_means_unset(project):
    project("memory_limit: 1GiB\n")
    assert settings(project, env={"BATCHRUN_MEMORY_LIMIT": ""}).memory_limit_bytes == 2**30


def test_workers_auto_from_env(project):
    project("workers: 8\n")
    assert settings(project, env={"BATCHRUN_WORKERS": "auto"}).workers is None


def test_explicit_config_path_must_exist(project):
    with pytest.raises(ConfigError) as caught:
        settings(project, config_path=Path("nope.yaml"))
    assert "nope.yaml" in str(caught.value)
    assert "not found" in str(caught.value)


def test_explicit_config_path_is_relative_to_cwd(project):
    project("namespace: other\n", name="elsewhere/custom.yaml")
    assert settings(project, config_path=Path("elsewhere/custom.yaml")).namespace == "other"


def test_unknown_key_names_line_field_and_suggestion(project):
    path = project("namespace: x\n\nheartbeat_intervall: 1s\n")
    with pytest.raises(ConfigError) as caught:
        settings(project)
    error = caught.value
    assert error.location.line == 3
    assert error.location.field == "heartbeat_intervall"
    assert str(path) in str(error) or "batchrun.yaml:3" in str(error)
    assert "did you mean 'heartbeat_interval'" in str(error)


def test_ttl_not_greater_than_interval_names_both_values(project):
    project("heartbeat_interval: 5s\nheartbeat_ttl: 5s\n")
    with pytest.raises(ConfigError) as caught:
        settings(project)
    message = str(caught.value)
    assert "heartbeat_ttl (5s)" in message and "heartbeat_interval (5s)" in message
    assert caught.value.location.line == 2
    assert caught.value.location.field == "heartbeat_ttl"


def test_ttl_check_names_the_env_var_that_broke_it(project):
    with pytest.raises(ConfigError) as caught:
        settings(project, env={"BATCHRUN_HEARTBEAT_INTERVAL": "20s"})
    assert "BATCHRUN_HEARTBEAT_INTERVAL" in str(caught.value)
    assert "(10s)" in str(caught.value) and "(20s)" in str(caught.value)


@pytest.mark.parametrize("text, line, field, words", [
    ("namespace: 'has space'\n", 1, "namespace", "may only contain"),
    ("queues: [high, high]\n", 1, "queues[1]", "listed twice"),
    ("queues:\n  - ok\n  - 'bad name'\n", 3, "queues[1]", "may only contain"),
    ("queues: []\n", 1, "queues", "at least one queue"),
    ("workers: 0\n", 1, "workers", "at least 1"),
    ("workers: many\n", 1, "workers", "whole number"),
    ("crash_limit: 0\n", 1, "crash_limit", "at least 1"),
    ("grace_period: soon\n", 1, "grace_period", "invalid duration"),
    ("heartbeat_interval: 0s\n", 1, "heartbeat_interval", "greater than zero"),
    ("max_payload: 1 potato\n", 1, "max_payload", "unknown size unit"),
    ("log_format: xml\n", 1, "log_format", "expected one of: text, json"),
    ("appendfsync: sometimes\n", 1, "appendfsync", "always, everysec, no"),
    ("redis_url: localhost:6379\n", 1, "redis_url", "redis://"),
    ("memory_limit: 0\n", 1, "memory_limit", "greater than zero, got 0 (or null for no limit)"),
    ("memory_limit: lots\n", 1, "memory_limit", "invalid size 'lots'"),
    ("max_jobs_per_worker: 0\n", 1, "max_jobs_per_worker", "at least 1, got 0 (or null for no limit)"),
    ("max_jobs_per_worker: 2.5\n", 1, "max_jobs_per_worker", "expected a whole number"),
    ("max_worker_memory: 1 potato\n", 1, "max_worker_memory", "unknown size unit 'potato'"),
    ("max_result: 0B\n", 1, "max_result", "greater than zero"),
    ("max_result: null\n", 1, "max_result", "expected a size"),
    ("event_history: -1\n", 1, "event_history", "at least 0, got -1"),
    ("event_history: none\n", 1, "event_history", "expected a whole number"),
    ("timeout_grace: -1s\n", 1, "timeout_grace", "must not be negative"),
    ("promote_interval: 0ms\n", 1, "promote_interval", "greater than zero"),
])
def test_invalid_file_values_name_line_and_field(project, text, line, field, words):
    project("# settings\n" + text)
    with pytest.raises(ConfigError) as caught:
        settings(project)
    assert caught.value.location.line == line + 1
    assert caught.value.location.field == field
    assert words in str(caught.value)


def test_several_errors_are_reported_together(project):
    project("namespace: 'a b'\nworkers: -1\n")
    with pytest.raises(ConfigErrors) as caught:
        settings(project)
    assert [e.location.field for e in caught.value.errors] == ["namespace", "workers"]


def test_env_and_flag_errors_name_their_source(project):
    with pytest.raises(ConfigErrors) as caught:
        settings(project, env={"BATCHRUN_CRASH_LIMIT": "lots"}, overrides={"log_format": "xml"})
    message = str(caught.value)
    assert "environment: BATCHRUN_CRASH_LIMIT: expected a whole number" in message
    assert "command line: --log-format: expected one of" in message


def test_unknown_override_is_an_error(project):
    with pytest.raises(ConfigError, match="--colour"):
        settings(project, overrides={"colour": "blue"})


def test_config_file_must_be_a_mapping(project):
    project("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        settings(project)


def test_broken_yaml_names_file_and_line(project):
    path = project("namespace: x\nqueues: [a, b\nworkers: 2\n")
    with pytest.raises(ConfigError) as caught:
        settings(project)
    assert caught.value.location.file in (str(path), "configs/batchrun.yaml")
    assert caught.value.location.line is not None and caught.value.location.line >= 2
    assert "invalid YAML" in str(caught.value)


def test_duplicate_key_is_refused_with_both_lines(project):
    project("namespace: a\nworkers: 2\nnamespace: b\n")
    with pytest.raises(ConfigError) as caught:
        settings(project)
    assert caught.value.location.line == 3
    assert "duplicate key 'namespace' (first defined on line 1)" in str(caught.value)


def test_document_lines_and_field_rendering(tmp_path):
    path = tmp_path / "doc.yaml"
    path.write_text("a:\n  b:\n    - x\n    - y\nc: 1\n")
    doc = load(path)
    assert doc.data == {"a": {"b": ["x", "y"]}, "c": 1}
    assert doc.line(("a", "b", 1)) == 4
    assert doc.line(("c",)) == 5
    assert doc.line(("a", "missing")) == 1   # falls back to the nearest enclosing field
    error = doc.error(("a", "b", 1), "bad")
    assert str(error).endswith(":4: a.b[1]: bad")
