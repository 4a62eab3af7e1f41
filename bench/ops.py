"""Figure 1: each intervention op against its natural baseline, timed interleaved in the same run.

An op's throughput alone (seconds of audio per second) moves with the machine's load; its
ratio to the plain library call doing the same edit on the same clips, timed A B A B in the
same process, does not. The baselines are what a user would write without intervox: plain
WORLD for world_vc, plain Praat 'Change gender' for praat_gender (and nansy's Praat part), the
bare TTS call for respeak and voice_swap, the numpy/scipy calls for the DSP ops.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from bench.common import Bench, Result, log, paired_best
from bench.data import load_clips, render_grid

# coqui-tts runs only in .venv-coqui (torch 2.9.1), and no registry ships its real weights: the
# random-weight toys of the tests would time a model a fraction of the real one's size.
_NO_COQUI = "real weights are not on any registry (tests run random-weight toys in .venv-coqui)"
SKIPPED = {"coqui_clone": _NO_COQUI, "coqui_vc": _NO_COQUI}
PITCH_FLOOR, PITCH_CEILING = 60.0, 600.0  # Praat's and WORLD's F0 search range, as the ops use


def plain_world(audio: np.ndarray, sr: int, p: dict) -> np.ndarray:
    """WORLD analysis + synthesis at the same F0 ratio: dio, stonemask, cheaptrick, d4c, synthesize."""
    import pyworld

    x = audio.astype(np.float64)
    f0, t = pyworld.dio(x, sr, f0_floor=PITCH_FLOOR, f0_ceil=PITCH_CEILING, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, sr)
    sp, ap = pyworld.cheaptrick(x, f0, t, sr), pyworld.d4c(x, f0, t, sr)
    return pyworld.synthesize(f0 * p["f0_ratio"], sp, ap, sr, frame_period=5.0)


def plain_praat(audio: np.ndarray, sr: int, p: dict) -> np.ndarray:
    """The Praat script for a pitch ratio: To Pitch (the source median), then one 'Change gender'."""
    import parselmouth
    from parselmouth.praat import call

    snd = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=float(sr))
    pitch = snd.to_pitch(time_step=0.01, pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING)
    median = call(pitch, "Get quantile", 0.0, 0.0, 0.5, "Hertz")
    out = call(snd, "Change gender", PITCH_FLOOR, PITCH_CEILING, p["formant_ratio"],
               median * p["pitch_ratio"], p["pitch_range"], 1.0)
    return out.values[0]


def bare_tts(audio: np.ndarray, sr: int, p: dict) -> np.ndarray:
    """The voice bank's synthesize() for the same text and voice (no resampling, no checks)."""
    from intervox.voices import synthesize

    return synthesize(p["text"], p["voice"], p["lang"])[0]


def plain_gain_clip(audio: np.ndarray, sr: int, p: dict) -> np.ndarray:
    """numpy: gain, then clip at the ratio of the peak."""
    y = audio.astype(np.float64) * 10 ** (p["gain_db"] / 20)
    level = p.get("clip_ratio", 1.0) * float(np.max(np.abs(y)))
    return np.clip(y, -level, level)


def plain_noise(audio: np.ndarray, sr: int, p: dict) -> np.ndarray:
    """numpy: white noise shaped to the same colour by FFT, scaled to the SNR by plain RMS, added."""
    from scipy.fft import next_fast_len

    from intervox.interventions.signal import NOISE_BETA

    m = next_fast_len(audio.size)  # as any FFT user learns: a prime length is 100x slower
    spectrum = np.fft.rfft(np.random.default_rng(0).standard_normal(m))
    f = np.maximum(np.arange(spectrum.size, dtype=np.float64), 1.0)
    noise = np.fft.irfft(spectrum * f ** (-NOISE_BETA[p.get("colour") or "white"] / 2), m)[: audio.size]
    scale = np.sqrt(np.mean(audio.astype(np.float64) ** 2) / (np.mean(noise**2) * 10 ** (p["snr_db"] / 10)))
    return audio + scale * noise


