"""Pitch judge: F0 summary of real speech and the ratio an op's params ask for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intervox.dsp import change_gender, median_f0
from intervox.judges.pitch import pitch_stats, requested_pitch_ratio


def test_pitch_stats_of_speech_and_of_a_shifted_copy(clips):
    a = clips["espeak_fox"]
    s = pitch_stats(a, 16000)
    assert 70 < s.p5_hz < s.median_hz < s.p95_hz < 400 and s.voiced_frames > 50
    assert s.median_hz == pytest.approx(median_f0(a, 16000))
    assert s.range_semitones == pytest.approx(12 * math.log2(s.p95_hz / s.p5_hz))
    up = change_gender(a, 16000, formant_ratio=1.0, pitch_median_hz=1.5 * s.median_hz, pitch_range=1.0)
    assert pitch_stats(up, 16000).median_hz / s.median_hz == pytest.approx(1.5, rel=0.05)


def test_unvoiced_audio_gives_nan_not_an_error():
    noise = np.random.default_rng([0]).standard_normal(16000).astype(np.float32) * 0.01
    s = pitch_stats(noise, 16000)
    assert s.voiced_frames < 20
    silent = pitch_stats(np.zeros(16000, np.float32), 16000)
    assert silent.voiced_frames == 0 and math.isnan(silent.median_hz) and math.isnan(silent.range_semitones)
    assert silent.to_dict()["voiced_frames"] == 0


@pytest.mark.parametrize(("params", "src", "want"), [
    ({"pitch_ratio": 1.6}, None, 1.6),
    ({"semitones": 12}, None, 2.0),
    ({"n_steps": -12}, None, 0.5),
    ({"pitch_median_hz": 200.0}, 100.0, 2.0),
    ({"pitch_median_hz": 0}, 100.0, 1.0),  # 0 = keep the original median
    ({"pitch_median_hz": 200.0}, None, None),  # no source median to divide by
    ({"formant_ratio": 1.2}, 100.0, None),
    (None, 100.0, None),
])
def test_requested_pitch_ratio_reads_the_known_param_names(params, src, want):
    got = requested_pitch_ratio(params, src)
    assert got == (pytest.approx(want) if want is not None else None)
