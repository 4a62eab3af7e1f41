"""MBROLA diphone voices through espeak-ng (`espeak-ng -v mb-us1`), when mbrola and a voice are installed.

Debian ships them in contrib/non-free (`apt-get install mbrola mbrola-us1`); they are optional.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np

from intervox.voices.engines.base import VoiceInfo, iso_base, missing_tool, run_to_wav

ENGINE = "mbrola"
SAMPLE_RATE = 16000
MBROLA_DIRS = (Path("/usr/share/mbrola"), Path("/usr/local/share/mbrola"))


def _voice_file(db: str) -> bool:
    return any((d / db / db).is_file() or (d / db).is_file() for d in MBROLA_DIRS)


@functools.lru_cache(maxsize=1)
def installed() -> tuple[tuple[str, str, str | None], ...]:
    """Return (espeak mb voice, language, gender) for each mbrola voice whose database is installed."""
    try:
        out = subprocess.run(["espeak-ng", "--voices=mb"], capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for row in out.decode("utf-8", "replace").splitlines()[1:]:
        r = row.split()
        if len(r) >= 5 and r[4].startswith("mb/mb-"):
            name = r[4].split("/")[-1]  # mb-us1
            g = r[2].split("/")[-1].lower()
            if _voice_file(name[3:]):
                found.append((name, r[1], g if g in ("m", "f") else None))
    return tuple(found)


def status() -> str:
    """Return "ok" or why mbrola voices cannot be used."""
    missing = missing_tool("espeak-ng", "mbrola")
    if missing:
        return missing
    return "ok" if installed() else "no mbrola voice database under " + ", ".join(map(str, MBROLA_DIRS))


def voices() -> list[VoiceInfo]:
    """Return the installed mbrola voices."""
    if status() != "ok":
        return []
    return [
        VoiceInfo(
            f"{ENGINE}:{n[3:]}", ENGINE, n, None, (iso_base(lang),), g, SAMPLE_RATE, f"{ENGINE}:{n[3:]}"
        )
        for n, lang, g in installed()
    ]


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return the mbrola voice's rendering of `text`."""
    return run_to_wav(["espeak-ng", "-b", "1", "-v", info.name, "-w", "{wav}", "-f", "{text}"], text, info.id)