def plain_telephone(audio: np.ndarray, sr: int, p: dict) -> np.ndarray:
    """soxr to 8 kHz, 4th-order Butterworth band-pass (filtfilt), G.711 mu-law, soxr back."""
    import soxr
    from scipy.signal import butter, sosfiltfilt

    x = soxr.resample(audio, sr, 8000).astype(np.float64)
    x = sosfiltfilt(butter(4, [p.get("low_hz", 300.0), p.get("high_hz", 3400.0)], btype="bandpass", fs=8000,
                           output="sos"), x)
    if p.get("mu_law", True):
        c = np.round((np.sign(x) * np.log1p(255 * np.abs(np.clip(x, -1, 1))) / np.log1p(255) + 1) * 127.5)
        y = c / 127.5 - 1
        x = np.sign(y) * ((256.0) ** np.abs(y) - 1) / 255
    return soxr.resample(x.astype(np.float32), 8000, sr)


def plain_reverb(audio: np.ndarray, sr: int, p: dict) -> np.ndarray:
    """numpy RIR (unit direct path, Gaussian tail under exp(-6.91 t / RT60) at the DRR) + fftconvolve, cut."""
    from scipy.signal import fftconvolve

    n = max(int(1.2 * p["rt60"] * sr), int(0.06 * sr))
    tail = np.exp(-6.91 * np.arange(n) / sr / p["rt60"])
    h = np.random.default_rng(p["rir_seed"]).standard_normal(n) * tail
    h *= np.sqrt(10 ** (-p["drr_db"] / 10) / np.sum(h**2))
    h[0] = 1.0
    return fftconvolve(audio.astype(np.float64), h)[: audio.size]


# op -> (baseline label, baseline fn(audio, sr, params))
BASELINES: dict[str, tuple[str, Callable]] = {
    "world_vc": ("plain WORLD: dio + stonemask + cheaptrick + d4c + synthesis, same F0 ratio", plain_world),
    "praat_gender": ("plain Praat: To Pitch (source median) + 'Change gender'", plain_praat),
    "nansy": ("plain Praat: To Pitch + 'Change gender' (the op adds its EQ and level match)", plain_praat),
    "respeak": ("bare TTS call: intervox.voices.synthesize, same text and voice", bare_tts),
    "voice_swap": ("bare TTS call: intervox.voices.synthesize, same text and voice", bare_tts),
    "gain_clip": ("numpy gain + clip", plain_gain_clip),
    "noise": ("numpy: same-colour noise (FFT-shaped) at the SNR by plain RMS", plain_noise),
    "telephone": ("soxr + scipy band-pass + mu-law, inline", plain_telephone),
    # like noise's: the baseline makes its own random signal (here the RIR) the plain way, then
    # applies it; the op adds early reflections, the active-level match and peak protection
    "reverb": ("numpy: exponential-tail RIR (same RT60, DRR, seed) + scipy fftconvolve", plain_reverb),
}


def _convolution_only(op: object, sr: int, params: list[dict]) -> Callable:
    """Return fn(audio, sr, p) convolving with the RIR each clip's params describe (drawn here, untimed)."""
    from scipy.signal import fftconvolve

    rirs = {id(p): op.rir(sr, rt60=p.get("rt60"), drr_db=p.get("drr_db"), rir_seed=p.get("rir_seed"),
                          rir_file=p.get("rir_file")) for p in params}
    return lambda audio, sr, p: fftconvolve(audio.astype(np.float64), rirs[id(p)])[: audio.size]


