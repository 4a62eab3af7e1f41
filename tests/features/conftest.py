"""Fixtures for the feature stage: real espeak-ng clips and tiny audio shard sets built with write_shard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def espeak_wav(text: str, path: Path, voice: str = "en-us", pitch: int = 50) -> Path:
    """Render `text` with espeak-ng to `path` (as tests/conftest.py does; that module is not importable)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run `make setup` (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), text], check=True)
    return path

SENTENCES = (
    ("m3", "en-us", 40, "Please call Stella."),
    ("f2", "en-us", 70, "Ask her to bring these things with her from the store."),
    ("m1", "en-gb", 50, "Six spoons of fresh snow peas."),
    ("f4", "en-us", 80, "We also need a small plastic snake and a big toy frog for the kids."),
)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, np.ndarray]]:
    """Four espeak-ng clips of 1-5 s at 16 kHz: (speaker, text, audio)."""
    from intervox.audio import load_audio

    out = []
    d = tmp_path_factory.mktemp("clips")
    for i, (spk, voice, pitch, text) in enumerate(SENTENCES):
        audio, _ = load_audio(espeak_wav(text, d / f"{i}.wav", voice=voice, pitch=pitch), 16000)
        out.append((spk, text, audio))
    return out


def clip_json(key: str, split: str, speaker: str, text: str, audio: np.ndarray, i: int) -> dict:
    """Return a clip JSON with the fields of docs/architecture.md."""
    return {"key": key, "speaker": f"espeak:en-us:{speaker}", "content": f"en-s{i:04d}", "channel": "clean",
            "language": "en", "text": text, "gender": speaker[0], "split": split, "block": -1,
            "source_id": f"utt{i}", "source_speaker": speaker, "source_key": None, "op": None,
            "sr": 16000, "duration": round(len(audio) / 16000, 3), "corpus": "test", "versions": {}}


def make_audio_shards(directory: Path, clips: list, n_shards: int = 2) -> dict[str, dict]:
    """Write `n_shards` audio shards (clips dealt round-robin) + index.json; return {key: clip json}."""
    from intervox.audio import encode_flac
    from intervox.shards.write import write_shard

    metas: dict[str, dict] = {}
    per_shard: list[list[dict]] = [[] for _ in range(n_shards)]
    for i, (spk, text, audio) in enumerate(clips):
        s = i % n_shards
        key = f"train-{s:06d}-{i:06d}"
        meta = clip_json(key, "train", spk, text, audio, i)
        metas[key] = meta
        per_shard[s].append({"__key__": key, "flac": encode_flac(audio, 16000), "json": meta})
    for s, samples in enumerate(per_shard):
        write_shard(directory / f"train-{s:06d}.tar", samples, plan_hash=f"audio-plan-{s}")
    index = {"shards": [f"train-{s:06d}.tar" for s in range(n_shards)], "counts": {"train": len(clips)}}
    (directory / "index.json").write_text(json.dumps(index))
    return metas


@pytest.fixture
def make_shards():
    """The `make_audio_shards` helper, as a fixture (test modules cannot import conftest)."""
    return make_audio_shards


@pytest.fixture
def audio_dir(tmp_path: Path, clips, make_shards) -> Path:
    """Two audio shards of the four clips under tmp_path/audio."""
    d = tmp_path / "audio"
    make_shards(d, clips, n_shards=2)
    return d
