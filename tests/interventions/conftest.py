"""Fixtures for the op tests: a higher espeak voice, a matching Utterance, shared contract checks."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from intervox.corpora.manifest import Utterance
from intervox.errors import InterventionError

SEED = [1, 2, 3]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket the code under test opens fails the test loudly (ops must never download)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an op tried to open a network socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def high_voice(tmp_path_factory: pytest.TempPathFactory):
    """The fox sentence from espeak-ng at pitch 80 (about 150 Hz), whose formants Burg tracks more stably."""
    import subprocess

    from intervox.audio import load_audio

    text = "The quick brown fox jumps over the lazy dog today."
    path = tmp_path_factory.mktemp("high") / "fox80.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-p", "80", "-w", str(path), text], check=True)
    audio, sr = load_audio(path, 16000)
    return Voice(audio=audio, sr=sr, text=text, path=path)


@pytest.fixture(scope="session")
def utt(speech) -> Utterance:
    """The manifest entry of the `speech` fixture (espeak-ng en-us voice)."""
    return Utterance(id="fox", audio=str(speech.path), speaker="espeak:en-us", text=speech.text,
                     language="en", corpus="test", sample_rate=speech.sr)


@dataclass(frozen=True)
class Voice:
    audio: np.ndarray
    sr: int
    text: str
    path: Path


def _replay_twice(op, audio: np.ndarray, sr: int, utt: Utterance) -> tuple[dict, np.ndarray, np.ndarray]:
    """Return (params, out1, out2): params drawn twice from the same seed must agree, then applied twice."""
    p1 = op.sample_params(np.random.default_rng(SEED), utt)
    p2 = op.sample_params(np.random.default_rng(SEED), utt)
    assert p1 == p2
    return p1, op.apply(audio, sr, **p1), op.apply(audio, sr, **p2)


def _assert_rejects_bad_input(op, params: dict, sr: int = 16000) -> None:
    """Empty, NaN, silent and too-short input each raise InterventionError naming the op."""
    bad = {
        "empty": np.zeros(0, np.float32),
        "nan": np.full(sr, np.nan, np.float32),
        "silent": np.zeros(sr, np.float32),
        "short": (0.3 * np.sin(np.arange(int(op.min_seconds * sr) // 2) / 5)).astype(np.float32),
    }
    for kind, audio in bad.items():
        with pytest.raises(InterventionError, match=op.name) as info:
            op.apply(audio, sr, **params)
        assert info.value is not None, kind


@pytest.fixture(scope="session")
def replay_twice():
    """The `_replay_twice` check as a fixture (test modules here are not importable packages)."""
    return _replay_twice


@pytest.fixture(scope="session")
def rejects_bad_input():
    """The `_assert_rejects_bad_input` check as a fixture."""
    return _assert_rejects_bad_input
