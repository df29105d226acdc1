import pytest

from batchrun.definitions.durations import parse_duration, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5),
    ("30s", 30.0),
    ("5m", 300.0),
    ("2h", 7200.0),
    ("1d", 86400.0),
    ("1.5s", 1.5),
    (" 10 s ", 10.0),
    ("45", 45.0),
    (0, 0.0),
    (7, 7.0),
    (2.5, 2.5),
])
def test_duration_forms(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("value, expected_words", [
    ("-5s", "negative"),
    (-1, "non-negative"),
    (True, "expected a duration"),
    (None, "expected a duration"),
    ([1], "expected a duration"),
    ("5 minutes", "unknown duration unit 'minutes'"),
    ("5w", "unknown duration unit 'w'"),
    ("fast", "invalid duration 'fast'"),
    ("", "invalid duration"),
    ("1.2.3s", "invalid duration"),
    (float("nan"), "non-negative"),
    (float("inf"), "non-negative"),
])
def test_duration_rejections(value, expected_words):
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert expected_words in str(caught.value)


@pytest.mark.parametrize("text, size", [
    ("512", 512),
    (512, 512),
    ("512B", 512),
    ("64KiB", 64 * 1024),
    ("1MiB", 1024**2),
    ("2GiB", 2 * 1024**3),
    ("1TiB", 1024**4),
    ("1KB", 1000),
    ("1MB", 10**6),
    ("3GB", 3 * 10**9),
    ("1.5KiB", 1536),
    ("1mib", 1024**2),
])
def test_size_forms(text, size):
    assert parse_size(text) == size
    assert isinstance(parse_size(text), int)


@pytest.mark.parametrize("value, expected_words", [
    ("-1MiB", "negative"),
    (-5, "non-negative"),
    (False, "expected a size"),
    ("1 potato", "unknown size unit 'potato'"),
    ("lots", "invalid size"),
    ("0.5B", "whole number of bytes"),
    (1.5, "whole number of bytes"),
])
def test_size_rejections(value, expected_words):
    with pytest.raises(ValueError) as caught:
        parse_size(value)
    assert expected_words in str(caught.value)
