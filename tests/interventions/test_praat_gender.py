"""praat_gender: measured pitch ratio, kept duration, formant direction, replay, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pytest import approx

from intervox.dsp import mean_formants, median_f0
from intervox.interventions.ops.praat_gender import PraatGender

CEILING = 4500.0  # see test_world_vc: the ceiling at which Burg tracks shifted espeak formants


@pytest.mark.parametrize("ratio", [0.7, 1.5])
def test_pitch_ratio_is_what_was_asked(speech, ratio):
    out = PraatGender().apply(speech.audio, speech.sr, formant_ratio=1.0, pitch_ratio=ratio, pitch_range=1.0)
    assert median_f0(out, speech.sr) / median_f0(speech.audio, speech.sr) == approx(ratio, rel=0.05)
    assert len(out) == approx(len(speech.audio), rel=0.01)


@pytest.mark.parametrize("shift", [0.85, 1.2])
def test_formant_shift_moves_f1_f2_the_asked_way(high_voice, shift):
    sr = high_voice.sr
    f1, f2 = mean_formants(high_voice.audio, sr, CEILING)
    out = PraatGender().apply(high_voice.audio, sr, formant_ratio=shift, pitch_ratio=1.0, pitch_range=1.0)
    g1, g2 = mean_formants(out, sr, CEILING)
    if shift > 1:
        assert g1 > f1 * 1.03 and g2 > f2 * 1.03
    else:
        assert g1 < f1 * 0.97 and g2 < f2 * 0.97
    assert median_f0(out, sr) / median_f0(high_voice.audio, sr) == approx(1.0, rel=0.03)


def test_same_seed_same_bytes(speech, utt, replay_twice):
    params, a, b = replay_twice(PraatGender(), speech.audio, speech.sr, utt)
    assert set(params) == {"formant_ratio", "pitch_ratio", "pitch_range"}
    json.dumps(params)
    assert a.tobytes() == b.tobytes() and a.size == speech.audio.size


def test_unvoiced_input_names_the_op():
    noise = np.random.default_rng([0]).standard_normal(16000).astype(np.float32) * 0.1
    with pytest.raises(Exception, match="praat_gender"):
        PraatGender().apply(noise, 16000, formant_ratio=1.1, pitch_ratio=1.2, pitch_range=1.0)


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(PraatGender(), {"formant_ratio": 1.1, "pitch_ratio": 1.2, "pitch_range": 1.0})
