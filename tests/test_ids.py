"""Job ids stay unique across processes: a forked child (workers submit too) draws its own random half, and a
handler's random.seed() cannot make two processes draw the same ids."""
from __future__ import annotations

import multiprocessing
import random

import pytest

from batchrun.ids import is_job_id, new_job_id

pytestmark = pytest.mark.timeout(30)


def _draw(seed: bool, out: "multiprocessing.Queue[list[str]]") -> None:
    if seed:
        random.seed(0)
    out.put([new_job_id()[12:] for _ in range(50)])


def _children(seed: bool) -> list[list[str]]:
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    children = [context.Process(target=_draw, args=(seed, out)) for _ in range(2)]
    for child in children:
        child.start()
    drawn = [out.get(timeout=20) for _ in children]
    for child in children:
        child.join(timeout=20)
    return drawn


@pytest.mark.parametrize("seed", [False, True])
def test_forked_children_draw_ids_of_their_own(seed):
    new_job_id()
    first, second = _children(seed)
    mine = [new_job_id()[12:] for _ in range(50)]
    assert not set(first) & set(second) and not set(first) & set(mine) and not set(second) & set(mine)


def test_ids_are_well_formed_and_time_ordered():
    ids = [new_job_id() for _ in range(1000)]
    assert all(is_job_id(x) for x in ids)
    assert [x[:12] for x in ids] == sorted(x[:12] for x in ids)
    assert len(set(ids)) == 1000
