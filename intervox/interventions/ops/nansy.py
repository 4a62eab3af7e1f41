"""NANSY information perturbation (Choi et al. 2021): formant/pitch shift, then a random parametric EQ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.signal import sosfilt

from intervox.corpora.manifest import Utterance
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._common import check_range, draw
from intervox.interventions.ops.praat_gender import gender_shift
from intervox.interventions.registry import register
from intervox.interventions.signal import active_power, peak_protect, rbj_biquad

N_BANDS = 10  # low shelf, 8 peaking, high shelf
EQ_LOW_HZ, EQ_HIGH_HZ = 60.0, 7600.0


def eq_centres(sr: int) -> np.ndarray:
    """Return the 10 EQ centre frequencies: log-spaced 60-7600 Hz, clipped below Nyquist."""
    f = np.geomspace(EQ_LOW_HZ, EQ_HIGH_HZ, N_BANDS)
    return np.minimum(f, 0.45 * sr)


def parametric_eq(audio: np.ndarray, sr: int, gains_db: list[float], qs: list[float]) -> np.ndarray:
    """Return `audio` through the NANSY EQ: low shelf, 8 peaking, high shelf (RBJ biquads)."""
    kinds = ["lowshelf"] + ["peaking"] * (N_BANDS - 2) + ["highshelf"]
    bands = zip(kinds, eq_centres(sr), qs, gains_db, strict=True)
    sos = np.stack([rbj_biquad(k, f, q, g, sr) for k, f, q, g in bands])
    return sosfilt(sos, audio.astype(np.float64))


@register
@dataclass(frozen=True)
class Nansy(Intervention):
    """NANSY perturbation: each ratio drawn U(1, r) then inverted with p = 0.5; 10-band random PEQ."""

    name: ClassVar[str] = "nansy"
    target: ClassVar[Factor] = Factor.SPEAKER
    keeps_timing: ClassVar[bool] = True
    min_seconds: ClassVar[float] = 0.2

    formant_ratio: tuple[float, float] = (1.0, 1.4)
    pitch_ratio: tuple[float, float] = (1.0, 2.0)
    pitch_range: tuple[float, float] = (1.0, 1.5)
    eq_gain_db: tuple[float, float] = (-12.0, 12.0)
    eq_q_exponent: tuple[float, float] = (0.0, 1.0)  # Q = 2 * (5/2) ** U(0, 1), so Q in [2, 5]

    def __post_init__(self) -> None:
        for field in ("formant_ratio", "pitch_ratio", "pitch_range"):
            check_range(self.name, field, getattr(self, field), 1.0, 4.0)
        check_range(self.name, "eq_gain_db", self.eq_gain_db, -40.0, 40.0)
        check_range(self.name, "eq_q_exponent", self.eq_q_exponent, 0.0, 1.0)

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return the three (possibly inverted) ratios and 10 EQ gains (dB) and Qs."""
        params: dict = {}
        for field in ("formant_ratio", "pitch_ratio", "pitch_range"):
            r = draw(rng, getattr(self, field))
            params[field] = 1.0 / r if rng.random() < 0.5 else r
        params["eq_gains_db"] = [draw(rng, self.eq_gain_db) for _ in range(N_BANDS)]
        params["eq_qs"] = [float(2.0 * 2.5 ** draw(rng, self.eq_q_exponent)) for _ in range(N_BANDS)]
        return params

    def apply(self, audio: np.ndarray, sr: int, *, formant_ratio: float, pitch_ratio: float,
              pitch_range: float, eq_gains_db: list[float], eq_qs: list[float]) -> np.ndarray:
        """Return the perturbed audio at the input's active level; same length."""
        audio = self.check_input(audio, sr)
        y = gender_shift(self.name, audio, sr, formant_ratio=formant_ratio, pitch_ratio=pitch_ratio,
                         pitch_range=pitch_range)
        y = parametric_eq(y, sr, list(eq_gains_db), list(eq_qs))
        # The EQ's overall gain is not speaker information: restore the source's active level.
        level = np.sqrt(active_power(audio, sr) / max(active_power(y, sr), 1e-20))
        return self.check_output(self.name, peak_protect(y, gain=level))
