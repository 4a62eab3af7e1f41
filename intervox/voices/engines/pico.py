"""SVOX pico (`pico2wave`, Debian non-free `libttspico-utils`): six female voices, when installed."""

from __future__ import annotations

import numpy as np

from intervox.voices.engines.base import VoiceInfo, iso_base, missing_tool, run_to_wav

ENGINE = "pico"
SAMPLE_RATE = 16000
LANGS = ("en-US", "en-GB", "de-DE", "es-ES", "fr-FR", "it-IT")


def status() -> str:
    """Return "ok" or why pico cannot be used."""
    return missing_tool("pico2wave") or "ok"


def voices() -> list[VoiceInfo]:
    """Return pico's voices (one female speaker per language)."""
    if status() != "ok":
        return []
    return [
        VoiceInfo(
            f"{ENGINE}:{lang.lower()}",
            ENGINE,
            lang,
            None,
            (iso_base(lang),),
            "f",
            SAMPLE_RATE,
            f"{ENGINE}:{lang.lower()}",
        )
        for lang in LANGS
    ]


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return pico's rendering of `text` (pico2wave takes the text as an argument, after `--`)."""
    return run_to_wav(
        ["sh", "-c", 'pico2wave -l "$0" -w "$1" -- "$(cat "$2")"', info.name, "{wav}", "{text}"],
        text,
        info.id,
    )
