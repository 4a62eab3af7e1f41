"""Shared fixtures: real espeak-ng speech, rendered once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto's server mode) on the loopback; AWS_* in os.environ point at it.

    The environment is how every process finds the store (the test's, a `dask worker`'s): s3fs
    reads AWS_ENDPOINT_URL and the keys when it makes its client.
    """
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "intervox-test",
           "AWS_SECRET_ACCESS_KEY": "intervox-test", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env["AWS_ENDPOINT_URL"]
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """Return `s3://BUCKET` of a new, empty bucket on the loopback S3 server, named after the test."""
    import hashlib

    import fsspec

    name = "t-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:20]
    fs = fsspec.filesystem("s3")
    fs.mkdir(name)
    return f"s3://{name}"
