"""intervox.voices: offline TTS engines, the voice catalog, pseudo-speakers, the sentence generator.

from intervox.voices import synthesize, list_voices
audio, sr = synthesize("Turn the light on.", "espeak:en-us:m3")
"""

from __future__ import annotations

from intervox.voices.catalog import VoiceInfo, engine_status, get_voice, list_voices
from intervox.voices.pseudo import derive_pseudo_speakers, parse_pseudo_id
from intervox.voices.render import synthesize
from intervox.voices.sentences import generate_sentences, keywords, read_text_file

__all__ = [
    "VoiceInfo",
    "derive_pseudo_speakers",
    "engine_status",
    "generate_sentences",
    "get_voice",
    "keywords",
    "list_voices",
    "parse_pseudo_id",
    "read_text_file",
    "synthesize",
]
