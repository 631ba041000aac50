from __future__ import annotations

import pytest

from webhook import durations


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("10s", 10_000_000_000),
        ("1m30s", 90_000_000_000),
        ("250ms", 250_000_000),
        ("1.5s", 1_500_000_000),
        ("1h", 3_600_000_000_000),
        ("0", 0),
        ("100us", 100_000),
    ],
)
def test_parse(text: str, ns: int) -> None:
    assert durations.parse(text) == ns


@pytest.mark.parametrize("text", ["", "10", "s", "10 s", "1x", "10s5", "ten seconds"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(durations.DurationError):
        durations.parse(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10s", None),
        ("1ms", None),
        ("500us", "duration must be greater than 1ms"),
        ("0s", "duration must be greater than 1ms"),
        ("1.0005s", "only durations to ms precision are supported"),
        ("abc", "invalid duration 'abc': must be a valid duration greater than 1ms"),
    ],
)
def test_istio_problem(text: str, problem: str | None) -> None:
    assert durations.istio_problem(text) == problem
