"""Voice swap: the same text rendered by another voice of the voice bank (speaker changed, content held)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from intervox.audio import resample
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError, InterventionError, IntervoxError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import register


def render(op: str, text: str, voice: str, lang: str, sr: int) -> np.ndarray:
    """Return `text` spoken by voice-bank `voice` at rate `sr`; InterventionError names `op` on failure."""
    try:
        from intervox.voices import synthesize
    except ImportError as exc:
        raise InterventionError(f"{op}: the voice bank (intervox.voices.synthesize) is unavailable "
                                f"({exc})") from exc
    if not text.strip():
        raise InterventionError(f"{op}: no text to render for voice {voice!r}")
    try:
        audio, voice_sr = synthesize(text, voice, lang)
    except IntervoxError as exc:
        raise InterventionError(f"{op}: voice {voice!r} failed on {text[:40]!r}: {exc}") from exc
    return resample(np.asarray(audio, dtype=np.float32), int(voice_sr), sr)


def _gender(voice: str) -> str | None:
    """Return the catalog gender of `voice`, or None when the voice bank does not know it here."""
    try:
        from intervox.voices.catalog import get_voice

        return get_voice(voice).gender
    except (ImportError, IntervoxError):
        return None


@register
@dataclass(frozen=True)
class VoiceSwap(Intervention):
    """Re-render the utterance's text with a different voice drawn from `voices`."""

    name: ClassVar[str] = "voice_swap"
    target: ClassVar[Factor] = Factor.SPEAKER
    keeps_timing: ClassVar[bool] = False
    # the target voice (and its gender) is the identity; text and lang follow each clip
    voice_params: ClassVar[tuple[str, ...]] = ("voice", "target_gender")

    voices: tuple[str, ...] = ("espeak:en-us:m3", "espeak:en-us:f2", "flite:slt", "flite:awb")

    def __post_init__(self) -> None:
        if len(self.voices) < 2:
            raise ValueError("voice_swap.voices needs at least two voice ids (one may be the source's own)")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {voice, target_gender, text, lang}: a voice other than the utterance's own, its
        catalog gender (the clip's gender; None when unknown here) and the utterance's text."""
        candidates = [v for v in self.voices if v != utt.speaker]
        if not candidates:
            raise ConfigError(f"voice_swap: no voice other than {utt.speaker!r} in voices")
        voice = candidates[int(rng.integers(len(candidates)))]
        return {"voice": voice, "target_gender": _gender(voice), "text": utt.text, "lang": utt.language}

    def output_speaker(self, params: dict) -> str:
        """Return the speaker key of the target voice: the clip speaks as that voice, not its source."""
        try:
            from intervox.voices.catalog import get_voice

            return get_voice(params["voice"]).speaker_key or params["voice"]
        except (ImportError, IntervoxError):  # voice not installed here: its id names it
            return params["voice"]

    def apply(self, audio: np.ndarray, sr: int, *, voice: str, text: str, lang: str,
              target_gender: str | None = None) -> np.ndarray:
        """Return `text` spoken by `voice` at `sr` (new length: timing is not kept)."""
        self.check_input(audio, sr)
        return self.check_output(self.name, render(self.name, text, voice, lang, sr))
