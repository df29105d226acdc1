"""YAML files loaded as plain data that still know where each field came from.

People fix a config mistake fastest when the error names the file, the line
and the field. PyYAML's constructed objects forget their position, so we
compose the node tree first, record the line of every field path, then build
the data from the same nodes. Duplicate keys, which PyYAML silently lets the
last one win, are refused here: in a job file they are almost always a typo.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batchrun.errors import ConfigError, Location

FieldPath = tuple[Any, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Document:
    path: Path
    data: Any
    lines: Mapping[FieldPath, int]

    def line(self, field_path: FieldPath) -> int | None:
        """Falls back to the nearest enclosing field, so a missing key still points somewhere useful."""
        for end in range(len(field_path), -1, -1):
            line = self.lines.get(tuple(field_path[:end]))
            if line is not None:
                return line
        return None

    def location(self, field_path: FieldPath) -> Location:
        return Location(display_path(self.path), self.line(field_path), render_field(field_path) or None)

    def error(self, field_path: FieldPath, message: str) -> ConfigError:
        return ConfigError(message, self.location(field_path))

    def unknown_key_errors(self, field_path: FieldPath, mapping: Mapping[Any, Any],
                           allowed: Iterable[str]) -> list[ConfigError]:
        """Unknown keys are refused rather than ignored, so a typo never silently drops a setting."""
        allowed = list(allowed)
        return [
            self.error(field_path + (key,), f"unknown key {key!r}{_hint(key, allowed)}")
            for key in mapping if key not in allowed
        ]


def load(path: Path) -> Document:
    """Parse one YAML file; every failure is a ConfigError naming the file (and line, when known)."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot read file: {reason}", Location(shown)) from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            lines: dict[FieldPath, int] = {}
            if node is None:
                return Document(path, None, lines)
            _index(loader, node, (), lines, set(), shown)
            return Document(path, loader.construct_document(node), lines)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(_syntax_message(exc), Location(shown, line)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"invalid YAML: special character #x{exc.character:04x} is not allowed",
                          Location(shown, line)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", Location(shown)) from None


def render_field(field_path: FieldPath) -> str:
    """`("params", "stop", "type")` → `params.stop.type`; list indexes as `queues[1]`."""
    text = ""
    for part in field_path:
        if type(part) is int:
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it: shorter, and what users typed."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for a close match, else the empty string. difflib is imported here, for the
    rare error that needs it, rather than by every process that loads a config."""
    import difflib

    matches = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def _hint(word: object, choices: list[str]) -> str:
    return did_you_mean(word, choices) or f" (known keys: {', '.join(choices)})"


def _index(loader: yaml.SafeLoader, node: yaml.Node, path: FieldPath,
           lines: dict[FieldPath, int], seen: set[int], shown: str) -> None:
    """Record the line of every field under `node`; each node is visited once, so aliases cannot loop."""
    if id(node) in seen:
        return
    seen.add(id(node))
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(loader, item, path + (index,), lines, seen, shown)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
            if key in first_line:
                raise ConfigError(f"duplicate key {key!r} (first defined on line {first_line[key]})",
                                  Location(shown, line, render_field(path + (key,))))
            first_line[key] = line
            lines[path + (key,)] = line
            _index(loader, value_node, path + (key,), lines, seen, shown)


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's own order: `while parsing X on line 2, expected Y`."""
    if not (exc.problem and exc.context):
        return f"invalid YAML: {exc.problem or exc.context}"
    where = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
    return f"invalid YAML: {exc.context}{where}, {exc.problem}"
