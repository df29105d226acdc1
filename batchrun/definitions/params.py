"""Job parameters: declared types, and strict checking of the values a submit gives.

Params travel as JSON and reach handlers as keyword arguments, so the types
are JSON's, checked strictly at submit time (a bool is not an int, unknown
names are refused): a bad submit fails in the user's terminal, not hours later
in a worker.
"""
from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchrun.definitions.yamlfile import did_you_mean
from batchrun.errors import SubmitError

TYPES = ("int", "float", "str", "bool", "list", "dict", "json")
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_JSON_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
               type(None): "null"}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    required: bool = False
    default: Any = MISSING
    description: str = ""

    @property
    def has_value(self) -> bool:
        """Whether a validated submit always carries this param (required, or filled by its default)."""
        return self.required or self.default is not MISSING


def check_value(type_name: str, value: Any) -> Any:
    """The value as stored (a float param accepts an int and stores a float); ValueError if it does not fit."""
    if type_name == "float" and _is_number(value):
        value = float(value)
    elif type_name == "list" and isinstance(value, tuple):
        value = list(value)
    if not _fits(type_name, value):
        raise ValueError(f"expected {type_name}, got {describe(value)}")
    if not _is_json(value):
        raise ValueError(f"{describe(value)} is not plain JSON (no NaN, infinity or non-string keys)")
    return value


def parse_text(type_name: str, text: str) -> Any:
    """A command-line string as a value of the declared type; ValueError says what was expected."""
    if type_name == "str":
        return text
    if type_name == "bool":
        if text.strip().lower() not in _BOOL_WORDS:
            raise ValueError(f"expected true/false, yes/no or 1/0, got {text!r}")
        return _BOOL_WORDS[text.strip().lower()]
    if type_name == "int":
        if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
            raise ValueError(f"expected int, got {text!r}")
        return int(text)
    if type_name == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected float, got {text!r}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected {type_name} as JSON, got {text!r} ({exc.msg})") from None


def validate_params(job: str, declared: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Checked params with defaults filled in; one SubmitError listing every problem."""
    if type(given) is not dict and not isinstance(given, Mapping):  # the ABC check costs 4x the type check
        raise SubmitError(f"job {job!r}: params must be a mapping of name to value, got {describe(given)}")
    problems = [_unknown_param(name, declared) for name in given if name not in declared] if given else []
    result: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            try:
                result[name] = check_value(param.type, given[name])
            except ValueError as exc:
                problems.append(f"param {name!r}: {exc}")
        elif param.default is not MISSING:
            result[name] = copy.deepcopy(param.default)
        elif param.required:
            problems.append(f"missing required param {name!r} ({param.type})")
    if problems:
        raise SubmitError(f"job {job!r}: " + "; ".join(problems))
    return result


def parse_cli_params(job: str, declared: Mapping[str, Param], pairs: Sequence[str], *,
                     validate: bool = True) -> dict[str, Any]:
    """`["stop=100", "label=x"]` → typed params, validated like any submit unless the caller
    merges them with params from elsewhere first (unknown names are then kept as text)."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SubmitError(f"job {job!r}: expected name=value, got {pair!r}")
        if name in values:
            raise SubmitError(f"job {job!r}: param {name!r} is given twice")
        param = declared.get(name)
        try:
            values[name] = parse_text(param.type, text) if param else text
        except ValueError as exc:
            raise SubmitError(f"job {job!r}: param {name!r}: {exc}") from None
    return validate_params(job, declared, values) if validate else values


def describe(value: Any) -> str:
    """A value as `int 5` or `str 'abc'`, in JSON's type names, short enough for one error line."""
    name = _JSON_NAMES.get(type(value), type(value).__name__)
    if value is None:
        return name
    text = repr(value)
    return f"{name} {text if len(text) <= 40 else text[:37] + '...'}"


def _unknown_param(name: object, declared: Mapping[str, Param]) -> str:
    known = ", ".join(declared) or "none"
    return f"unknown param {name!r}{did_you_mean(name, declared)} (declared params: {known})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fits(type_name: str, value: Any) -> bool:
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, float)
    if type_name == "json":
        return True
    return isinstance(value, {"str": str, "bool": bool, "list": list, "dict": dict}[type_name])


def _is_json(value: Any) -> bool:
    """Whether the value survives a JSON round trip unchanged in meaning (no NaN, no non-string keys)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False
