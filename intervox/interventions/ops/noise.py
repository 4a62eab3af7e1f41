"""Additive noise at a target SNR: generated coloured noise or segments of user noise files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf

from intervox.audio import load_audio
from intervox.corpora.manifest import Utterance
from intervox.errors import AudioError, InterventionError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._common import check_range, draw
from intervox.interventions.registry import register
from intervox.interventions.signal import NOISE_BETA, active_power, coloured_noise, list_audio_files


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, sr: int, snr_db: float) -> np.ndarray:
    """Return speech + noise scaled so that active speech power / noise power = `snr_db`."""
    noise = np.asarray(noise, dtype=np.float64)  # no copy when it is float64 already
    noise_power = float(np.mean(noise**2))
    if noise_power <= 0:
        raise InterventionError("noise: noise segment is silent")
    scale = np.sqrt(active_power(speech, sr) / (noise_power * 10 ** (snr_db / 10)))
    return (speech.astype(np.float64) + scale * noise).astype(np.float32)


@register
@dataclass(frozen=True)
class Noise(Intervention):
    """Additive noise at an SNR drawn U(snr_db), measured on the active speech."""

    name: ClassVar[str] = "noise"
    target: ClassVar[Factor] = Factor.CHANNEL
    keeps_timing: ClassVar[bool] = True

    snr_db: tuple[float, float] = (5.0, 20.0)
    colours: tuple[str, ...] = ("white", "pink", "brown")
    noise_dir: str | None = None  # when set, noise comes from these files instead of being generated

    def __post_init__(self) -> None:
        check_range(self.name, "snr_db", self.snr_db, -20.0, 80.0)
        unknown = [c for c in self.colours if c not in NOISE_BETA]
        if unknown or not self.colours:
            raise ValueError(f"noise.colours: unknown or empty {list(self.colours)} "
                             f"(known: {list(NOISE_BETA)})")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {snr_db, colour, noise_seed}, or {snr_db, noise_file, offset} with a noise_dir."""
        snr = draw(rng, self.snr_db)
        if self.noise_dir is None:
            return {"snr_db": snr, "colour": str(rng.choice(list(self.colours))),
                    "noise_seed": int(rng.integers(2**31))}
        files = list_audio_files(self.noise_dir, "noise.noise_dir")
        name = files[int(rng.integers(len(files)))]
        try:
            seconds = sf.info(str(Path(self.noise_dir) / name)).duration
        except (sf.LibsndfileError, RuntimeError) as exc:
            path = Path(self.noise_dir) / name
            raise InterventionError(f"noise: noise file {path} unreadable ({exc})") from exc
        return {"snr_db": snr, "noise_file": name, "offset": float(rng.uniform(0.0, seconds))}

    def noise_segment(self, n: int, sr: int, *, colour: str | None, noise_seed: int | None,
                      noise_file: str | None, offset: float | None) -> np.ndarray:
        """Return `n` samples of the noise the params describe (files loop from `offset` seconds)."""
        if noise_file is None:
            if colour is None or noise_seed is None:
                raise InterventionError("noise: params need colour + noise_seed, or noise_file + offset")
            return coloured_noise(n, colour, np.random.default_rng([int(noise_seed)]))
        if self.noise_dir is None:
            raise InterventionError(f"noise: params name noise_file {noise_file!r} but noise_dir is not set")
        try:
            noise, _ = load_audio(Path(self.noise_dir) / noise_file, sr)
        except AudioError as exc:
            raise InterventionError(f"noise: {exc}") from exc
        start = int(round((offset or 0.0) * sr)) % noise.size
        reps = int(np.ceil((start + n) / noise.size))
        return np.tile(noise, reps)[start:start + n].astype(np.float64)

    def apply(self, audio: np.ndarray, sr: int, *, snr_db: float, colour: str | None = None,
              noise_seed: int | None = None, noise_file: str | None = None,
              offset: float | None = None) -> np.ndarray:
        """Return `audio` plus noise at `snr_db`; same length (not renormalised: FLAC clips at full scale)."""
        audio = self.check_input(audio, sr)
        noise = self.noise_segment(audio.size, sr, colour=colour, noise_seed=noise_seed,
                                   noise_file=noise_file, offset=offset)
        return self.check_output(self.name, mix_at_snr(audio, noise, sr, snr_db))
