"""Figure 1: seconds of audio each intervention op processes per second on one core."""

from __future__ import annotations

import time

import numpy as np

from bench.common import Bench, Result, best_rate, log
from bench.data import load_clips, render_grid

# coqui-tts runs only in .venv-coqui (torch 2.9.1), and no registry ships its real weights: the
# random-weight toys of the tests would time a model a fraction of the real one's size.
_NO_COQUI = "real weights are not on any registry (tests run random-weight toys in .venv-coqui)"
SKIPPED = {"coqui_clone": _NO_COQUI, "coqui_vc": _NO_COQUI}
TTS_OPS = ("voice_swap", "respeak")  # their apply() renders new speech: TTS time is included


def op_rate(
    op: object, clips: list[np.ndarray], utts: list, sr: int, min_seconds: float
) -> tuple[float, int]:
    """Return (best audio seconds per second over passes of every clip, passes); params drawn once."""
    params = [op.sample_params(np.random.default_rng([0, i]), u) for i, u in enumerate(utts)]
    seconds = sum(c.size for c in clips) / sr

    def one_pass() -> float:
        for audio, p in zip(clips, params, strict=True):
            op.apply(audio, sr, **p)
        return seconds

    return best_rate(one_pass, min_seconds)


def run(bench: Bench) -> None:
    """Measure every registered op (coqui ops skipped) on real espeak-ng speech; add figure-1 results."""
    from intervox.interventions.registry import available, from_dict

    sr = 16000
    utts = render_grid(bench.work / "ops-src", speakers=2, sentences=2)
    clips = load_clips(utts, sr)
    audio_s = sum(c.size for c in clips) / sr
    min_seconds = 0.5 if bench.quick else 3.0
    workload = (
        f"{len(clips)} espeak-ng clips ({audio_s:.1f} s of 16 kHz speech), params drawn once per clip; "
        f"best pass of >= {min_seconds:g} s of passes; 1 thread (OMP_NUM_THREADS=1); first call "
        "(imports, JIT) excluded"
    )
    rates: dict[str, float] = {}
    for name in available():
        if name in SKIPPED:
            bench.add(Result("1", f"ops/{name}", "skipped", None, "s audio/s", notes=SKIPPED[name]))
            continue
        op = from_dict({"name": name})
        t = time.perf_counter()
        p = op.sample_params(np.random.default_rng([0, 0]), utts[0])
        op.apply(clips[0], sr, **p)  # warm-up: imports, engine start, JIT
        warm = time.perf_counter() - t
        rate, passes = op_rate(op, clips, utts, sr, min_seconds)
        rates[name] = rate
        notes = f"first call {warm:.2f} s; {passes} passes"
        if name in TTS_OPS:
            notes += "; includes TTS time (re-renders the text with the voice bank)"
        baseline, ratio, ratio_label, bl = None, None, "", ""
        if name == "world_vc":
            harvest = from_dict({"name": "world_vc", "f0_method": "harvest"})
            harvest.apply(clips[0], sr, **{**p, "f0_method": "harvest"})  # warm-up
            # same seeds, so the same f0_ratio/alpha draws as dio: only the F0 method differs
            baseline, _ = op_rate(harvest, clips, utts, sr, min_seconds)
            ratio, ratio_label, bl = rate / baseline, "dio / harvest throughput", "harvest F0 analysis"
            notes += "; default f0_method dio (+stonemask)"
        bench.add(
            Result(
                "1",
                f"ops/{name}",
                workload,
                rate,
                "s audio/s",
                baseline=baseline,
                baseline_label=bl,
                ratio=ratio,
                ratio_label=ratio_label,
                notes=notes,
            )
        )
    log(bench, f"figure 1 done: {len(rates)} ops")
