"""The inputs of a `batchrun map`: one params object per JSONL line, or a CSV file with a header row.

Inputs are streamed one line at a time, so a million-line file takes
bounded memory. Every error names the file, the line and the field, as job
file errors do. CSV cells are text: they are converted by the declared type
of their column's param (definitions/params.py), as `submit -p` does, and an
empty cell means the param is not given (its default applies).
"""
from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator, Mapping
from typing import IO, Any

import orjson

from batchrun.definitions.params import Param, parse_text
from batchrun.definitions.yamlfile import did_you_mean
from batchrun.errors import SubmitError

FORMATS = ("jsonl", "csv")
STDIN = "-"


def input_format(path: str, given: str | None) -> str:
    """The format asked for, or the file's: `.csv` is CSV, anything else (and standard input) JSONL."""
    if given:
        return given
    return "csv" if path.lower().endswith(".csv") else "jsonl"


def read_inputs(path: str, fmt: str, declared: Mapping[str, Param]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", params) for every input of the file (`-`: standard input); blank lines are skipped."""
    name = "<stdin>" if path == STDIN else path
    try:
        stream = _open(path, fmt)
    except OSError as exc:
        raise SubmitError(f"{name}: cannot read the input: {exc.strerror or exc}") from None
    with stream:
        lines = _jsonl(name, stream) if fmt == "jsonl" else _csv(name, stream, declared)
        for line_no, params in lines:
            yield f"{name}:{line_no}", params


def _open(path: str, fmt: str) -> IO:
    if path == STDIN:
        raw = sys.stdin.buffer
        return io.TextIOWrapper(raw, encoding="utf-8", newline="") if fmt == "csv" else raw
    return open(path, encoding="utf-8", newline="") if fmt == "csv" else open(path, "rb")


def _jsonl(name: str, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    for line_no, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            params = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise SubmitError(f"{name}:{line_no}: not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise SubmitError(f"{name}:{line_no}: expected a JSON object of params, got {type(params).__name__}")
        yield line_no, params


def _csv(name: str, stream: IO[str], declared: Mapping[str, Param]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = _columns(name, header, declared)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield reader.line_num, _row(name, reader.line_num, row, columns, declared)
    except UnicodeDecodeError as exc:
        raise SubmitError(f"{name}: not UTF-8 text: {exc.reason}") from None
    except csv.Error as exc:
        raise SubmitError(f"{name}:{reader.line_num}: {exc}") from None


def _columns(name: str, header: list[str], declared: Mapping[str, Param]) -> list[str]:
    columns = [cell.strip() for cell in header]
    for number, column in enumerate(columns, 1):
        if column not in declared:
            known = ", ".join(declared) or "none"
            raise SubmitError(f"{name}:1: column {number} {column!r} is not a param of the job"
                              f"{did_you_mean(column, declared)} (declared params: {known})")
        if columns.index(column) != number - 1:
            raise SubmitError(f"{name}:1: column {column!r} appears twice")
    return columns


def _row(name: str, line_no: int, row: list[str], columns: list[str],
         declared: Mapping[str, Param]) -> dict[str, Any]:
    if len(row) != len(columns):
        raise SubmitError(f"{name}:{line_no}: {len(row)} cells, but the header has {len(columns)} columns")
    params: dict[str, Any] = {}
    for column, cell in zip(columns, row):
        if cell == "":
            continue
        try:
            params[column] = parse_text(declared[column].type, cell)
        except ValueError as exc:
            raise SubmitError(f"{name}:{line_no}: param {column!r}: {exc}") from None
    return params
