"""telephone: energy above 4 kHz removed, below 300 Hz attenuated, length and F0 kept, replay, bad input."""

from __future__ import annotations

import numpy as np
from pytest import approx
from scipy.signal import welch

from intervox.dsp import median_f0
from intervox.interventions.ops.telephone import Telephone, mu_law_codec


def band_energy(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    f, p = welch(x, sr, nperseg=1024)
    return float(p[(f >= lo) & (f < hi)].sum())


def test_energy_above_4k_is_removed(speech):
    sr = speech.sr
    out = Telephone().apply(speech.audio, sr, low_hz=300.0, high_hz=3400.0, mu_law=True)
    assert out.size == speech.audio.size
    src_hi = band_energy(speech.audio, sr, 4500, 8000) / band_energy(speech.audio, sr, 300, 3400)
    out_hi = band_energy(out, sr, 4500, 8000) / band_energy(out, sr, 300, 3400)
    assert src_hi > 1e-3  # the source does have energy there
    assert out_hi < src_hi * 1e-3
    # 300 Hz high-pass: energy under 150 Hz drops by more than 20 dB relative to the band
    assert (band_energy(out, sr, 20, 150) / band_energy(out, sr, 300, 3400)
            < 0.01 * band_energy(speech.audio, sr, 20, 150) / band_energy(speech.audio, sr, 300, 3400))


def test_f0_held(speech):
    out = Telephone().apply(speech.audio, speech.sr)
    assert median_f0(out, speech.sr) == approx(median_f0(speech.audio, speech.sr), rel=0.03)


def test_mu_law_has_256_levels_and_small_relative_error():
    x = np.linspace(-1, 1, 100001)
    y = mu_law_codec(x)
    assert np.unique(np.round(y, 9)).size <= 256
    loud = np.abs(x) > 0.05
    assert np.max(np.abs(y[loud] - x[loud]) / np.abs(x[loud])) < 0.05


def test_same_seed_same_bytes(speech, utt, replay_twice):
    p, a, b = replay_twice(Telephone(), speech.audio, speech.sr, utt)
    assert p == {"low_hz": 300.0, "high_hz": 3400.0, "mu_law": True}
    assert a.tobytes() == b.tobytes()


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(Telephone(), {})
