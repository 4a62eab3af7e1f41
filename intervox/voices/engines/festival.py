"""Festival: the voices found under its voice directories, rendered with `text2wave`.

Known voices carry their gender and measured native rate; any other voice directory found
is listed with gender None and the rate festival's diphone voices use (16 kHz).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from intervox.voices.engines.base import VoiceInfo, missing_tool, run_to_wav

ENGINE = "festival"
VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))
# name -> (gender, native rate), measured from text2wave's output headers.
KNOWN = {
    "kal_diphone": ("m", 16000),
    "ked_diphone": ("m", 16000),
    "cmu_us_slt_arctic_hts": ("f", 32000),
    "rab_diphone": ("m", 16000),
    "cmu_us_awb_cg": ("m", 16000),
    "cmu_us_rms_cg": ("m", 16000),
}


@functools.lru_cache(maxsize=1)
def installed() -> tuple[str, ...]:
    """Return the names of the voice directories festival can load (<dir>/<language>/<voice>)."""
    found = []
    for root in VOICE_DIRS:
        if root.is_dir():
            found += [p.name for p in sorted(root.glob("*/*")) if p.is_dir()]
    return tuple(dict.fromkeys(found))


def status() -> str:
    """Return "ok" or why festival cannot be used."""
    missing = missing_tool("text2wave", "festival")
    if missing:
        return missing
    return "ok" if installed() else "no festival voices under " + ", ".join(map(str, VOICE_DIRS))


def voices() -> list[VoiceInfo]:
    """Return the installed festival voices (all English here)."""
    if status() != "ok":
        return []
    return [
        VoiceInfo(
            f"{ENGINE}:{v}",
            ENGINE,
            v,
            None,
            ("en",),
            KNOWN.get(v, (None, 16000))[0],
            KNOWN.get(v, (None, 16000))[1],
            f"{ENGINE}:{v}",
        )
        for v in installed()
    ]


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return festival's rendering of `text` with `(voice_<name>)`."""
    return run_to_wav(["text2wave", "-eval", f"(voice_{info.name})", "{text}", "-o", "{wav}"], text, info.id)
