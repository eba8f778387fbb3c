"""Small validators shared by the spec and the datasets: each raises an
InputError naming the field and what is allowed."""

from __future__ import annotations

import math

from dlbench.errors import InputError, one_of

Shape = tuple[int, ...]


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"must be a positive integer, got {value!r}", field=name)
    if value <= 0:
        raise InputError(f"must be a positive integer, got {value}", field=name)
    return value


def check_number(value, name: str, *, low: float, high: float | None = None,
                 low_open: bool = True, high_open: bool = True) -> float:
    """A real number within (low, high) (bounds open or closed as asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"must be a number, got {value!r}", field=name)
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise InputError(f"must be in {lo}{low}, {high if high is not None else 'inf'}{hi}, got {value}",
                         field=name)
    return float(value)


def check_choice(value, allowed, name: str) -> str:
    if value not in allowed:
        raise InputError(f"unknown {value!r}; {one_of(allowed)}", field=name)
    return value


def format_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
