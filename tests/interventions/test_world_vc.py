"""world_vc: measured F0 ratio, kept duration, formant direction, replay, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pytest import approx

from intervox.dsp import mean_formants, median_f0
from intervox.interventions.ops.world_vc import WorldVC

# Burg's 5-formant tracker renumbers formants on espeak's low male voice; the pitch-80 voice
# with a 4500 Hz ceiling tracks F1/F2 of shifted speech in the right direction (measured).
CEILING = 4500.0


@pytest.mark.parametrize("method", ["dio", "harvest"])
@pytest.mark.parametrize("ratio", [0.7, 1.5])
def test_f0_ratio_is_what_was_asked(speech, method, ratio):
    out = WorldVC(f0_method=method).apply(speech.audio, speech.sr, f0_ratio=ratio, alpha=1.0,
                                          f0_method=method)
    assert median_f0(out, speech.sr) / median_f0(speech.audio, speech.sr) == approx(ratio, rel=0.05)
    assert len(out) == approx(len(speech.audio), rel=0.01)


@pytest.mark.parametrize("alpha", [0.85, 1.2])
def test_envelope_warp_moves_formants_the_asked_way(high_voice, alpha):
    sr = high_voice.sr
    f1, f2 = mean_formants(high_voice.audio, sr, CEILING)
    out = WorldVC().apply(high_voice.audio, sr, f0_ratio=1.0, alpha=alpha)
    g1, g2 = mean_formants(out, sr, CEILING)
    if alpha > 1:
        assert g1 > f1 * 1.03 and g2 > f2 * 1.03
    else:
        assert g1 < f1 * 0.97 and g2 < f2 * 0.97
    assert median_f0(out, sr) / median_f0(high_voice.audio, sr) == approx(1.0, rel=0.03)


def test_aperiodicity_scale_adds_noise_energy(speech):
    op = WorldVC()
    plain = op.apply(speech.audio, speech.sr, f0_ratio=1.0, alpha=1.0, ap_scale=1.0)
    breathy = op.apply(speech.audio, speech.sr, f0_ratio=1.0, alpha=1.0, ap_scale=3.0)
    assert not np.array_equal(plain, breathy)
    assert median_f0(breathy, speech.sr) == approx(median_f0(plain, speech.sr), rel=0.05)


def test_same_seed_same_bytes(speech, utt, replay_twice):
    params, a, b = replay_twice(WorldVC(), speech.audio, speech.sr, utt)
    json.dumps(params)
    assert a.tobytes() == b.tobytes() and a.size == speech.audio.size


def test_sampled_params_stay_in_range(utt):
    op = WorldVC(f0_ratio=(0.8, 1.2), alpha=(0.9, 1.1), min_shift=0.0)
    for i in range(50):
        p = op.sample_params(np.random.default_rng([i]), utt)
        assert 0.8 <= p["f0_ratio"] <= 1.2 and 0.9 <= p["alpha"] <= 1.1 and p["f0_method"] == "dio"


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(WorldVC(), {"f0_ratio": 1.2, "alpha": 1.0})


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="f0_method"):
        WorldVC(f0_method="yin")
    with pytest.raises(ValueError, match="alpha"):
        WorldVC(alpha=(1.2, 0.9))
