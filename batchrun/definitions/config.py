"""Settings: defaults < config file < BATCHRUN_* environment < command-line flags.

Every value, wherever it comes from, goes through the same parser, and every
error names its source: file, line and field for the config file, the
variable for the environment, the flag for the command line. All problems are
reported at once so a user fixes them in one pass.
"""
from __future__ import annotations

import os
import re
import sys
from importlib.machinery import PathFinder
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from batchrun.definitions.durations import parse_duration, parse_size
from batchrun.definitions.urls import MULTI_SCHEMES, SCHEMES, parse_multi, redact
from batchrun.definitions.yamlfile import Document, display_path, load
from batchrun.errors import ConfigError, ConfigErrors, Location

DEFAULT_CONFIG = Path("configs/batchrun.yaml")
DEFAULT_JOBS_DIR = Path("jobs")
ENV_PREFIX = "BATCHRUN_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
_NAME_RULE = "may only contain letters, digits, '_', '.' and '-'"
_NO_LIMIT = ("", "none", "null")
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_T = TypeVar("_T")
_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True)
class Settings:
    redis_url: str | None
    namespace: str
    state_dir: Path
    queues: tuple[str, ...]
    workers: int | None
    heartbeat_interval_s: float
    heartbeat_ttl_s: float
    grace_period_s: float
    crash_limit: int
    result_ttl_s: float
    max_payload_bytes: int
    memory_limit_bytes: int | None
    max_jobs_per_worker: int | None
    max_worker_memory_bytes: int | None
    max_result_bytes: int
    event_history: int
    timeout_grace_s: float
    promote_interval_s: float
    log_format: str
    log_level: str
    appendfsync: str
    threads_per_worker: int | None
    preload: tuple[str, ...]
    progress_interval_s: float
    max_checkpoint_bytes: int
    min_replicas: int
    replica_timeout_s: float
    metrics_port: int | None
    metrics_host: str
    jobs_dir: Path
    project_dir: Path


class _ItemError(ValueError):
    """A problem with one item of a list setting, so the error can point at `queues[1]`."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


# Where a value came from: builds the Location of an error, given a path below the key.
_Origin = Callable[[tuple[int, ...]], Location]


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _whole_number(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError(f"expected a whole number, got {value!r}")


def _redis_url(value: object) -> str | None:
    if value is None or value == "":
        return None
    url = _text(value)
    if not url.startswith(SCHEMES):
        raise ValueError(f"expected a URL starting with one of {', '.join(SCHEMES)}, got {redact(url)!r}")
    if url.startswith(MULTI_SCHEMES):
        parse_multi(url)
    return url


def _namespace(value: object) -> str:
    name = _text(value)
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"namespace {name!r} {_NAME_RULE}")
    return name


def _path(value: object) -> Path:
    return Path(_text(value)).expanduser()


def _queues(value: object) -> tuple[str, ...]:
    """A YAML list, or a comma-separated string from the environment or a flag."""
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"expected a list of queue names, highest priority first, got {value!r}")
    if not items:
        raise ValueError("at least one queue is required")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not NAME_PATTERN.fullmatch(item):
            raise _ItemError(index, f"queue name {item!r} {_NAME_RULE}")
        if item in items[:index]:
            raise _ItemError(index, f"queue {item!r} is listed twice")
    return tuple(items)


def _modules(value: object) -> tuple[str, ...]:
    """Module names to preload: a YAML list, or a comma-separated string from the environment or a flag."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"expected a list of module names, got {value!r}")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not _MODULE.fullmatch(item):
            raise _ItemError(index, f"{item!r} is not a module name like 'mypkg.tables'")
    return tuple(items)


def _threads_per_worker(value: object) -> int | None:
    """None (or 'auto'): the CPUs divided among the workers; 0: leave native thread pools alone."""
    if value is None or value == "auto":
        return None
    count = _whole_number(value)
    if count < 0:
        raise ValueError(f"must be 0 (leave native thread pools alone), a number of threads, or 'auto'; got {count}")
    return count


def _workers(value: object) -> int | None:
    if value is None or value == "auto":
        return None
    count = _whole_number(value)
    if count < 1:
        raise ValueError(f"workers must be at least 1, or 'auto' for one per CPU; got {count}")
    return count


