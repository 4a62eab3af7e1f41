"""nansy: parameter ranges over many seeds, inversion rate, output sanity, replay, bad input."""

from __future__ import annotations

import json

import numpy as np
from pytest import approx

from intervox.dsp import median_f0
from intervox.interventions.ops.nansy import Nansy, eq_centres, parametric_eq


def test_params_stay_in_the_stated_ranges_and_invert_half_the_time(utt):
    op = Nansy()
    draws = [op.sample_params(np.random.default_rng([seed]), utt) for seed in range(200)]
    for p in draws:
        assert 1 / 1.4 <= p["formant_ratio"] <= 1.4
        assert 1 / 2.0 <= p["pitch_ratio"] <= 2.0
        assert 1 / 1.5 <= p["pitch_range"] <= 1.5
        assert len(p["eq_gains_db"]) == 10 and all(-12 <= g <= 12 for g in p["eq_gains_db"])
        assert len(p["eq_qs"]) == 10 and all(2 <= q <= 5 for q in p["eq_qs"])
        json.dumps(p)
    for field in ("formant_ratio", "pitch_ratio", "pitch_range"):
        inverted = np.mean([p[field] < 1 for p in draws])
        assert 0.4 <= inverted <= 0.6, field  # binomial(200, 0.5): 4 sigma is +-0.14


def test_eq_centres_are_log_spaced_below_nyquist():
    f = eq_centres(16000)
    assert f[0] == approx(60) and f[-1] == approx(7200)  # 7600 clipped to 0.45 * 16 kHz
    assert np.allclose(np.diff(np.log(f[:-1])), np.log(7600 / 60) / 9)
    assert eq_centres(8000).max() <= 3600


def test_peaking_band_gain_is_measured_at_its_centre():
    sr = 16000
    gains = [0.0] * 10
    gains[5] = 9.0
    t = np.arange(sr) / sr
    f5 = eq_centres(sr)[5]
    tone = np.sin(2 * np.pi * f5 * t)
    out = parametric_eq(tone, sr, gains, [2.0] * 10)
    gain_db = 20 * np.log10(np.std(out[sr // 2:]) / np.std(tone[sr // 2:]))
    assert gain_db == approx(9.0, abs=0.2)


def test_output_is_finite_same_length_and_pitch_moved(speech):
    out = Nansy().apply(speech.audio, speech.sr, formant_ratio=1.2, pitch_ratio=1.5, pitch_range=1.0,
                        eq_gains_db=[6.0, -6.0] * 5, eq_qs=[3.0] * 10)
    assert out.size == speech.audio.size and np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 0.99
    assert median_f0(out, speech.sr) / median_f0(speech.audio, speech.sr) == approx(1.5, rel=0.05)


def test_same_seed_same_bytes(speech, utt, replay_twice):
    _, a, b = replay_twice(Nansy(), speech.audio, speech.sr, utt)
    assert a.tobytes() == b.tobytes() and a.size == speech.audio.size


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(Nansy(), {"formant_ratio": 1.1, "pitch_ratio": 1.2, "pitch_range": 1.0,
                                "eq_gains_db": [0.0] * 10, "eq_qs": [2.0] * 10})
