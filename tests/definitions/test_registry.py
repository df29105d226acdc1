from pathlib import Path

import pytest

from batchrun.definitions.backoff import DEFAULT, Backoff
from batchrun.definitions.params import MISSING
from batchrun.definitions.registry import load_registry
from batchrun.errors import ConfigErrors, SubmitError

QUEUES = ("high", "default", "low")

PRIMES = """\
name: count-primes
description: Count primes in [start, stop).
handler: examples.primes:count_primes
queue: high
params:
  start: {type: int, default: 0}
  stop: {type: int, required: true}
  label: {type: str, description: "shown in status"}
timeout: 10m
retries: 2
backoff: {delay: 2s, max: 1m}
memory_limit: 512MiB
"""

CONVERT = """\
command: [python, -m, mytool, "{path}", "--ratio={ratio}", "--opts", "{opts}", "{{literal}}", 7]
params:
  path: {type: str, required: true}
  ratio: {type: float, default: 1}
  opts: {type: dict, default: {a: 1}}
  verbose: {type: bool, default: false}
"""


@pytest.fixture
def jobs(tmp_path):
    """A jobs folder: `jobs.write(name, text)` adds a file, `jobs.load()` builds the registry."""
    folder = tmp_path / "jobs"
    folder.mkdir()

    class Jobs:
        def write(self, name: str, text: str) -> Path:
            path = folder / name
            path.write_text(text)
            return path

        def load(self, queues=QUEUES):
            return load_registry(folder, queues)

        def error(self, name: str, text: str):
            """The single error of a registry holding only this file."""
            self.write(name, text)
            registry = self.load()
            assert len(registry.errors) == 1, registry.errors
            assert name not in registry.definitions
            return registry.errors[0]

    return Jobs()


def test_handler_job(jobs):
    source = jobs.write("primes.yaml", PRIMES)
    registry = jobs.load()
    registry.require_valid()
    job = registry.get("count-primes")
    assert job.source == source
    assert job.handler == "examples.primes:count_primes" and job.command is None
    assert job.queue == "high"
    assert job.timeout_s == 600.0
    assert job.retries == 2
    assert job.backoff == Backoff("exponential", 2.0, 60.0, jitter=True)
    assert job.memory_limit_bytes == 512 * 1024**2
    assert job.description == "Count primes in [start, stop)."
    assert list(job.params) == ["start", "stop", "label"]
    assert job.params["stop"].required and job.params["stop"].default is MISSING
    assert job.params["start"].default == 0
    assert job.params["label"].description == "shown in status"


def test_command_job_defaults(jobs):
    jobs.write("convert.yml", CONVERT)
    job = jobs.load().get("convert")              # name from the file stem
    assert job.handler is None
    assert job.command[:3] == ("python", "-m", "mytool")
    assert job.command[-1] == "7"
    assert job.queue == "default"
    assert (job.timeout_s, job.retries, job.memory_limit_bytes) == (None, 0, None)
    assert job.backoff == DEFAULT
    assert job.params["ratio"].default == 1.0 and isinstance(job.params["ratio"].default, float)


@pytest.mark.parametrize("text, expected", [
    ("10s", Backoff("fixed", 10.0, 10.0, jitter=False)),
    ("90", Backoff("fixed", 90.0, 90.0, jitter=False)),
    ("{kind: fixed, delay: 5s, jitter: false}", Backoff("fixed", 5.0, 300.0, jitter=False)),
    ("{kind: exponential, delay: 500ms, max: 2h, jitter: true}", Backoff("exponential", 0.5, 7200.0, jitter=True)),
    ("{jitter: no}", Backoff("exponential", 1.0, 300.0, jitter=False)),
    ("{delay: 10m}", Backoff("exponential", 600.0, 600.0, jitter=True)),   # no max: the delay is its own cap
    ("{max: 1s}", Backoff("exponential", 1.0, 1.0, jitter=True)),
])
def test_backoff_forms(jobs, text, expected):
    jobs.write("job.yaml", f"handler: m:f\nretries: 3\nbackoff: {text}\n")
    assert jobs.load().get("job").backoff == expected


def test_default_queue_is_lowest_priority_without_a_default_queue(jobs):
    jobs.write("convert.yaml", CONVERT)
    assert jobs.load(queues=("urgent", "bulk")).get("convert").queue == "bulk"


def test_render_command(jobs):
    jobs.write("convert.yaml", CONVERT)
    job = jobs.load().get("convert")
    argv = job.render_command(job.validate_params({"path": "in put.csv"}))
    assert argv == ["python", "-m", "mytool", "in put.csv", "--ratio=1.0",
                    "--opts", '{"a": 1}', "{literal}", "7"]


def test_duplicate_names_name_both_files(jobs):
    jobs.write("a.yaml", "name: same\nhandler: m:f\n")
    jobs.write("b.yaml", "description: other\nname: same\nhandler: m:g\n")
    registry = jobs.load()
    assert registry.get("same").handler == "m:f"
    [error] = registry.errors
    assert "b.yaml:2: name" in str(error)
    assert "a.yaml" in str(error)


