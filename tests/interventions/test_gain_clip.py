"""gain_clip: measured gain, clipping level, clip probability, replay, bad input."""

from __future__ import annotations

import numpy as np
from pytest import approx

from intervox.dsp import median_f0
from intervox.interventions.ops.gain_clip import GainClip


def test_gain_is_measured_in_db(speech):
    out = GainClip().apply(speech.audio, speech.sr, gain_db=-6.0, clip_ratio=1.0)
    assert 20 * np.log10(np.std(out) / np.std(speech.audio)) == approx(-6.0, abs=0.01)
    assert out.size == speech.audio.size


def test_clipping_caps_at_the_ratio_of_the_peak(speech):
    out = GainClip().apply(speech.audio, speech.sr, gain_db=0.0, clip_ratio=0.5)
    peak = np.max(np.abs(speech.audio))
    assert np.max(np.abs(out)) == approx(0.5 * peak, rel=1e-5)
    assert np.mean(np.abs(out) >= 0.5 * peak * (1 - 1e-6)) > 0.001  # some samples sit on the rail
    assert median_f0(out, speech.sr) == approx(median_f0(speech.audio, speech.sr), rel=0.03)


def test_clip_probability_and_ranges(utt):
    op = GainClip(clip_prob=0.5)
    draws = [op.sample_params(np.random.default_rng([s]), utt) for s in range(200)]
    assert all(-12 <= p["gain_db"] <= 6 for p in draws)
    clipped = np.mean([p["clip_ratio"] < 1.0 for p in draws])
    assert 0.4 <= clipped <= 0.6
    assert all(0.2 <= p["clip_ratio"] <= 0.7 for p in draws if p["clip_ratio"] < 1)


def test_same_seed_same_bytes(speech, utt, replay_twice):
    _, a, b = replay_twice(GainClip(), speech.audio, speech.sr, utt)
    assert a.tobytes() == b.tobytes()


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(GainClip(), {"gain_db": 3.0, "clip_ratio": 1.0})
