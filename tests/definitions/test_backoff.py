import math

import pytest

from batchrun.definitions.backoff import DEFAULT, Backoff

ALMOST_ONE = math.nextafter(1.0, 0.0)


def test_exponential_doubles_from_delay_up_to_max():
    backoff = Backoff("exponential", 2.0, 30.0, jitter=False)
    assert [backoff.delay_s_for(failure, 0.5) for failure in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_fixed_waits_the_same_after_every_failure():
    backoff = Backoff("fixed", 7.0, 7.0, jitter=False)
    assert {backoff.delay_s_for(failure, 0.9) for failure in (1, 2, 10, 100)} == {7.0}


def test_fixed_ignores_max():
    assert Backoff("fixed", 10.0, 300.0, jitter=False).delay_s_for(20, 0.0) == 10.0


@pytest.mark.parametrize("failure, base", [(1, 1.0), (4, 8.0), (50, 300.0)])
def test_equal_jitter_spans_half_to_all_of_the_base(failure, base):
    assert DEFAULT.delay_s_for(failure, 0.0) == base / 2
    assert DEFAULT.delay_s_for(failure, 0.5) == base * 0.75
    high = DEFAULT.delay_s_for(failure, ALMOST_ONE)
    assert base * 0.999 < high <= base      # never above the base, even as u nears 1


def test_jitter_applies_to_fixed_too():
    assert Backoff("fixed", 10.0, 10.0, jitter=True).delay_s_for(3, 0.0) == 5.0


def test_default_is_exponential_one_second_to_five_minutes_with_jitter():
    assert DEFAULT == Backoff("exponential", 1.0, 300.0, True)


@pytest.mark.parametrize("failure", [1025, 10**6, 10**100])
def test_huge_failure_counts_stay_at_the_cap(failure):
    assert Backoff("exponential", 1.0, 300.0, jitter=False).delay_s_for(failure, 0.3) == 300.0
    assert Backoff("exponential", 1e300, 1e301, jitter=True).delay_s_for(failure, 0.0) == 5e300


def test_failure_counts_from_one():
    with pytest.raises(ValueError, match="from 1"):
        DEFAULT.delay_s_for(0, 0.5)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown backoff kind 'exponental'"):
        Backoff("exponental", 1.0, 2.0, jitter=False)
