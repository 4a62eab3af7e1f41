"""Shared fixtures: real espeak-ng speech, rendered once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray
    sr: int
    text: str
    path: Path


def espeak_wav(text: str, path: Path, voice: str = "en-us", pitch: int = 50) -> Path:
    """Render `text` with espeak-ng into a WAV at `path` and return the path."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run `make setup` (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """About 2.5 s of real espeak-ng English speech at 16 kHz."""
    from intervox.audio import load_audio

    path = espeak_wav("The quick brown fox jumps over the lazy dog today.",
                      tmp_path_factory.mktemp("speech") / "fox.wav")
    audio, sr = load_audio(path, 16000)
    return Speech(audio=audio, sr=sr, text="The quick brown fox jumps over the lazy dog today.", path=path)


@pytest.fixture(scope="session")
def espeak_manifest() -> Callable[..., Path]:
    """Return f(root, voices, sentences, audio_dir="") writing root/manifest.jsonl of a real grid.

    Every (voice, pitch) x sentence is rendered by espeak-ng as `v{i}s{j}.wav` under
    root/audio_dir, as a `train` utterance of speaker `espeak:{voice}:p{pitch}`, content `s{j}`.
    """
    from intervox.corpora.manifest import Utterance, write_manifest

    def write(root: Path, voices: Sequence[tuple[str, int]], sentences: Sequence[str],
              audio_dir: str = "") -> Path:
        (root / audio_dir).mkdir(parents=True, exist_ok=True)
        utts = []
        for i, (voice, pitch) in enumerate(voices):
            for j, text in enumerate(sentences):
                rel = str(Path(audio_dir) / f"v{i}s{j}.wav")  # Path("") / name is just name
                espeak_wav(text, root / rel, voice, pitch)
                utts.append(Utterance(id=f"v{i}s{j}", audio=rel, speaker=f"espeak:{voice}:p{pitch}",
                                      text=text, language="en", corpus="test", content_id=f"s{j}",
                                      split="train"))
        write_manifest(utts, root / "manifest.jsonl")
        return root / "manifest.jsonl"

    return write
