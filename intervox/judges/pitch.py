"""Pitch judge: median F0 and 5th-95th percentile range (Praat), and the pitch ratio an op asked for."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from intervox.dsp import f0_contour


@dataclass(frozen=True)
class PitchStats:
    """F0 summary of one clip; NaN fields when nothing is voiced."""

    median_hz: float
    p5_hz: float
    p95_hz: float
    voiced_frames: int

    @property
    def range_semitones(self) -> float:
        """Return the 5th-95th percentile F0 range in semitones."""
        if not (self.p5_hz > 0 and self.p95_hz > 0):
            return float("nan")
        return 12.0 * math.log2(self.p95_hz / self.p5_hz)

    def to_dict(self) -> dict:
        return {**asdict(self), "range_semitones": self.range_semitones}


def pitch_stats(audio: np.ndarray, sr: int) -> PitchStats:
    """Return the median F0 and its 5th/95th percentiles (Hz) over the voiced frames of `audio`."""
    f0 = f0_contour(audio, sr)
    if f0.size == 0:
        nan = float("nan")
        return PitchStats(nan, nan, nan, 0)
    p5, med, p95 = np.percentile(f0, [5, 50, 95])
    return PitchStats(float(med), float(p5), float(p95), int(f0.size))


def requested_pitch_ratio(params: dict | None, source_median_hz: float | None = None) -> float | None:
    """Return the F0 ratio (edit / source) an op's params ask for, or None if they say nothing of pitch.

    Understood keys, in order: `pitch_ratio`, `pitch_shift_ratio`, `f0_ratio` (ratios);
    `pitch_semitones`, `semitones`, `n_steps` (semitones); `pitch_median_hz`/`new_pitch_median`
    (a target median in Hz, divided by the source's measured median; 0 means "keep").
    """
    if not params:
        return None
    for k in ("pitch_ratio", "pitch_shift_ratio", "f0_ratio"):
        if isinstance(params.get(k), (int, float)) and params[k] > 0:
            return float(params[k])
    for k in ("pitch_semitones", "semitones", "n_steps"):
        if isinstance(params.get(k), (int, float)):
            return float(2.0 ** (params[k] / 12.0))
    for k in ("pitch_median_hz", "new_pitch_median"):
        v = params.get(k)
        if isinstance(v, (int, float)) and source_median_hz and source_median_hz > 0:
            return 1.0 if v <= 0 else float(v / source_median_hz)
    return None
