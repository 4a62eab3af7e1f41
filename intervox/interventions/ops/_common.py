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