@pytest.mark.parametrize("text, line, field, words", [
    ("handler: m:f\nparams:\n  stop:\n    type: integer\n", 4, "params.stop.type",
     "unknown type 'integer' (expected one of: int, float, str, bool, list, dict, json)"),
    ("handler: m:f\nparams:\n  stop: {required: true}\n", 3, "params.stop.type", "missing 'type'"),
    ("handler: m:f\nparams:\n  stop: {type: int, required: true, default: 3}\n", 3,
     "params.stop.default", "required param cannot have a default"),
    ("handler: m:f\nparams:\n  stop: {type: int, default: '3'}\n", 3,
     "params.stop.default", "expected int, got str '3'"),
    ("handler: m:f\nparams:\n  stop: {type: int, requird: true}\n", 3,
     "params.stop.requird", "did you mean 'required'"),
    ("handler: m:f\nparams:\n  2nd: {type: int}\n", 3, "params.2nd", "identifier"),
    ("handler: m:f\nqueue: medium\n", 2, "queue", "configured queues: high, default, low"),
    ("command: [tool, '{path}']\n", 1, "command[1]", "placeholder {path} names no declared param"),
    ("command: [tool, '{x}']\nparams:\n  x: {type: str}\n", 1, "command[1]",
     "optional param without a default"),
    ("command: [tool, 'a{b']\n", 1, "command[1]", "stray '{'"),
    ("command: []\n", 1, "command", "non-empty list"),
    ("command: tool --flag\n", 1, "command", "non-empty list"),
    ("description: nothing to run\n", 1, None, "missing 'handler'"),
    ("handler: m:f\ncommand: [tool]\n", 2, "command", "not both"),
    ("handler: not-a-handler\n", 1, "handler", "module.path:function"),
    ("handler: m:f\ntimout: 5s\n", 2, "timout", "did you mean 'timeout'"),
    ("handler: m:f\ntimeout: 0s\n", 2, "timeout", "greater than zero"),
    ("handler: m:f\nretries: -1\n", 2, "retries", ">= 0"),
    ("handler: m:f\nmemory_limit: big\n", 2, "memory_limit", "invalid size"),
    ("handler: m:f\nbackof: 1s\n", 2, "backof", "did you mean 'backoff'"),
    ("handler: m:f\nbackoff: soon\n", 2, "backoff", "invalid duration 'soon'"),
    ("handler: m:f\nbackoff: 0s\n", 2, "backoff", "greater than zero"),
    ("handler: m:f\nbackoff: [1s, 2s]\n", 2, "backoff", "or a mapping like {kind: exponential"),
    ("handler: m:f\nbackoff:\n  kind: exponental\n", 3, "backoff.kind",
     "unknown kind 'exponental'; did you mean 'exponential'? (expected one of: fixed, exponential)"),
    ("handler: m:f\nbackoff:\n  kind: fixed\n  dealy: 1s\n", 4, "backoff.dealy", "did you mean 'delay'"),
    ("handler: m:f\nbackoff:\n  delay: 0s\n", 3, "backoff.delay", "greater than zero"),
    ("handler: m:f\nbackoff:\n  delay: null\n", 3, "backoff.delay", "expected a duration"),
    ("handler: m:f\nbackoff:\n  max: 1 potato\n", 3, "backoff.max", "unknown duration unit 'potato'"),
    ("handler: m:f\nbackoff:\n  delay: 10s\n  max: 5s\n", 4, "backoff.max",
     "max (5s) must be at least delay (10s)"),
    ("handler: m:f\nbackoff:\n  jitter: maybe\n", 3, "backoff.jitter", "expected true or false, got 'maybe'"),
    ("handler: m:f\nname: 'has space'\n", 2, "name", "may only contain"),
    ("handler: m:f\nhandler: m:g\n", 2, "handler", "duplicate key 'handler'"),
    ("- handler: m:f\n", 1, None, "must be a mapping"),
])
def test_invalid_job_files_name_file_line_and_field(jobs, text, line, field, words):
    error = jobs.error("job.yaml", "# a job\n" + text)
    assert error.location.file.endswith("job.yaml")
    assert error.location.line == line + 1
    assert error.location.field == field
    assert words in str(error)


def test_broken_yaml_names_file_and_line(jobs):
    error = jobs.error("broken.yaml", "handler: m:f\nparams: {a: {type: int}\n")
    assert error.location.file.endswith("broken.yaml")
    assert error.location.line == 3
    assert "invalid YAML" in str(error)


def test_bad_file_does_not_hide_good_ones(jobs):
    jobs.write("good.yaml", "handler: m:f\n")
    jobs.write("bad.yaml", "handler: m:f\nqueue: nope\n")
    jobs.write("notes.txt", "not a job")
    registry = jobs.load()
    assert list(registry.definitions) == ["good"]
    with pytest.raises(ConfigErrors, match="bad.yaml:2: queue"):
        registry.require_valid()


