"""Judge fixtures: no network at all, and a few real TTS clips (espeak-ng, flite) rendered once."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

SR = 16000
FOX = "The quick brown fox jumps over the lazy dog today."
CANOE = "The birch canoe slid on the smooth planks."


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Judges must never download: any socket connect raises."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(f"network access attempted: {args[1:] or args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def espeak_wav(text: str, path: Path, voice: str = "en-us") -> Path:
    """Render `text` with espeak-ng `voice` into a WAV at `path` and return the path."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return path


def flite_wav(text: str, path: Path, voice: str = "slt") -> Path:
    """Render `text` with flite `voice` into a WAV at `path` and return the path."""
    if shutil.which("flite") is None:
        pytest.fail("flite is not installed: apt-get install flite")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
    return path


def _load(path: Path) -> np.ndarray:
    from intervox.audio import load_audio

    return load_audio(path, SR)[0]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Real 16 kHz clips: espeak en-us (fox, canoe), espeak en+f3 (fox), flite slt (fox, canoe)."""
    d = tmp_path_factory.mktemp("judge_clips")
    return {
        "espeak_fox": _load(espeak_wav(FOX, d / "espeak_fox.wav")),
        "espeak_canoe": _load(espeak_wav(CANOE, d / "espeak_canoe.wav")),
        "espeak_f3_fox": _load(espeak_wav(FOX, d / "espeak_f3_fox.wav", voice="en+f3")),
        "flite_fox": _load(flite_wav(FOX, d / "flite_fox.wav")),
        "flite_canoe": _load(flite_wav(CANOE, d / "flite_canoe.wav")),
    }


@pytest.fixture(scope="session")
def texts() -> dict[str, str]:
    """The sentences the `clips` fixture speaks."""
    return {"fox": FOX, "canoe": CANOE}
