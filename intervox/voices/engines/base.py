"""What every engine module shares: the VoiceInfo record and a subprocess-to-WAV runner.

An engine module exposes three functions:
  status() -> str                      "ok", or why the engine cannot be used here
  voices() -> list[VoiceInfo]          the voices it has on this machine (empty unless status is ok)
  render(info, text) -> (audio, sr)    mono float32 at the voice's native rate
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from intervox.errors import SynthesisError

# One synthesis call that takes longer than this is treated as a hung engine.
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class VoiceInfo:
    """One renderable voice: `id` is `engine:name[:variant]`, `speaker_key` the person behind it."""

    id: str
    engine: str
    name: str
    variant: str | None
    languages: tuple[str, ...]
    gender: str | None  # "m", "f" or None when unknown
    sample_rate: int  # native rate of the engine's output for this voice
    speaker_key: str  # voices with equal keys are the same underlying person

    def speaks(self, lang: str) -> bool:
        """Return True when this voice speaks `lang` (an ISO base code or an engine code like en-us)."""
        return iso_base(lang) in self.languages


def iso_base(code: str) -> str:
    """Return the ISO base language of an engine language code: en-us, en-GB-x-rp -> en."""
    return code.strip().lower().replace("_", "-").split("-")[0]


def missing_tool(*tools: str) -> str | None:
    """Return a reason naming the first tool not on PATH, or None when all are found."""
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH"
    return None


def run_to_wav(cmd: list[str], text: str, voice_id: str) -> tuple[np.ndarray, int]:
    """Run `cmd` with `{text}` / `{wav}` placeholders in a temp dir; return the WAV as (mono float32, sr).

    The text goes through a UTF-8 file (never the command line), so texts that start with a
    dash or hold quotes cannot be read as options. SynthesisError names voice, text and reason.
    """
    with tempfile.TemporaryDirectory(prefix="intervox-tts-") as tmp:
        txt, wav = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
        txt.write_text(text + "\n", encoding="utf-8")
        argv = [a.replace("{text}", str(txt)).replace("{wav}", str(wav)) for a in cmd]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SynthesisError(f"{voice_id}: {argv[0]} failed on {text!r}: {exc}") from exc
        if proc.returncode != 0 or not wav.is_file():
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            why = err[-1] if err else f"exit code {proc.returncode}, no output file"
            raise SynthesisError(f"{voice_id}: {argv[0]} failed on {text!r}: {why}")
        try:
            audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise SynthesisError(f"{voice_id}: unreadable output for {text!r}: {exc}") from exc
    return audio.mean(axis=1).astype(np.float32), int(sr)
