"""flite (CMU): the installed general-purpose English voices (`flite -lv`).

`kal` (8 kHz) and `awb_time` (a talking clock that says only times) are left out: kal16 is
the same speaker at 16 kHz, and awb is the same person as awb_time.
"""

from __future__ import annotations

import functools
import subprocess

import numpy as np

from intervox.voices.engines.base import VoiceInfo, missing_tool, run_to_wav

ENGINE = "flite"
# name -> (gender, native rate). Measured from flite's WAV headers.
KNOWN = {"awb": ("m", 16000), "rms": ("m", 16000), "slt": ("f", 16000), "kal16": ("m", 16000)}


def status() -> str:
    """Return "ok" or why flite cannot be used."""
    return missing_tool("flite") or ("ok" if installed() else "flite lists none of " + ", ".join(KNOWN))


@functools.lru_cache(maxsize=1)
def installed() -> tuple[str, ...]:
    """Return the known voices that `flite -lv` lists."""
    try:
        out = subprocess.run(["flite", "-lv"], capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    listed = out.decode("utf-8", "replace").replace("Voices available:", "").split()
    return tuple(v for v in KNOWN if v in listed)


def voices() -> list[VoiceInfo]:
    """Return the usable flite voices."""
    if missing_tool("flite"):
        return []
    return [
        VoiceInfo(f"{ENGINE}:{v}", ENGINE, v, None, ("en",), KNOWN[v][0], KNOWN[v][1], f"{ENGINE}:{v}")
        for v in installed()
    ]


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return flite's rendering of `text`."""
    return run_to_wav(["flite", "-voice", info.name, "-f", "{text}", "-o", "{wav}"], text, info.id)
