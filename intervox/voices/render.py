"""`synthesize(text, voice_id, lang)`: one utterance from any catalog voice or pseudo-speaker."""

from __future__ import annotations

import unicodedata

import numpy as np

from intervox.audio import check_audio
from intervox.errors import AudioError, SynthesisError
from intervox.voices.catalog import get_voice
from intervox.voices.engines import ENGINES
from intervox.voices.pseudo import apply_recipe, is_pseudo, parse_pseudo_id

# Shortest rendering accepted as speech: a one-word keyword is ~0.3 s in every engine here.
MIN_SECONDS = 0.1


def synthesize(text: str, voice_id: str, lang: str | None = None) -> tuple[np.ndarray, int]:
    """Return (mono float32 audio, native sr) of `text` spoken by `voice_id`.

    `lang`, when given, must be a language the voice speaks (so an English voice is never
    asked to read Bengali script). Raises SynthesisError naming voice and text when the engine
    is missing or fails, or its output is empty, silent, too short or non-finite.
    """
    if not text or not text.strip():
        raise SynthesisError(f"{voice_id}: empty text")
    # An engine reads a NUL or escape code as the end of the text or as markup: the audio would
    # then not say what the clip's JSON claims, so refuse (as read_text_file does for text files).
    bad = [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\t\n\r\u200c\u200d"]
    if bad:
        raise SynthesisError(f"{voice_id}: control character {bad[0]!r} in text {text!r}")
    info = get_voice(voice_id)
    if lang is not None and not info.speaks(lang):
        raise SynthesisError(
            f"{voice_id}: voice does not speak {lang!r} (it speaks {', '.join(info.languages)}); "
            f"text {text!r}"
        )
    base_id = parse_pseudo_id(voice_id).base_id if is_pseudo(voice_id) else voice_id
    base = get_voice(base_id)
    try:
        audio, sr = ENGINES[base.engine].render(base, text.strip())
        audio = check_audio(audio, sr, f"{base_id} on {text!r}", min_seconds=MIN_SECONDS)
        if is_pseudo(voice_id):
            audio = check_audio(
                apply_recipe(audio, sr, parse_pseudo_id(voice_id), text),
                sr,
                f"{voice_id} on {text!r}",
                min_seconds=MIN_SECONDS,
            )
    except AudioError as exc:
        raise SynthesisError(f"{voice_id}: unusable output: {exc}") from exc
    return audio, sr
