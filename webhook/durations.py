"""Durations as Istio writes them (Go `time.ParseDuration` syntax: `10s`, `1m30s`,
`250ms`), and Istio's own checks on them (>= 1ms, millisecond precision)."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
NS_PER_MS = 1_000_000


class DurationError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> int:
    """Nanoseconds in `text`; DurationError if it is not a duration. Cached: the same few
    values ("10s", "30s") recur in every object."""
    if not isinstance(text, str) or not text:
        raise DurationError(f"invalid duration {text!r}")
    s = text
    negative = s.startswith("-")
    if s[0] in "+-":
        s = s[1:]
    if s == "0":
        return 0
    pos, total = 0, Decimal(0)
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        try:
            total += Decimal(m.group(1)) * _UNITS_NS[m.group(2)]
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
            raise DurationError(f"invalid duration {text!r}") from exc
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise DurationError(f"invalid duration {text!r}")
    ns = int(total)
    return -ns if negative else ns


def istio_problem(text: str) -> str | None:
    """Istio's message for a duration it would reject, or None when it is fine
    (istio/istio pkg/config/validation/agent ValidateDuration)."""
    try:
        ns = parse(text)
    except DurationError:
        return f"invalid duration {text!r}: must be a valid duration greater than 1ms"
    if ns < NS_PER_MS:
        return "duration must be greater than 1ms"
    if ns % NS_PER_MS:
        return "only durations to ms precision are supported"
    return None
