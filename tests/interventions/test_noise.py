"""noise: achieved SNR, colour spectra, noise files, F0 held, replay, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from pytest import approx

from intervox.dsp import median_f0
from intervox.errors import ConfigError
from intervox.interventions.ops.noise import Noise
from intervox.interventions.signal import active_power, coloured_noise


def achieved_snr(clean: np.ndarray, noisy: np.ndarray, sr: int) -> float:
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(active_power(clean, sr) / np.mean(noise**2))


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_achieved_snr_is_the_target(speech, colour, snr):
    clean = speech.audio * 0.3 / np.max(np.abs(speech.audio))
    out = Noise().apply(clean, speech.sr, snr_db=snr, colour=colour, noise_seed=11)
    assert out.size == clean.size
    assert achieved_snr(clean, out, speech.sr) == approx(snr, abs=0.5)


def test_colours_have_their_spectral_slopes():
    rng = np.random.default_rng([0])
    for colour, slope in (("white", 0.0), ("pink", -1.0), ("brown", -2.0)):
        x = coloured_noise(2**16, colour, rng)
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.arange(p.size)
        band = (f > 100) & (f < 20000)
        fitted = np.polyfit(np.log(f[band]), np.log(p[band]), 1)[0]
        assert fitted == approx(slope, abs=0.1), colour


def test_f0_is_held(speech):
    out = Noise().apply(speech.audio, speech.sr, snr_db=15.0, colour="pink", noise_seed=3)
    assert median_f0(out, speech.sr) == approx(median_f0(speech.audio, speech.sr), rel=0.03)


def test_noise_dir_records_file_and_offset_and_replays(tmp_path, speech, utt):
    rng = np.random.default_rng([5])
    for name in ("a.wav", "b.flac"):
        sf.write(tmp_path / name, 0.1 * rng.standard_normal(16000 * 2), 16000)
    op = Noise(noise_dir=str(tmp_path))
    p = op.sample_params(np.random.default_rng([1, 2, 3]), utt)
    assert p["noise_file"] in ("a.wav", "b.flac") and 0.0 <= p["offset"] <= 2.0
    clean = speech.audio * 0.3 / np.max(np.abs(speech.audio))
    a, b = op.apply(clean, speech.sr, **p), op.apply(clean, speech.sr, **p)
    assert a.tobytes() == b.tobytes()
    assert achieved_snr(clean, a, speech.sr) == approx(p["snr_db"], abs=0.5)


def test_missing_noise_dir_is_a_config_error(tmp_path, utt):
    with pytest.raises(ConfigError, match="noise_dir"):
        Noise(noise_dir=str(tmp_path / "nope")).sample_params(np.random.default_rng([0]), utt)


def test_same_seed_same_bytes(speech, utt, replay_twice):
    p, a, b = replay_twice(Noise(), speech.audio, speech.sr, utt)
    assert set(p) == {"snr_db", "colour", "noise_seed"} and 5 <= p["snr_db"] <= 20
    assert a.tobytes() == b.tobytes()


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(Noise(), {"snr_db": 10.0, "colour": "white", "noise_seed": 1})
