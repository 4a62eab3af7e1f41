"""The intervention contract shared by every op.

An op is a frozen dataclass whose fields are its parameter *ranges*; `sample_params`
draws one concrete setting from a seeded Generator (pure), and `apply` renders it (pure):
same inputs, same bytes. `to_dict`/`from_dict` (see registry) replay any clip.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import ClassVar

import numpy as np

from intervox.corpora.manifest import Utterance
from intervox.errors import InterventionError


class Factor(str, enum.Enum):
    """The factor an op changes; the others are held."""

    SPEAKER = "speaker"  # content held
    CONTENT = "content"  # speaker held
    CHANNEL = "channel"  # speaker and content held


class Intervention:
    """Base class: subclasses are `@register`-ed frozen dataclasses."""

    name: ClassVar[str]
    target: ClassVar[Factor]
    keeps_timing: ClassVar[bool]  # output frame t aligns with input frame t
    min_seconds: ClassVar[float] = 0.1
    # Speaker ops: the params that define the output voice, fixed once per derived identity
    # (pipeline/identities.py); the rest are drawn per clip. None: every param defines the voice.
    voice_params: ClassVar[tuple[str, ...] | None] = None

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return every number `apply` needs, drawn only from `rng` (and utterance metadata)."""
        raise NotImplementedError

    def apply(self, audio: np.ndarray, sr: int, **params: object) -> np.ndarray:
        """Return the intervened audio (same rate); pure."""
        raise NotImplementedError

    def output_speaker(self, params: dict) -> str | None:
        """Return the identity whose voice the output takes (another speaker), or None.

        None (the default): a speaker op derives a new voice from its source. Ops that render
        another existing voice (voice_swap, coqui_vc) name it, and the clip is labelled with it.
        """
        return None

    def to_dict(self) -> dict:
        """Return `{"name": ..., field: value, ...}`; `from_dict` inverts it."""
        d = {"name": self.name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    def check_input(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Return `audio` as float32 1-D, or raise InterventionError naming this op and the problem."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise InterventionError(f"{self.name}: expected mono 1-D audio, got shape {audio.shape}")
        if audio.size == 0:
            raise InterventionError(f"{self.name}: input audio is empty")
        lo, hi = float(audio.min()), float(audio.max())  # NaN propagates to both; Inf to one
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise InterventionError(f"{self.name}: input audio contains NaN or Inf")
        if max(hi, -lo) < 3e-5:
            raise InterventionError(f"{self.name}: input audio is silent")
        if audio.size < self.min_seconds * sr:
            raise InterventionError(
                f"{self.name}: input audio too short ({audio.size / sr:.3f} s < {self.min_seconds} s)"
            )
        return audio.astype(np.float32, copy=False)

    @staticmethod
    def check_output(name: str, audio: np.ndarray) -> np.ndarray:
        """Return `audio` as float32 if finite, else raise InterventionError naming the op."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size == 0 or not (np.isfinite(audio.min()) and np.isfinite(audio.max())):
            raise InterventionError(f"{name}: produced empty or non-finite output")
        return audio