def _port(value: object) -> int | None:
    """null (or none, empty) turns the endpoint off."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NO_LIMIT):
        return None
    port = _whole_number(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"expected a TCP port from 0 to 65535, got {port}")
    return port


def _crash_limit(value: object) -> int:
    limit = _whole_number(value)
    if limit < 1:
        raise ValueError(f"crash_limit must be at least 1, got {limit}")
    return limit


def _at_least(minimum: int) -> Callable[[object], int]:
    def parse_count(value: object) -> int:
        count = _whole_number(value)
        if count < minimum:
            raise ValueError(f"must be at least {minimum}, got {count}")
        return count
    return parse_count


def _positive(parse: Callable[[object], _Number]) -> Callable[[object], _Number]:
    def parse_positive(value: object) -> _Number:
        number = parse(value)
        if number <= 0:
            raise ValueError(f"must be greater than zero, got {value!r}")
        return number
    return parse_positive


def _or_no_limit(parse: Callable[[object], _T]) -> Callable[[object], _T | None]:
    """null in YAML; `none`, `null` (or empty, which counts as unset) from the environment or a flag."""
    def parse_limit(value: object) -> _T | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in _NO_LIMIT):
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (or null for no limit)") from None
    return parse_limit


def _choice(*options: str) -> Callable[[object], str]:
    def parse_choice(value: object) -> str:
        if value is False and "no" in options:
            value = "no"  # YAML 1.1 reads a bare `no` as false
        if not isinstance(value, str) or value.strip().lower() not in options:
            raise ValueError(f"expected one of: {', '.join(options)}; got {value!r}")
        return value.strip().lower()
    return parse_choice


@dataclass(frozen=True)
class _Key:
    attr: str
    parse: Callable[[object], Any]
    default: object


# Config-file key → Settings attribute, parser and default (defaults go through the parser too).
_KEYS: dict[str, _Key] = {
    "redis_url": _Key("redis_url", _redis_url, None),
    "namespace": _Key("namespace", _namespace, "default"),
    "state_dir": _Key("state_dir", _path, ".batchrun"),
    "queues": _Key("queues", _queues, ("high", "default", "low")),
    "workers": _Key("workers", _workers, None),
    "heartbeat_interval": _Key("heartbeat_interval_s", _positive(parse_duration), "2s"),
    "heartbeat_ttl": _Key("heartbeat_ttl_s", _positive(parse_duration), "10s"),
    "grace_period": _Key("grace_period_s", parse_duration, "30s"),
    "crash_limit": _Key("crash_limit", _crash_limit, 3),
    "result_ttl": _Key("result_ttl_s", _positive(parse_duration), "7d"),
    "max_payload": _Key("max_payload_bytes", _positive(parse_size), "1MiB"),
    "memory_limit": _Key("memory_limit_bytes", _or_no_limit(_positive(parse_size)), None),
    "max_jobs_per_worker": _Key("max_jobs_per_worker", _or_no_limit(_at_least(1)), None),
    "max_worker_memory": _Key("max_worker_memory_bytes", _or_no_limit(_positive(parse_size)), None),
    "max_result": _Key("max_result_bytes", _positive(parse_size), "1MiB"),
    "event_history": _Key("event_history", _at_least(0), 10000),
    "timeout_grace": _Key("timeout_grace_s", parse_duration, "2s"),
    "promote_interval": _Key("promote_interval_s", _positive(parse_duration), "200ms"),
    "log_format": _Key("log_format", _choice("text", "json"), "text"),
    "log_level": _Key("log_level", _choice("debug", "info", "warning", "error", "critical"), "info"),
    "appendfsync": _Key("appendfsync", _choice("always", "everysec", "no"), "everysec"),
    "threads_per_worker": _Key("threads_per_worker", _threads_per_worker, None),
    "preload": _Key("preload", _modules, ()),
    "progress_interval": _Key("progress_interval_s", _positive(parse_duration), "1s"),
    "max_checkpoint": _Key("max_checkpoint_bytes", _positive(parse_size), "64KiB"),
    "min_replicas": _Key("min_replicas", _at_least(0), 0),
    "replica_timeout": _Key("replica_timeout_s", _positive(parse_duration), "1s"),
    "metrics_port": _Key("metrics_port", _port, None),
    "metrics_host": _Key("metrics_host", _text, "127.0.0.1"),
}


def env_var(key: str) -> str:
    return ENV_PREFIX + key.upper()


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def load_settings(config_path: Path | None = None, *, jobs_dir: Path | None = None,
                  overrides: Mapping[str, object] | None = None,
                  env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Raises ConfigError (ConfigErrors when there are several) naming the source of each bad value."""
    cwd = Path(cwd).resolve() if cwd is not None else Path.cwd()
    errors: list[ConfigError] = []
    raw: dict[str, tuple[object, _Origin | None]] = {
        key: (spec.default, None) for key, spec in _KEYS.items()}
    doc = _read_config(config_path, cwd)
    if doc is not None:
        raw.update(_file_values(doc, errors))
    raw.update(_env_values(os.environ if env is None else env))
    raw.update(_override_values(overrides or {}, errors))
    values = _parse_all(raw, errors)
    errors.extend(_check_heartbeat(values, raw))
    jobs_dir = cwd / (jobs_dir or DEFAULT_JOBS_DIR)
    errors.extend(_check_preload(values, raw, jobs_dir.resolve().parent))
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    return _build(values, jobs_dir)


