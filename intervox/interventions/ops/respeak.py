"""Respeak: the same voice (or pseudo-speaker) says another text (content changed, speaker held)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops.voice_swap import render
from intervox.interventions.registry import register


@register
@dataclass(frozen=True)
class Respeak(Intervention):
    """Render a new text with the utterance's own voice-bank voice (`utt.speaker` must be a voice id)."""

    name: ClassVar[str] = "respeak"
    target: ClassVar[Factor] = Factor.CONTENT
    keeps_timing: ClassVar[bool] = False

    # New texts; empty means "ask the voice bank's sentence generator".
    texts: tuple[str, ...] = ()

    def new_text(self, rng: np.random.Generator, utt: Utterance) -> str:
        """Return a text different from `utt.text`: from `texts`, else from the sentence generator."""
        pool = [t for t in self.texts if t.strip() != utt.text.strip()]
        if self.texts:
            if not pool:
                raise ConfigError(f"respeak: every configured text equals the utterance's own ({utt.id})")
            return pool[int(rng.integers(len(pool)))]
        try:
            from intervox.voices import generate_sentences
        except ImportError as exc:
            raise ConfigError("respeak: no `texts` configured and intervox.voices.generate_sentences "
                              f"is unavailable ({exc})") from exc
        seed = int(rng.integers(2**31))
        for text in generate_sentences(utt.language, 4, seed):
            if text.strip() != utt.text.strip():
                return str(text)
        raise ConfigError(f"respeak: the sentence generator gave only the utterance's own text ({utt.id})")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {text, voice, lang}: a new text for the utterance's own voice."""
        return {"text": self.new_text(rng, utt), "voice": utt.speaker, "lang": utt.language}

    def apply(self, audio: np.ndarray, sr: int, *, text: str, voice: str, lang: str) -> np.ndarray:
        """Return `text` spoken by `voice` at `sr` (new length: timing is not kept)."""
        self.check_input(audio, sr)
        return self.check_output(self.name, render(self.name, text, voice, lang, sr))
