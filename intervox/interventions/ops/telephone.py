"""Narrow-band telephone channel: 300-3400 Hz band-pass, 8 kHz, G.711 mu-law, back to the input rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.signal import butter, sosfiltfilt

from intervox.audio import resample
from intervox.corpora.manifest import Utterance
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import register
from intervox.interventions.signal import fit_length

PHONE_SR = 8000
MU = 255.0  # G.711 mu-law


def mu_law_codec(x: np.ndarray) -> np.ndarray:
    """Return `x` (in [-1, 1]) through 8-bit mu-law encode + decode (256 companded levels)."""
    x = np.clip(x, -1.0, 1.0)
    companded = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    code = np.round((companded + 1.0) * 127.5)  # 0..255: the 8-bit code word
    y = code / 127.5 - 1.0
    return np.sign(y) * ((1.0 + MU) ** np.abs(y) - 1.0) / MU


@register
@dataclass(frozen=True)
class Telephone(Intervention):
    """Telephone band + 8 kHz + mu-law: the deterministic narrow-band channel of G.711 calls."""

    name: ClassVar[str] = "telephone"
    target: ClassVar[Factor] = Factor.CHANNEL
    keeps_timing: ClassVar[bool] = True

    low_hz: float = 300.0
    high_hz: float = 3400.0
    mu_law: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.low_hz < self.high_hz < PHONE_SR / 2:
            raise ValueError(f"telephone: need 0 < low_hz < high_hz < 4000, got {self.low_hz}, "
                             f"{self.high_hz}")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return the (fixed) band edges and codec switch; nothing is random in this channel."""
        return {"low_hz": float(self.low_hz), "high_hz": float(self.high_hz), "mu_law": bool(self.mu_law)}

    def apply(self, audio: np.ndarray, sr: int, *, low_hz: float = 300.0, high_hz: float = 3400.0,
              mu_law: bool = True) -> np.ndarray:
        """Return the telephone-channel version of `audio` at `sr`, same length."""
        audio = self.check_input(audio, sr)
        narrow = resample(audio, sr, PHONE_SR).astype(np.float64)
        sos = butter(4, [low_hz, high_hz], btype="bandpass", fs=PHONE_SR, output="sos")
        narrow = sosfiltfilt(sos, narrow)  # zero phase: keeps frame alignment
        if mu_law:
            narrow = mu_law_codec(narrow)
        y = resample(narrow.astype(np.float32), PHONE_SR, sr)
        return self.check_output(self.name, fit_length(y, audio.size))
