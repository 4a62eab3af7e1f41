"""Reverberation: convolution with a generated room impulse response or a user RIR file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy import fft

from intervox.audio import load_audio
from intervox.corpora.manifest import Utterance
from intervox.errors import AudioError, InterventionError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._common import check_range, draw
from intervox.interventions.registry import register
from intervox.interventions.signal import active_power, list_audio_files, peak_protect, synthetic_rir


@register
@dataclass(frozen=True)
class Reverb(Intervention):
    """Reverb from a seeded synthetic RIR (RT60 drawn U(rt60)) or a user RIR; level and length kept."""

    name: ClassVar[str] = "reverb"
    target: ClassVar[Factor] = Factor.CHANNEL
    keeps_timing: ClassVar[bool] = True

    rt60: tuple[float, float] = (0.2, 0.8)  # seconds
    drr_db: tuple[float, float] = (0.0, 8.0)  # direct-to-reverberant ratio of generated RIRs
    rir_dir: str | None = None  # when set, RIRs come from these files instead of being generated

    def __post_init__(self) -> None:
        check_range(self.name, "rt60", self.rt60, 0.05, 5.0)
        check_range(self.name, "drr_db", self.drr_db, -20.0, 40.0)

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {rt60, drr_db, rir_seed}, or {rir_file} when a rir_dir is configured."""
        if self.rir_dir is not None:
            files = list_audio_files(self.rir_dir, "reverb.rir_dir")
            return {"rir_file": files[int(rng.integers(len(files)))]}
        return {"rt60": draw(rng, self.rt60), "drr_db": draw(rng, self.drr_db),
                "rir_seed": int(rng.integers(2**31))}

    def rir(self, sr: int, *, rt60: float | None, drr_db: float | None, rir_seed: int | None,
            rir_file: str | None) -> np.ndarray:
        """Return the impulse response the params describe, its direct path (peak) at sample 0."""
        if rir_file is None:
            if rt60 is None or rir_seed is None:
                raise InterventionError("reverb: params need either rt60 + rir_seed or rir_file")
            return synthetic_rir(sr, rt60, np.random.default_rng([int(rir_seed)]),
                                 drr_db=0.0 if drr_db is None else drr_db)
        if self.rir_dir is None:
            raise InterventionError(f"reverb: params name rir_file {rir_file!r} but rir_dir is not set")
        try:
            h, _ = load_audio(Path(self.rir_dir) / rir_file, sr)
        except AudioError as exc:
            raise InterventionError(f"reverb: {exc}") from exc
        # Measured RIRs start with the propagation delay; drop it so output frame t stays frame t.
        return h[int(np.argmax(np.abs(h))):].astype(np.float64)

    def apply(self, audio: np.ndarray, sr: int, *, rt60: float | None = None, drr_db: float | None = None,
              rir_seed: int | None = None, rir_file: str | None = None) -> np.ndarray:
        """Return the reverberant audio: tail cut to the input length, active level matched."""
        audio = self.check_input(audio, sr)
        h = self.rir(sr, rt60=rt60, drr_db=drr_db, rir_seed=rir_seed, rir_file=rir_file)
        y = head_convolve(audio, h)
        level = np.sqrt(active_power(audio, sr) / max(active_power(y, sr), 1e-20))
        return self.check_output(self.name, peak_protect(y, gain=level))


def head_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Return the first x.size samples of the full linear convolution x * h (float64).

    scipy.fft's real FFTs at a fast length >= the full length (no wrap-around into the head):
    the arithmetic of scipy.signal.fftconvolve without its generic n-d set-up and temporaries.
    """
    n = fft.next_fast_len(x.size + h.size - 1, real=True)
    spectrum = fft.rfft(x.astype(np.float64, copy=False), n)
    spectrum *= fft.rfft(h, n)  # in place: one large temporary fewer per clip
    return fft.irfft(spectrum, n, overwrite_x=True)[: x.size]
