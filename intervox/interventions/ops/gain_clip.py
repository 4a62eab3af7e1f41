"""Gain change and optional hard clipping: the level/overload part of a recording channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from intervox.corpora.manifest import Utterance
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._common import check_range, draw
from intervox.interventions.registry import register


@register
@dataclass(frozen=True)
class GainClip(Intervention):
    """Gain drawn U(gain_db); with probability clip_prob, hard clipping at clip_ratio x the new peak."""

    name: ClassVar[str] = "gain_clip"
    target: ClassVar[Factor] = Factor.CHANNEL
    keeps_timing: ClassVar[bool] = True

    gain_db: tuple[float, float] = (-12.0, 6.0)
    clip_prob: float = 0.5
    # Clipping threshold relative to the gained signal's peak, so the distortion does not depend
    # on how loud the source happened to be recorded.
    clip_ratio: tuple[float, float] = (0.2, 0.7)

    def __post_init__(self) -> None:
        check_range(self.name, "gain_db", self.gain_db, -60.0, 40.0)
        check_range(self.name, "clip_ratio", self.clip_ratio, 0.01, 1.0)
        if not 0.0 <= self.clip_prob <= 1.0:
            raise ValueError(f"gain_clip.clip_prob must be in [0, 1], got {self.clip_prob}")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {gain_db, clip_ratio}; clip_ratio 1.0 means no clipping."""
        gain = draw(rng, self.gain_db)
        ratio = draw(rng, self.clip_ratio)
        return {"gain_db": gain, "clip_ratio": ratio if rng.random() < self.clip_prob else 1.0}

    def apply(self, audio: np.ndarray, sr: int, *, gain_db: float, clip_ratio: float = 1.0) -> np.ndarray:
        """Return `audio` x 10^(gain_db/20), clipped at clip_ratio x its peak; same length."""
        audio = self.check_input(audio, sr)
        # float32 throughout: the output's own precision, and one copy fewer than via float64
        y = audio * np.float32(10 ** (gain_db / 20))
        if clip_ratio < 1.0:  # max / min instead of abs: no temporary array
            level = clip_ratio * max(float(y.max()), -float(y.min()))
            np.clip(y, -level, level, out=y)
        return self.check_output(self.name, y)
