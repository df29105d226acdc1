"""Inputs of `batchrun map`: JSONL lines and CSV rows, converted by declared types, with file:line errors."""
from __future__ import annotations

import pytest

from batchrun.definitions.inputs import input_format, read_inputs
from batchrun.definitions.params import Param
from batchrun.errors import SubmitError

DECLARED = {"n": Param("n", "int", required=True), "x": Param("x", "float"), "ok": Param("ok", "bool"),
            "tags": Param("tags", "list"), "name": Param("name", "str")}


def _read(tmp_path, name: str, text: str, fmt: str | None = None) -> list:
    path = tmp_path / name
    path.write_text(text)
    return list(read_inputs(str(path), input_format(str(path), fmt), DECLARED))


def test_csv_cells_are_converted_by_the_declared_types(tmp_path):
    rows = _read(tmp_path, "in.csv", 'n,x,ok,tags,name\n1,2.5,yes,"[1, 2]",a b\n2,,false,[],\n')
    assert [params for _, params in rows] == [{"n": 1, "x": 2.5, "ok": True, "tags": [1, 2], "name": "a b"},
                                              {"n": 2, "ok": False, "tags": []}]
    assert rows[0][0].endswith("in.csv:2") and rows[1][0].endswith("in.csv:3")


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    rows = _read(tmp_path, "in.jsonl", '{"n": 1}\n\n{"n": 2, "name": "b"}\n')
    assert [(where.rsplit(":", 1)[1], params) for where, params in rows] == [("1", {"n": 1}),
                                                                              ("3", {"n": 2, "name": "b"})]


def test_a_file_ending_in_csv_is_csv_and_anything_else_jsonl():
    assert input_format("rows.CSV", None) == "csv"
    assert input_format("rows.txt", None) == "jsonl"
    assert input_format("-", "csv") == "csv"


@pytest.mark.parametrize("name, text, message", [
    ("in.csv", "n,size\n1,2\n", r"in.csv:1: column 2 'size' is not a param of the job"),
    ("in.csv", "n,n\n1,2\n", r"in.csv:1: column 'n' appears twice"),
    ("in.csv", "n,x\n1\n", r"in.csv:2: 1 cells, but the header has 2 columns"),
    ("in.csv", "n,ok\n1,maybe\n", r"in.csv:2: param 'ok': expected true/false"),
    ("in.jsonl", '{"n": 1}\n[1]\n', r"in.jsonl:2: expected a JSON object of params, got list"),
    ("in.jsonl", '{"n": 1,\n', r"in.jsonl:1: not valid JSON"),
])
def test_errors_name_file_line_and_field(tmp_path, name, text, message):
    with pytest.raises(SubmitError, match=message):
        _read(tmp_path, name, text)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SubmitError, match="cannot read the input"):
        list(read_inputs(str(tmp_path / "nope.jsonl"), "jsonl", DECLARED))