def measure(op: object, baseline: Callable, clips: list, params: list[dict], sr: int,
            min_seconds: float) -> tuple[float, float, int]:
    """Return (op audio-s/s, baseline audio-s/s, rounds): both timed interleaved, best pass each."""
    seconds = sum(c.size for c in clips) / sr

    def run_op() -> None:
        for audio, p in zip(clips, params, strict=True):
            op.apply(audio, sr, **p)

    def run_base() -> None:
        for audio, p in zip(clips, params, strict=True):
            baseline(audio, sr, p)

    # fast ops take well under a millisecond a pass: many rounds, so the best of each side is stable
    (t_op, t_base), rounds = paired_best([run_op, run_base], min_seconds, max_rounds=300)
    return seconds / t_op, seconds / t_base, rounds


def run(bench: Bench) -> None:
    """Measure every registered op (coqui ops skipped) and its baseline on espeak-ng speech; add results."""
    from intervox.interventions.registry import available, from_dict

    sr = 16000
    utts = render_grid(bench.work / "ops-src", speakers=2, sentences=2)
    clips = load_clips(utts, sr)
    audio_s = sum(c.size for c in clips) / sr
    min_seconds = 0.5 if bench.quick else 2.0
    workload = (
        f"{len(clips)} espeak-ng clips ({audio_s:.1f} s of 16 kHz speech), params drawn once per clip; "
        f"op and baseline timed interleaved, best pass of >= {min_seconds:g} s each; 1 thread "
        "(OMP_NUM_THREADS=1); first call (imports, engine start) excluded"
    )
    for name in available():
        if name in SKIPPED:
            bench.add(Result("1", f"ops/{name}", "skipped", None, "s audio/s", notes=SKIPPED[name]))
            continue
        op = from_dict({"name": name})
        params = [op.sample_params(np.random.default_rng([0, i]), u) for i, u in enumerate(utts)]
        label, baseline = BASELINES.get(name, ("", None))
        t = time.perf_counter()
        op.apply(clips[0], sr, **params[0])  # warm-up: imports, engine start, JIT
        warm = time.perf_counter() - t
        if baseline is None:
            rate, _ = _rate_alone(op, clips, params, sr, min_seconds)
            bench.add(Result("1", f"ops/{name}", workload, rate, "s audio/s",
                             notes=f"first call {warm:.2f} s; no plain-library baseline"))
            continue
        baseline(clips[0], sr, params[0])  # its warm-up too
        rate, base, rounds = measure(op, baseline, clips, params, sr, min_seconds)
        bench.add(Result("1", f"ops/{name}", workload, rate, "s audio/s", baseline=base,
                         baseline_label=f"{label}, s audio/s", ratio=rate / base,
                         ratio_label="op / baseline throughput", target=">= 0.9",
                         notes=f"first call {warm:.2f} s; {rounds} interleaved rounds"))
        if name == "reverb":
            _add_convolution_only(bench, op, clips, params, sr, min_seconds, workload)
    log(bench, "figure 1 done")


def _add_convolution_only(bench: Bench, op: object, clips: list, params: list[dict], sr: int,
                          min_seconds: float, workload: str) -> None:
    """Add reverb against the convolution alone (its RIRs drawn untimed): the cost of everything else."""
    rate, base, rounds = measure(op, _convolution_only(op, sr, params), clips, params, sr, min_seconds)
    bench.add(Result("1", "ops/reverb_vs_convolution_only", workload, rate, "s audio/s", baseline=base,
                     baseline_label="scipy fftconvolve with the op's own RIRs (drawn untimed), s audio/s",
                     ratio=rate / base, ratio_label="op / baseline throughput",
                     notes=f"{rounds} interleaved rounds; no target: what the RIR synthesis, level match "
                           "and checks cost on top of the convolution"))


def _rate_alone(op: object, clips: list, params: list[dict], sr: int,
                min_seconds: float) -> tuple[float, int]:
    seconds = sum(c.size for c in clips) / sr

    def one() -> None:
        for audio, p in zip(clips, params, strict=True):
            op.apply(audio, sr, **p)

    (best,), rounds = paired_best([one], min_seconds)
    return seconds / best, rounds
