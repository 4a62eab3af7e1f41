"""reverb: RIR decay matches RT60, same length, level matched, user RIRs aligned, replay, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from pytest import approx

from intervox.dsp import median_f0
from intervox.interventions.ops.reverb import Reverb
from intervox.interventions.signal import active_power, peak_protect, synthetic_rir


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_generated_rir_decays_60_db_in_rt60(rt60):
    sr = 16000
    h = synthetic_rir(sr, rt60, np.random.default_rng([4]), drr_db=0.0)
    assert h[0] == 1.0 and np.argmax(np.abs(h)) == 0
    # Schroeder backward integration of the reverberant part; fit -5..-25 dB, extrapolate to -60 (T20).
    late = h[1:]
    edc = np.cumsum(late[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    t = np.arange(late.size) / sr
    sel = (edc_db < -5) & (edc_db > -25)
    slope = np.polyfit(t[sel], edc_db[sel], 1)[0]
    assert -60 / slope == approx(rt60, rel=0.15)


def test_output_same_length_level_matched_f0_held(speech):
    out = Reverb().apply(speech.audio, speech.sr, rt60=0.5, drr_db=3.0, rir_seed=9)
    assert out.size == speech.audio.size
    assert active_power(out, speech.sr) == approx(active_power(speech.audio, speech.sr), rel=0.05)
    assert median_f0(out, speech.sr) == approx(median_f0(speech.audio, speech.sr), rel=0.03)
    assert not np.allclose(out, speech.audio, atol=1e-3)


def test_user_rir_is_aligned_on_its_peak(tmp_path, speech, utt):
    h = np.zeros(4000)
    h[800] = 0.9  # 50 ms propagation delay before the direct path
    h[1200] = 0.3
    sf.write(tmp_path / "room.wav", h, 16000, subtype="FLOAT")
    op = Reverb(rir_dir=str(tmp_path))
    p = op.sample_params(np.random.default_rng([0]), utt)
    assert p == {"rir_file": "room.wav"}
    out = op.apply(speech.audio, speech.sr, **p)
    lag = np.argmax(np.correlate(out[:8000], speech.audio[:8000], mode="full")) - 7999
    assert lag == 0


def test_same_seed_same_bytes(speech, utt, replay_twice):
    p, a, b = replay_twice(Reverb(), speech.audio, speech.sr, utt)
    assert set(p) == {"rt60", "drr_db", "rir_seed"} and 0.2 <= p["rt60"] <= 0.8
    assert a.tobytes() == b.tobytes()


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(Reverb(), {"rt60": 0.4, "drr_db": 3.0, "rir_seed": 1})


def test_level_gain_and_peak_protection_in_one_step():
    y = np.array([0.2, -0.6, 0.3, 0.0])
    quiet = peak_protect(y, gain=0.5)  # under the peak: just the gain, as float32
    assert quiet.dtype == np.float32 and quiet.tolist() == approx([0.1, -0.3, 0.15, 0.0])
    loud = peak_protect(y, gain=3.0)  # 1.8 at the peak: scaled down to 0.99, shape kept
    assert np.max(np.abs(loud)) == approx(0.99) and loud.tolist() == approx((y * 0.99 / 0.6).tolist())