def _read_config(config_path: Path | None, cwd: Path) -> Document | None:
    """A missing default file means "use defaults"; a missing file the user named is an error."""
    path = cwd / (config_path or DEFAULT_CONFIG)
    if not path.exists():
        if config_path is None:
            return None
        raise ConfigError("config file not found", Location(display_path(path)))
    return load(path)


def _file_values(doc: Document, errors: list[ConfigError]) -> dict[str, tuple[object, _Origin]]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        errors.append(doc.error((), "a config file must be a mapping of setting: value"))
        return {}
    errors.extend(doc.unknown_key_errors((), doc.data, _KEYS))
    return {
        key: (value, lambda sub, key=key: doc.location((key, *sub)))
        for key, value in doc.data.items() if key in _KEYS
    }


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[object, _Origin]]:
    """Empty variables count as unset, so `BATCHRUN_REDIS_URL=` falls back to the file or default."""
    values: dict[str, tuple[object, _Origin]] = {}
    for key in _KEYS:
        text = env.get(env_var(key), "")
        if text.strip():
            location = Location("environment", None, env_var(key))
            values[key] = (text, lambda sub, location=location: location)
    return values


def _override_values(overrides: Mapping[str, object],
                     errors: list[ConfigError]) -> dict[str, tuple[object, _Origin]]:
    values: dict[str, tuple[object, _Origin]] = {}
    for key, value in overrides.items():
        location = Location("command line", None, flag(key))
        if key not in _KEYS:
            errors.append(ConfigError(f"unknown setting {key!r}", location))
        elif value is not None:
            values[key] = (value, lambda sub, location=location: location)
    return values


def _parse_all(raw: Mapping[str, tuple[object, _Origin | None]],
               errors: list[ConfigError]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, (value, origin) in raw.items():
        try:
            values[key] = _KEYS[key].parse(value)
        except ValueError as exc:
            sub = (exc.index,) if isinstance(exc, _ItemError) else ()
            assert origin is not None, f"default for {key} is invalid"
            errors.append(ConfigError(str(exc), origin(sub)))
    return values


def _check_heartbeat(values: Mapping[str, Any],
                     raw: Mapping[str, tuple[object, _Origin | None]]) -> list[ConfigError]:
    """A TTL no longer than the interval would declare live workers dead between two beats."""
    interval, ttl = values.get("heartbeat_interval"), values.get("heartbeat_ttl")
    if interval is None or ttl is None or ttl > interval:
        return []
    origin = raw["heartbeat_ttl"][1] or raw["heartbeat_interval"][1]
    assert origin is not None
    return [ConfigError(
        f"heartbeat_ttl ({ttl:g}s) must be greater than heartbeat_interval ({interval:g}s), "
        "or live workers would be declared dead between two heartbeats", origin(()))]


def _check_preload(values: Mapping[str, Any], raw: Mapping[str, tuple[object, _Origin | None]],
                   project_dir: Path) -> list[ConfigError]:
    """A preload module that cannot be found is refused now, not when the supervisor forks."""
    errors = []
    for index, name in enumerate(values.get("preload") or ()):
        top = name.split(".")[0]
        if PathFinder.find_spec(top, [str(project_dir), *sys.path]) is None:
            origin = raw["preload"][1]
            assert origin is not None
            errors.append(ConfigError(f"cannot find module {top!r} to preload (looked in {project_dir} "
                                      "and on the Python path)", origin((index,))))
    return errors


def _build(values: Mapping[str, Any], jobs_dir: Path) -> Settings:
    jobs_dir = jobs_dir.resolve()
    fields = {_KEYS[key].attr: value for key, value in values.items()}
    fields["state_dir"] = (jobs_dir.parent / fields["state_dir"]).resolve()
    return Settings(**fields, jobs_dir=jobs_dir, project_dir=jobs_dir.parent)
