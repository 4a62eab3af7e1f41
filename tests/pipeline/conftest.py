"""Fixtures for pipeline tests: a tiny real espeak-ng source manifest, config and bad-input writers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from intervox.corpora.manifest import Utterance

os.environ.setdefault("OMP_NUM_THREADS", "1")

VOICES = (("en-us", 30), ("en-us", 85), ("en-gb", 55))
SENTENCES = ("The cat sat on the mat.", "A bird flew over the house.")


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory, espeak_manifest: Callable[..., Path]) -> Path:
    """Manifest of 3 voices x 2 sentences: 2x2 blocks give a dense block + a speaker-only one."""
    return espeak_manifest(tmp_path_factory.mktemp("src"), VOICES, SENTENCES, audio_dir="audio")


@pytest.fixture
def write_config() -> Callable[..., Path]:
    """Return f(path, manifest, **overrides) writing a small ShardsConfig YAML (world_vc + noise, 2x2)."""

    def write(path: Path, manifest: Path, **extra: object) -> Path:
        cfg = {
            "source": {"kind": "manifest", "path": str(manifest)},
            "interventions": [{"op": {"name": "world_vc"}}, {"op": {"name": "noise"}}],
            "block": {"speakers": 2, "contents": 2},
            "shard_size": 6,
            "min_seconds": 0.3,
            "max_seconds": 8.0,
        }
        cfg.update(extra)
        path.write_text(yaml.safe_dump(cfg))
        return path

    return write


@pytest.fixture
def bad_source(source: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of `source` plus four bad anchors (missing, silent, NaN, too short); returns (manifest, ids)."""
    sr = 16000
    sf.write(tmp_path / "silent.wav", np.zeros(sr, dtype=np.float32), sr)
    nan = np.full(sr, 0.1, dtype=np.float32)
    nan[100:200] = np.nan
    sf.write(tmp_path / "nan.wav", nan, sr, subtype="FLOAT")
    t = np.arange(int(0.1 * sr)) / sr
    sf.write(tmp_path / "short.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    bad = {
        "bad-missing": "missing.wav",
        "bad-silent": "silent.wav",
        "bad-nan": "nan.wav",
        "bad-short": "short.wav",
    }
    lines = [json.loads(line) for line in source.read_text().splitlines()]
    for d in lines:
        d["audio"] = str(source.parent / d["audio"])
    lines += [
        Utterance(
            id=i,
            audio=str(tmp_path / f),
            speaker="espeak:bad",
            text="nothing",
            language="en",
            corpus="test",
            content_id=f"bad{k}",
            split="validation",
        ).to_dict()
        for k, (i, f) in enumerate(bad.items())
    ]
    out = tmp_path / "manifest_bad.jsonl"
    out.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in lines))
    return out, sorted(bad)
