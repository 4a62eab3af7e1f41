"""min_shift keeps speaker-op ratios away from identity, so every copy really changes the voice."""

from __future__ import annotations

import numpy as np
import pytest

from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError
from intervox.interventions.registry import from_dict

UTT = Utterance(id="u", audio="u.flac", speaker="s", text="t", language="en", corpus="c")


@pytest.mark.parametrize(
    "spec, keys",
    [
        ({"name": "praat_gender", "formant_ratio": [0.85, 1.2], "pitch_ratio": [0.6, 1.7]},
         ("formant_ratio", "pitch_ratio")),
        ({"name": "world_vc", "f0_ratio": [0.7, 1.5], "alpha": [0.88, 1.15]}, ("f0_ratio", "alpha")),
    ],
)
def test_draws_stay_out_of_the_identity_band_and_in_range(spec, keys):
    op = from_dict({**spec, "min_shift": 0.1})
    plain = from_dict({**spec, "min_shift": 0.0})
    draws = {k: [] for k in keys}
    near_one = 0
    for i in range(400):
        p = op.sample_params(np.random.default_rng([7, i]), UTT)
        q = plain.sample_params(np.random.default_rng([7, i]), UTT)
        near_one += any(1 / 1.1 < q[k] < 1.1 for k in keys)
        for k in keys:
            draws[k].append(p[k])
    assert near_one > 50  # without min_shift, many draws are near-identity
    for k in keys:
        x = np.array(draws[k])
        lo, hi = spec[k]
        assert np.all((x >= lo) & (x <= hi))
        assert not np.any((x > 1 / 1.1) & (x < 1.1))
        assert np.any(x < 1) and np.any(x > 1)  # both sides of the cut are used


def test_range_inside_the_band_is_a_config_error():
    with pytest.raises(ConfigError, match="min_shift"):
        from_dict({"name": "praat_gender", "formant_ratio": [0.95, 1.05], "min_shift": 0.1})


@pytest.mark.parametrize("name, keys", [("praat_gender", ("formant_ratio", "pitch_ratio")),
                                        ("world_vc", ("f0_ratio", "alpha"))])
def test_default_ops_never_draw_a_near_identity_voice(name, keys):
    # The calibrated defaults (bench/CALIBRATION.md): |ratio - 1| < 0.15 leaves the voice recognisable.
    op = from_dict({"name": name})
    for i in range(200):
        p = op.sample_params(np.random.default_rng([3, i]), UTT)
        assert all(not (1 / 1.15 < p[k] < 1.15) for k in keys), p


def test_a_fixed_ratio_outside_the_band_is_drawn_as_given():
    op = from_dict({"name": "praat_gender", "formant_ratio": [1.2, 1.2], "pitch_ratio": [0.7, 0.7]})
    p = op.sample_params(np.random.default_rng(0), UTT)
    assert p["formant_ratio"] == 1.2 and p["pitch_ratio"] == 0.7
