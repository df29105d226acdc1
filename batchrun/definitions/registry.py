"""Job definitions: one YAML file per job in the jobs folder.

A bad file never hides the good ones: the registry keeps one error per bad
file and loads the rest, so `batchrun check` can list every problem while a
worker refuses to start until they are fixed (`require_valid`). Handlers are
not imported here; that happens in the worker, with the project on sys.path.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from batchrun.definitions.backoff import DEFAULT as DEFAULT_BACKOFF, KINDS as BACKOFF_KINDS, Backoff
from batchrun.definitions.config import NAME_PATTERN
from batchrun.definitions.durations import parse_duration, parse_size
from batchrun.definitions.schedule import Schedule, parse_schedules
from batchrun.definitions.params import MISSING, TYPES, Param, check_value, parse_cli_params, validate_params
from batchrun.definitions.yamlfile import Document, did_you_mean, display_path, load
from batchrun.errors import ConfigError, ConfigErrors, Location, SubmitError

_JOB_KEYS = ("name", "description", "handler", "command", "queue", "params", "timeout",
             "retries", "backoff", "memory_limit", "threads", "schedule", "unique", "concurrency", "on_complete")
_BACKOFF_KEYS = ("kind", "delay", "max", "jitter")
_PARAM_KEYS = ("type", "required", "default", "description")
_HANDLER = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_PARAM_NAME = re.compile(r"[A-Za-z_]\w*")
# In a command argument: `{{` and `}}` are literal braces, `{name}` a param, any other brace an error.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)\}|[{}]")
_JSON_TYPES = ("list", "dict", "json")


@dataclass(frozen=True)
class JobDefinition:
    name: str
    source: Path
    handler: str | None
    command: tuple[str, ...] | None
    queue: str
    params: Mapping[str, Param]
    timeout_s: float | None
    retries: int
    backoff: Backoff
    memory_limit_bytes: int | None
    description: str
    threads: int | None = None
    schedules: tuple[Schedule, ...] = ()
    unique: bool = False
    concurrency: int | None = None
    on_complete: str | None = None

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return validate_params(self.name, self.params, params)

    def unique_key(self, params: Mapping[str, Any]) -> str:
        """For a unique job, what makes two submits the same job: its name and its validated params
        as canonical JSON (hashed, to keep the key short); the empty string for other jobs."""
        if not self.unique:
            return ""
        canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return f"{self.name}:{hashlib.sha256(canonical.encode()).hexdigest()}"

    def parse_cli_params(self, pairs: Sequence[str], *, validate: bool = True) -> dict[str, Any]:
        return parse_cli_params(self.name, self.params, pairs, validate=validate)

    def render_command(self, params: Mapping[str, Any]) -> list[str]:
        """The argv for validated params; list, dict and json params are passed as JSON text."""
        if self.command is None:
            raise TypeError(f"job {self.name!r} runs a handler, not a command")
        return [_PLACEHOLDER.sub(lambda match: self._render(match, params), arg) for arg in self.command]

    def _render(self, match: re.Match[str], params: Mapping[str, Any]) -> str:
        name = match[1]
        if name is None:
            return match[0][0]
        if name not in params:
            raise SubmitError(f"job {self.name!r}: command needs param {name!r}, which was not given")
        value = params[name]
        return json.dumps(value) if self.params[name].type in _JSON_TYPES else str(value)


@dataclass
class Registry:
    jobs_dir: Path
    definitions: dict[str, JobDefinition] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)

    def get(self, name: str) -> JobDefinition:
        definition = self.definitions.get(name)
        if definition is None:
            raise SubmitError(self._unknown_job(name))
        return definition

    def require_valid(self) -> None:
        if self.errors:
            raise ConfigErrors(list(self.errors))

    def _unknown_job(self, name: str) -> str:
        known = ", ".join(sorted(self.definitions)) or f"none (in {display_path(self.jobs_dir)})"
        message = f"unknown job {name!r}; defined jobs: {known}{did_you_mean(name, self.definitions)}"
        broken = [e for e in self.errors if e.location and Path(str(e.location.file)).stem == name]
        return message + (f"\n{broken[0]}" if broken else "")


def load_registry(jobs_dir: Path, queues: Sequence[str]) -> Registry:
    """Never raises for a bad file: its error goes to `errors` and the other files still load."""
    registry = Registry(jobs_dir)
    if not jobs_dir.is_dir():
        registry.errors.append(ConfigError("jobs folder not found", Location(display_path(jobs_dir))))
        return registry
    files = sorted(p for p in jobs_dir.iterdir()
                   if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file())
    for path in files:
        try:
            _add(registry, load(path), queues)
        except ConfigError as exc:
            registry.errors.append(exc)
    return registry


def _add(registry: Registry, doc: Document, queues: Sequence[str]) -> None:
    definition = parse_job(doc, queues)
    first = registry.definitions.get(definition.name)
    if first is not None:
        raise doc.error(("name",), f"job name {definition.name!r} is already defined in "
                                   f"{display_path(first.source)}")
    registry.definitions[definition.name] = definition


def parse_job(doc: Document, queues: Sequence[str]) -> JobDefinition:
    """One job file as a definition; raises the first ConfigError found."""
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "a job file must be a mapping with a 'handler' or a 'command'")
    unknown = doc.unknown_key_errors((), data, _JOB_KEYS)
    if unknown:
        raise unknown[0]
    params = _parse_params(doc, data.get("params"))
    handler, command = _parse_target(doc, data, params)
    return JobDefinition(
        name=_parse_name(doc, data.get("name")),
        source=doc.path,
        handler=handler,
        command=command,
        queue=_parse_queue(doc, data.get("queue"), queues),
        params=MappingProxyType(params),
        timeout_s=_field(doc, "timeout", _positive_duration, None),
        retries=_field(doc, "retries", _retries, 0),
        backoff=_parse_backoff(doc, data.get("backoff")),
        memory_limit_bytes=_field(doc, "memory_limit", _positive_size, None),
        description=_field(doc, "description", _string, ""),
        threads=_field(doc, "threads", _threads, None),
        schedules=parse_schedules(doc, _parse_name(doc, data.get("name")), params),
        unique=_field(doc, "unique", _bool, False),
        concurrency=_field(doc, "concurrency", _concurrency, None),
        on_complete=_field(doc, "on_complete", _job_name, None),
    )


def _field(doc: Document, key: str, parse: Any, default: Any) -> Any:
    value = doc.data.get(key)
    return default if value is None else _checked(doc, (key,), parse, value)


def _checked(doc: Document, where: tuple[str, ...], parse: Any, value: object) -> Any:
    """`parse(value)`, with its ValueError turned into an error at `where` in the file."""
    try:
        return parse(value)
    except ValueError as exc:
        raise doc.error(where, str(exc)) from None


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _job_name(value: object) -> str:
    """The job a batch of this job queues when it ends (checked against the registry at map time)."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValueError(f"expected a job name, got {value!r}")
    return value


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def _positive_size(value: object) -> int:
    size = parse_size(value)
    if size <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return size


