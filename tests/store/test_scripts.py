"""Each job-state script carries the lib.lua definitions it uses, through each other too, and no others
(store/scripts.py): a missing one fails only when its path runs, an extra one costs every call."""
from __future__ import annotations

import re

import pytest

from batchrun.store import scripts

pytestmark = pytest.mark.timeout(30)


def _defined(source: str) -> list[str]:
    return re.findall(r"^local (?:function )?(\w+)", source, re.M)


def test_a_script_gets_what_it_calls_and_what_those_call_in_lib_order():
    # enqueue.lua calls context, emit and wake_one; emit calls publish
    assert _defined(scripts.source("enqueue"))[:4] == ["context", "publish", "emit", "wake_one"]
    # purge.lua needs only the namespace's keys
    assert _defined(scripts.source("purge"))[:2] == ["context", "job_key"]


def test_a_helper_used_only_through_another_comes_along():
    # ack.lua calls free_slot, which calls record_of; count_final calls end_batch, which calls emit
    ack = _defined(scripts.source("ack"))
    assert {"free_slot", "record_of", "count_final", "end_batch", "emit", "publish"} <= set(ack)
    assert ack.index("record_of") < ack.index("free_slot")


def test_names_in_comments_and_strings_bring_nothing():
    assert "cancel" not in _defined(scripts.source("enqueue"))  # enqueue.lua never calls cancel()
    assert scripts._lib_for("-- emit(ctx, id)\nreturn redis.call('GET', 'put_back')") == ""


def test_every_name_a_script_uses_from_lib_is_defined_before_the_script_runs():
    lib = scripts._lib_chunks()
    for name in scripts.JOB_STATE:
        source = scripts.source(name)
        defined = set(_defined(source))
        used = scripts._names(source) & lib.keys()
        assert used <= defined, f"{name}.lua uses {sorted(used - defined)} without their definitions"