def test_missing_jobs_dir_is_an_error(tmp_path):
    registry = load_registry(tmp_path / "absent", QUEUES)
    assert registry.definitions == {}
    assert "absent" in str(registry.errors[0]) and "not found" in str(registry.errors[0])


def test_unknown_job_suggests_close_name(jobs):
    jobs.write("primes.yaml", PRIMES)
    jobs.write("other.yaml", "handler: m:f\n")
    with pytest.raises(SubmitError) as caught:
        jobs.load().get("count-prime")
    assert str(caught.value) == ("unknown job 'count-prime'; defined jobs: count-primes, other; "
                                 "did you mean 'count-primes'?")


@pytest.fixture
def primes(jobs):
    jobs.write("primes.yaml", PRIMES)
    return jobs.load().get("count-primes")


@pytest.fixture
def convert(jobs):
    jobs.write("convert.yaml", CONVERT)
    return jobs.load().get("convert")


def test_validate_fills_defaults_and_omits_unset_optionals(primes):
    assert primes.validate_params({"stop": 100}) == {"start": 0, "stop": 100}
    assert primes.validate_params({"stop": 5, "label": "x"}) == {"start": 0, "stop": 5, "label": "x"}


@pytest.mark.parametrize("params, words", [
    ({"stop": True}, "param 'stop': expected int, got bool True"),
    ({"stop": 1.0}, "param 'stop': expected int, got float 1.0"),
    ({"stop": "5"}, "param 'stop': expected int, got str '5'"),
    ({"stop": None}, "param 'stop': expected int, got null"),
    ({"stop": 5, "stpo": 1}, "unknown param 'stpo'; did you mean 'stop'?"),
    ({}, "missing required param 'stop' (int)"),
])
def test_validate_is_strict(primes, params, words):
    with pytest.raises(SubmitError) as caught:
        primes.validate_params(params)
    assert str(caught.value).startswith("job 'count-primes': ")
    assert words in str(caught.value)


def test_validate_float_accepts_int_and_refuses_nan(convert):
    assert convert.validate_params({"path": "p", "ratio": 2})["ratio"] == 2.0
    with pytest.raises(SubmitError, match="not plain JSON"):
        convert.validate_params({"path": "p", "ratio": float("nan")})


def test_defaults_are_not_shared_between_submits(convert):
    first = convert.validate_params({"path": "p"})
    first["opts"]["a"] = 99
    assert convert.validate_params({"path": "p"})["opts"] == {"a": 1}


def test_cli_coercion(convert, primes):
    assert primes.parse_cli_params(["stop=100", "label=a=b"]) == {"start": 0, "stop": 100, "label": "a=b"}
    params = convert.parse_cli_params(["path=x", "ratio=0.5", 'opts={"k": [1]}', "verbose=yes"])
    assert params == {"path": "x", "ratio": 0.5, "opts": {"k": [1]}, "verbose": True}
    for word, value in [("true", True), ("NO", False), ("1", True), ("0", False)]:
        assert convert.parse_cli_params(["path=x", f"verbose={word}"])["verbose"] is value


@pytest.mark.parametrize("pairs, words", [
    (["stop"], "expected name=value, got 'stop'"),
    (["=5"], "expected name=value"),
    (["stop=ten"], "param 'stop': expected int, got 'ten'"),
    (["stop=1", "stop=2"], "given twice"),
    (["stop=1", "colour=red"], "unknown param 'colour'"),
    ([], "missing required param 'stop'"),
])
def test_cli_errors(primes, pairs, words):
    with pytest.raises(SubmitError, match="count-primes") as caught:
        primes.parse_cli_params(pairs)
    assert words in str(caught.value)


@pytest.mark.parametrize("pair, words", [
    ("verbose=maybe", "expected true/false"),
    ("opts=[1, 2]", "expected dict, got list"),
    ("opts={bad", "expected dict as JSON"),
    ("ratio=inf", "not plain JSON"),
])
def test_cli_type_errors(convert, pair, words):
    with pytest.raises(SubmitError) as caught:
        convert.parse_cli_params(["path=x", pair])
    assert words in str(caught.value)


def test_unknown_job_points_at_its_broken_file(jobs):
    jobs.write("resize.yaml", "handler: m:f\nqueue: nope\n")
    with pytest.raises(SubmitError) as caught:
        jobs.load().get("resize")
    assert "resize.yaml:2: queue" in str(caught.value)


def test_cli_params_unvalidated_for_merging(primes):
    assert primes.parse_cli_params(["stop=7", "other=x"], validate=False) == {"stop": 7, "other": "x"}


def test_on_complete_names_a_job(tmp_path):
    from batchrun.definitions.registry import load_registry

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "a.yaml").write_text("handler: m:f\non_complete: b\n")
    (jobs / "c.yaml").write_text("handler: m:f\non_complete: [b]\n")
    registry = load_registry(jobs, ["default"])
    assert registry.definitions["a"].on_complete == "b"
    assert [str(e) for e in registry.errors] == [f"{jobs / 'c.yaml'}:2: on_complete: expected a job name, got ['b']"]