def _retries(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value


def _threads(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected a whole number of native threads >= 1, got {value!r}")
    return value


def _concurrency(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected a whole number >= 1 (jobs of this kind running at once), got {value!r}")
    return value


def _parse_backoff(doc: Document, value: object) -> Backoff:
    """`backoff: 10s` waits exactly 10s before every retry; a mapping tunes the exponential default."""
    if value is None:
        return DEFAULT_BACKOFF
    if not isinstance(value, dict):
        delay = _checked(doc, ("backoff",), _backoff_delay, value)
        return Backoff("fixed", delay, delay, jitter=False)
    unknown = doc.unknown_key_errors(("backoff",), value, _BACKOFF_KEYS)
    if unknown:
        raise unknown[0]
    default = DEFAULT_BACKOFF
    kind = _checked(doc, ("backoff", "kind"), _backoff_kind, value.get("kind", default.kind))
    delay = _checked(doc, ("backoff", "delay"), _positive_duration, value.get("delay", default.delay_s))
    # Without an explicit cap, a delay above the default cap is its own cap, not an error.
    max_s = _checked(doc, ("backoff", "max"), parse_duration, value.get("max", max(delay, default.max_s)))
    if max_s < delay:
        raise doc.error(("backoff", "max"), f"max ({max_s:g}s) must be at least delay ({delay:g}s)")
    jitter = _checked(doc, ("backoff", "jitter"), _bool, value.get("jitter", default.jitter))
    return Backoff(kind, delay, max_s, jitter)


def _backoff_delay(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("expected a duration like 10s, or a mapping like "
                         f"{{kind: exponential, delay: 1s, max: 5m, jitter: true}}; got {value!r}")
    return _positive_duration(value)


def _backoff_kind(value: object) -> str:
    if value not in BACKOFF_KINDS:
        raise ValueError(f"unknown kind {value!r}{did_you_mean(value, BACKOFF_KINDS)} "
                         f"(expected one of: {', '.join(BACKOFF_KINDS)})")
    return str(value)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _parse_name(doc: Document, value: object) -> str:
    if value is None:
        if not NAME_PATTERN.fullmatch(doc.path.stem):
            raise doc.error(("name",), f"the job name {doc.path.stem!r} comes from the file name; "
                                       "set 'name:' to letters, digits, '_', '.' and '-' only")
        return doc.path.stem
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise doc.error(("name",), f"job name {value!r} may only contain letters, digits, '_', '.' and '-'")
    return value


def _parse_queue(doc: Document, value: object, queues: Sequence[str]) -> str:
    if value is None:
        return "default" if "default" in queues else queues[-1]
    if value not in queues:
        raise doc.error(("queue",), f"unknown queue {value!r}{did_you_mean(value, queues)} "
                                    f"(configured queues: {', '.join(queues)})")
    return str(value)


def _parse_target(doc: Document, data: Mapping[str, Any],
                  params: Mapping[str, Param]) -> tuple[str | None, tuple[str, ...] | None]:
    handler, command = data.get("handler"), data.get("command")
    if handler is not None and command is not None:
        raise doc.error(("command",), "give either 'handler' or 'command', not both")
    if handler is None and command is None:
        raise doc.error((), "missing 'handler' (module.path:function) or 'command' (argv list)")
    if handler is not None:
        if not isinstance(handler, str) or not _HANDLER.fullmatch(handler):
            raise doc.error(("handler",), f"expected 'module.path:function', got {handler!r}")
        return handler, None
    return None, _parse_command(doc, command, params)


def _parse_command(doc: Document, command: object, params: Mapping[str, Param]) -> tuple[str, ...]:
    """An argv list run without a shell, so quoting and globbing can never surprise anyone."""
    if not isinstance(command, list) or not command:
        raise doc.error(("command",), "expected a non-empty list of arguments, like [python, -m, tool]")
    args = []
    for index, arg in enumerate(command):
        if isinstance(arg, bool) or not isinstance(arg, (str, int)):
            raise doc.error(("command", index), f"expected a string argument, got {arg!r} (quote it)")
        try:
            _check_placeholders(str(arg), params)
        except ValueError as exc:
            raise doc.error(("command", index), str(exc)) from None
        args.append(str(arg))
    return tuple(args)


def _check_placeholders(arg: str, params: Mapping[str, Param]) -> None:
    for match in _PLACEHOLDER.finditer(arg):
        name = match[1]
        if match[0] in ("{", "}"):
            raise ValueError(f"stray {match[0]!r} in {arg!r}: write {{name}} for a param "
                             "and {{ or }} for a literal brace")
        if name is not None and name not in params:
            declared = ", ".join(params) or "none"
            raise ValueError(f"placeholder {{{name}}} names no declared param{did_you_mean(name, params)} "
                             f"(declared params: {declared})")
        if name is not None and not params[name].has_value:
            raise ValueError(f"placeholder {{{name}}} uses an optional param without a default; "
                             "make it required or give it a default")


def _parse_params(doc: Document, value: object) -> dict[str, Param]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(("params",), "expected a mapping of param name to {type: ..., ...}")
    return {name: _parse_param(doc, name, spec) for name, spec in value.items()}


def _parse_param(doc: Document, name: object, spec: object) -> Param:
    where = ("params", name)
    if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
        raise doc.error(where, f"param name {name!r} must be an identifier (letters, digits, '_')")
    if not isinstance(spec, dict):
        raise doc.error(where, "expected a mapping like {type: int, required: true}")
    unknown = doc.unknown_key_errors(where, spec, _PARAM_KEYS)
    if unknown:
        raise unknown[0]
    type_name = spec.get("type")
    if type_name not in TYPES:
        problem = f"unknown type {type_name!r}" if "type" in spec else "missing 'type'"
        raise doc.error(where + ("type",), f"{problem} (expected one of: {', '.join(TYPES)})")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise doc.error(where + ("required",), f"expected true or false, got {required!r}")
    default = spec.get("default", MISSING)
    if required and default is not MISSING:
        raise doc.error(where + ("default",), "a required param cannot have a default; drop one of them")
    if default is not MISSING:
        try:
            default = check_value(type_name, default)
        except ValueError as exc:
            raise doc.error(where + ("default",), f"default does not match type: {exc}") from None
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise doc.error(where + ("description",), f"expected a string, got {description!r}")
    return Param(name, type_name, required, default, description)
