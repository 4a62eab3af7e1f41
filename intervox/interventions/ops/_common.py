"""Helpers the op modules share: range checks and draws that return plain JSON floats."""

from __future__ import annotations

import numpy as np


def check_range(op: str, field: str, value: tuple[float, float], lo: float | None = None,
                hi: float | None = None) -> None:
    """Raise ValueError (from_dict makes it a ConfigError) unless `value` is an ordered pair in [lo, hi]."""
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{op}.{field} must be a range [low, high] with low <= high, got {list(value)}")
    if (lo is not None and value[0] < lo) or (hi is not None and value[1] > hi):
        raise ValueError(f"{op}.{field} = {list(value)} must lie within [{lo}, {hi}]")


def draw(rng: np.random.Generator, value: tuple[float, float]) -> float:
    """Return one U(low, high) draw as a plain float (a fixed value when low == high)."""
    return float(rng.uniform(value[0], value[1]))


def draw_ratio(rng: np.random.Generator, value: tuple[float, float], min_shift: float) -> float:
    """Return a U draw from the ratio range with the band (1/(1+m), 1+m) around 1 cut out.

    A speaker op whose ratios land near 1 barely changes the voice (a judge cannot tell it
    from the source), so `min_shift` m > 0 keeps every draw at least that far from identity.
    m = 0 is the plain uniform draw.
    """
    lo, hi = value
    if min_shift <= 0 or (lo == hi and not 1.0 / (1.0 + min_shift) < lo < 1.0 + min_shift):
        return draw(rng, value)  # also a fixed ratio outside the band: nothing to cut out
    cut_lo, cut_hi = 1.0 / (1.0 + min_shift), 1.0 + min_shift
    below = max(0.0, min(hi, cut_lo) - lo)
    above = max(0.0, hi - max(lo, cut_hi))
    if below + above <= 0:
        raise ValueError(f"range {list(value)} lies entirely within min_shift {min_shift} of 1 "
                             "(set min_shift: 0 to allow near-identity changes)")
    u = float(rng.uniform(0.0, below + above))
    return lo + u if u < below else max(lo, cut_hi) + (u - below)


def check_min_shift(op: str, fields: dict[str, tuple[float, float]], min_shift: float) -> None:
    """Raise ValueError unless each ratio range keeps some values `min_shift` away from 1."""
    if min_shift < 0:
        raise ValueError(f"{op}.min_shift must be >= 0, got {min_shift}")
    for name, value in fields.items():
        if min_shift > 0 and value[0] > 1 / (1 + min_shift) and value[1] < 1 + min_shift:
            raise ValueError(f"{op}.{name} = {list(value)} lies entirely within min_shift {min_shift} of 1 "
                             "(set min_shift: 0 to allow near-identity changes)")
