"""Small signal helpers shared by the ops: levels, coloured noise, room impulse responses, biquads.

Everything here is pure: randomness comes in as an explicit `np.random.Generator`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from scipy.fft import next_fast_len

from intervox.audio import frame_powers
from intervox.errors import ConfigError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

# Noise colour -> exponent of the power spectrum 1/f^beta (white 0, pink 1, brown 2).
NOISE_BETA = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Return `y` cut or zero-padded to exactly `n` samples (float32)."""
    y = np.asarray(y, dtype=np.float32)
    if y.size >= n:
        return y[:n]
    return np.pad(y, (0, n - y.size))


def active_power(audio: np.ndarray, sr: int, frame_seconds: float = 0.02, floor_db: float = 40.0) -> float:
    """Return the mean power of the active frames of `audio` (frames within `floor_db` of the loudest).

    SNR is defined on active speech (as ITU-T P.56 does, much simplified): leading and
    trailing silence must not make a clip look noisier than it sounds.
    """
    x = np.asarray(audio, dtype=np.float64)
    hop = max(1, int(frame_seconds * sr))
    n = x.size // hop
    if n == 0:
        return float(np.mean(x**2))
    frames = frame_powers(x, hop)
    threshold = frames.max() * 10 ** (-floor_db / 10)
    return float(frames[frames >= threshold].mean())


def peak_protect(y: np.ndarray, peak: float = 0.99, gain: float = 1.0) -> np.ndarray:
    """Return `gain * y` as float32, scaled down so that its absolute peak is at most `peak` (never up).

    One pass over `y` for its peak and one for the scaled float32 copy: a level match folded in
    as `gain` costs no extra pass (a plain `y * gain` first was ~5% of a reverb's time).
    """
    m = gain * max(float(np.max(y)), -float(np.min(y)))
    scale = gain * (peak / m if m > peak else 1.0)
    out = np.empty(np.shape(y), dtype=np.float32)
    return np.multiply(y, scale, out=out, casting="same_kind")


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Return `n` samples of unit-power white/pink/brown noise, shaped in the frequency domain."""
    if colour not in NOISE_BETA:
        raise ConfigError(f"noise colour '{colour}' unknown (known: {', '.join(NOISE_BETA)})")
    m = next_fast_len(n)  # an FFT length of small primes: a prime-length clip would be 100x slower
    spectrum = np.fft.rfft(rng.standard_normal(m))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0  # DC: keep it bounded instead of 1/0
    spectrum *= f ** (-NOISE_BETA[colour] / 2)  # amplitude ~ f^(-beta/2) gives power ~ 1/f^beta
    spectrum[0] = 0.0
    y = np.fft.irfft(spectrum, m)[:n]
    y /= np.sqrt(np.mean(y**2) + 1e-20)  # irfft's float64 output, scaled in place
    return y


_SIGNS = np.array([-1.0, 1.0])


def synthetic_rir(sr: int, rt60: float, rng: np.random.Generator, *, n_early: int = 8,
                  drr_db: float = 3.0) -> np.ndarray:
    """Return a room impulse response: unit direct path at t=0, early reflections, exponential tail.

    The late tail is Gaussian noise under an envelope exp(-6.91 t / rt60) (60 dB of energy decay
    in `rt60` seconds, Sabine's definition); early reflections are sparse signed taps between 2
    and 50 ms; `drr_db` sets the direct-to-reverberant energy ratio.
    """
    n = max(int(1.2 * rt60 * sr), int(0.06 * sr))
    envelope = np.arange(n, dtype=np.float64)  # in place: exp(-6.91 t / rt60), t = n / sr
    envelope /= sr
    envelope *= -6.91
    envelope /= rt60
    tail = rng.standard_normal(n)
    tail *= np.exp(envelope, out=envelope)
    tail[: int(0.002 * sr)] = 0.0  # room for the direct path before the diffuse field starts
    last_tap = int(0.05 * sr)  # < n: early reflections lie in the first 50 ms
    taps = rng.integers(int(0.002 * sr), last_tap, size=n_early)
    early = np.zeros(last_tap)
    signs = _SIGNS[rng.integers(0, 2, size=n_early)]  # the values and draws of rng.choice(_SIGNS), cheaper
    np.add.at(early, taps, signs * rng.uniform(0.1, 0.3, n_early) * np.exp(-6.91 * taps / sr / rt60))
    rir = tail  # the tail's energy scales the taps; then the taps join it in place
    rir[:last_tap] += early * np.sqrt(np.dot(tail, tail))  # dot: energies without a squared copy
    rir *= np.sqrt(10 ** (-drr_db / 10) / (np.dot(rir, rir) + 1e-20))
    rir[0] = 1.0
    return rir


def list_audio_files(folder: str | Path, what: str) -> list[str]:
    """Return the sorted relative paths of the audio files under `folder`; ConfigError when none."""
    return list(_scan_audio_files(str(folder), what))


@functools.lru_cache(maxsize=64)
def _scan_audio_files(folder: str, what: str) -> tuple[str, ...]:
    # Cached: sample_params runs once per utterance and a noise/RIR folder can hold thousands of files.
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{what}: directory {root} does not exist")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ConfigError(f"{what}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in {root}")
    return tuple(files)


def rbj_biquad(kind: str, f0: float, q: float, gain_db: float, sr: int) -> np.ndarray:
    """Return one second-order section [b0, b1, b2, 1, a1, a2] from the RBJ Audio EQ Cookbook."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cos, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    if kind == "peaking":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    elif kind == "lowshelf":
        sq = 2 * np.sqrt(a) * alpha
        b = [a * ((a + 1) - (a - 1) * cos + sq), 2 * a * ((a - 1) - (a + 1) * cos),
             a * ((a + 1) - (a - 1) * cos - sq)]
        den = [(a + 1) + (a - 1) * cos + sq, -2 * ((a - 1) + (a + 1) * cos), (a + 1) + (a - 1) * cos - sq]
    elif kind == "highshelf":
        sq = 2 * np.sqrt(a) * alpha
        b = [a * ((a + 1) + (a - 1) * cos + sq), -2 * a * ((a - 1) + (a + 1) * cos),
             a * ((a + 1) + (a - 1) * cos - sq)]
        den = [(a + 1) - (a - 1) * cos + sq, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - sq]
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    return np.array([b[0], b[1], b[2], den[0], den[1], den[2]]) / den[0]
