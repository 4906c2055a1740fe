"""Timecode parsing/formatting for --start/--end."""

import pytest

from streamcam.core.errors import UsageError
from streamcam.video.timecode import format_timecode, parse_timecode


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12.4", 12.4),
        ("0", 0.0),
        ("90", 90.0),
        (".5", 0.5),
        ("00:31", 31.0),
        ("2:05.25", 125.25),
        ("75:00", 4500.0),
        ("1:02:03.5", 3723.5),
        (" 0:00:01 ", 1.0),
        (7, 7.0),
        (2.5, 2.5),
    ],
)
def test_parse(text, seconds):
    assert parse_timecode(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "12s", "-1", "1:", ":30", "1:60", "1:2:3:4", "1.5:30", "00:61", "1:60:00", "nan", -3, float("inf")],
)
def test_parse_garbage(text):
    with pytest.raises(UsageError, match="invalid time"):
        parse_timecode(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00.000"),
        (12.4, "00:12.400"),
        (61.0004, "01:01.000"),
        (59.9996, "01:00.000"),
        (3723.5, "62:03.500"),
        (-1.5, "-00:01.500"),
    ],
)
def test_format(seconds, text):
    assert format_timecode(seconds) == text


@pytest.mark.parametrize("seconds", [0.0, 0.001, 12.345, 59.999, 600.25, 3723.5])
def test_round_trip(seconds):
    assert parse_timecode(format_timecode(seconds)) == pytest.approx(seconds, abs=5e-4)
