"""Durations and sizes as specs write them: parsing, formatting, and what a size means."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from immutable_sdk.units import Size, format_duration, parse_duration, parse_size

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("7d", 604800),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("45", 45),
        (" 10 m ", 600),
        ("0s", 0),
        ("1h30m", 5400),
        ("90m30s", 5430),
        ("1h30m15s", 5415),
        ("1d12h", 129600),
        ("2m500ms", 120.5),
        ("1h 30m", 5400),
        ("1.5h30m", 7200),
        (90, 90),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "soon",
        "5x",
        "-5s",
        "5 minutes",
        "1e3s",
        True,
        None,
        -1,
        math.inf,
        math.nan,
        [5],
        "30m1h",
        "1h1h",
        "1hh",
        "h",
        "1h-30m",
        "1h30",
        "5ms1s",
    ],
)
def test_parse_duration_rejects_anything_else_naming_the_forms(bad: object) -> None:
    with pytest.raises(
        ValueError, match=r"expected a duration like '30s', '5m', '2h' or '1h30m', got"
    ):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (90, "90s"), (300, "5m"), (5400, "90m"), (7200, "2h"),
     (86400, "1d"), (0.25, "0.25s"), (1234567, "1234567s"), (1e-05, "0.00001s")],
)  # fmt: skip
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**12))
def test_whole_seconds_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_any_duration_round_trips_exactly(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m", "h", "d"]))
def test_whole_units_format_in_the_largest_exact_unit(count: int, unit: str) -> None:
    seconds = count * UNITS[unit]
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    number, used = int(text[:-1]), text[-1]
    assert UNITS[used] >= UNITS[unit]
    bigger = [u for u in ("m", "h", "d") if UNITS[u] > UNITS[used]]
    assert all(seconds % UNITS[u] for u in bigger)  # no larger unit would be exact
    assert number * UNITS[used] == seconds


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(UNITS)))
def test_every_unit_parses(count: int, unit: str) -> None:
    assert parse_duration(f"{count}{unit}") == count * UNITS[unit]


@pytest.mark.parametrize(
    ("text", "size"),
    [(3, Size(3)), ("3", Size(3)), ("25%", Size(25, True)), (" 100 % ", Size(100, True)),
     (0, Size(0)), ("150%", Size(150, True))],
)  # fmt: skip
def test_parse_size(text: object, size: Size) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["quarter", "-1", "2.5", "%", "25%%", -1, 2.5, True, None])
def test_parse_size_rejects_anything_else_naming_the_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a count or a percentage like '25%', got"):
        parse_size(bad)


@given(st.integers(min_value=0, max_value=10**9), st.booleans())
def test_sizes_round_trip_through_text(value: int, percent: bool) -> None:
    size = Size(value, percent)
    assert parse_size(str(size)) == size


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10),
)
def test_a_count_is_itself_whatever_the_total(value: int, total: int, minimum: int) -> None:
    assert Size(value).of(total, minimum=minimum) == max(minimum, value)


@given(st.integers(min_value=0, max_value=100_000), st.integers(min_value=0, max_value=200))
def test_a_percentage_rounds_up_by_default_and_down_on_request(total: int, percent: int) -> None:
    size = Size(percent, percent=True)
    assert size.of(total) == -(-total * percent // 100)  # exact integer ceiling
    assert size.of(total, round_up=False) == total * percent // 100


@pytest.mark.parametrize(
    ("percent", "total", "up", "down"),
    [(25, 4, 1, 1), (25, 5, 2, 1), (10, 3, 1, 0), (100, 7, 7, 7), (33, 300, 99, 99), (0, 9, 0, 0)],
)
def test_percentage_examples(percent: int, total: int, up: int, down: int) -> None:
    size = Size(percent, percent=True)
    assert (size.of(total), size.of(total, round_up=False)) == (up, down)
    assert size.of(total, round_up=False, minimum=1) == max(1, down)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h30m", 5400.0), ("90m30s", 5430.0), ("1d12h", 129600.0), ("2m500ms", 120.5)],
)
def test_compound_durations(text: str, seconds: float) -> None:
    from immutable_sdk.units import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1m1m", "30s1h", "h", "1h30", "1h-30m"])
def test_malformed_compound_durations(text: str) -> None:
    from immutable_sdk.units import parse_duration

    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)
