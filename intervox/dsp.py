"""Small shared DSP helpers built on Praat (parselmouth): pitch measures and 'Change gender'.

Both the voice bank (pseudo-speakers) and the interventions (praat_gender) use these,
so they live below both stages.
"""

from __future__ import annotations

import threading

import numpy as np
import parselmouth
from parselmouth.praat import call, run

from intervox.errors import InterventionError

PITCH_FLOOR = 60.0
PITCH_CEILING = 600.0

# Praat's PSOLA draws random periods for unvoiced stretches from one process-wide generator:
# seeding it right before the call (under a lock, so threads cannot interleave) makes
# 'Change gender' return the same samples for the same input.
_PRAAT_RNG_LOCK = threading.Lock()


def _sound(audio: np.ndarray, sr: int) -> parselmouth.Sound:
    return parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=float(sr))


def f0_contour(audio: np.ndarray, sr: int) -> np.ndarray:
    """Return the voiced F0 values (Hz) of `audio` from Praat's autocorrelation pitch."""
    pitch = _sound(audio, sr).to_pitch(time_step=0.01, pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING)
    f0 = pitch.selected_array["frequency"]
    return f0[f0 > 0]


def median_f0(audio: np.ndarray, sr: int) -> float:
    """Return the median F0 (Hz) of the voiced frames of `audio`; NaN when nothing is voiced."""
    f0 = f0_contour(audio, sr)
    return float(np.median(f0)) if f0.size else float("nan")


def mean_formants(audio: np.ndarray, sr: int, max_formant: float = 5500.0) -> tuple[float, float]:
    """Return the mean F1 and F2 (Hz) over voiced frames (Burg method)."""
    snd = _sound(audio, sr)
    formant = snd.to_formant_burg(time_step=0.01, max_number_of_formants=5, maximum_formant=max_formant)
    pitch = snd.to_pitch(time_step=0.01, pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING)
    f1s, f2s = [], []
    for t, f0 in zip(pitch.xs(), pitch.selected_array["frequency"], strict=True):
        if f0 <= 0:
            continue
        f1, f2 = formant.get_value_at_time(1, t), formant.get_value_at_time(2, t)
        if np.isfinite(f1) and np.isfinite(f2):
            f1s.append(f1)
            f2s.append(f2)
    if not f1s:
        return float("nan"), float("nan")
    return float(np.mean(f1s)), float(np.mean(f2s))


def change_gender(
    audio: np.ndarray,
    sr: int,
    *,
    formant_ratio: float,
    pitch_median_hz: float,
    pitch_range: float,
    duration_factor: float = 1.0,
    seed: int = 0,
    f0: np.ndarray | None = None,
) -> np.ndarray:
    """Return Praat 'Change gender' of `audio`: formants scaled, pitch moved to a new median.

    `pitch_median_hz` of 0 keeps the original median. Praat can hang when the scaled pitch
    minimum falls below zero, so the pitch range factor is reset to 1 in that case. Praat's
    random generator is seeded with `seed` first, so the output is the same for the same input.
    `f0`: this audio's `f0_contour`, when the caller has it already (a pitch analysis is a third
    of the cost).
    """
    snd = _sound(audio, sr)
    f0 = f0_contour(audio, sr) if f0 is None else f0
    if f0.size == 0:
        raise InterventionError("change_gender: no voiced frames in input (cannot shift pitch)")
    old_median = float(np.median(f0))
    new_median = pitch_median_hz if pitch_median_hz > 0 else old_median
    # Praat maps f0 -> new_median + (f0 * new_median/old_median - new_median) * range.
    scaled_min = new_median + (float(f0.min()) * new_median / old_median - new_median) * pitch_range
    if scaled_min <= 0:
        pitch_range = 1.0
    with _PRAAT_RNG_LOCK:
        run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed)})")
        out = call(snd, "Change gender", PITCH_FLOOR, PITCH_CEILING, float(formant_ratio),
                   float(new_median), float(pitch_range), float(duration_factor))
    y = np.asarray(out.values[0], dtype=np.float32)
    n = int(round(len(audio) * duration_factor))
    # Praat may return a few samples more or less; hold the length exactly for alignment.
    if y.size >= n:
        y = y[:n]
    else:
        y = np.pad(y, (0, n - y.size))
    return np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
