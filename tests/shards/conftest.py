"""Fixtures for shard tests: one tiny real shard set, built once per session in-process."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from intervox.corpora.manifest import Utterance, write_manifest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def built_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shard folder: 2 espeak voices x 2 sentences (train) + 1 voice x 2 (validation), with noise copies."""
    from intervox.pipeline.config import BlockConfig, InterventionConfig, ShardsConfig, SourceConfig
    from intervox.pipeline.run import build_shards

    root = tmp_path_factory.mktemp("shardsrc")
    utts = []
    for i, (voice, pitch, split) in enumerate(
        (("en-us", 35, "train"), ("en-gb", 75, "train"), ("en-us", 60, "validation"))
    ):
        for j, text in enumerate(("Open the door.", "Turn on the light.")):
            wav = root / f"v{i}s{j}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(wav), text], check=True)
            utts.append(
                Utterance(
                    id=f"v{i}s{j}",
                    audio=wav.name,
                    speaker=f"espeak:{voice}:p{pitch}",
                    text=text,
                    language="en",
                    corpus="test",
                    content_id=f"s{j}",
                    split=split,
                )
            )
    write_manifest(utts, root / "manifest.jsonl")
    cfg = ShardsConfig(
        source=SourceConfig(kind="manifest", path=str(root / "manifest.jsonl")),
        interventions=(InterventionConfig(op={"name": "noise"}),),
        block=BlockConfig(speakers=2, contents=2),
        shard_size=8,
    )
    out = tmp_path_factory.mktemp("shards") / "set"
    build_shards(cfg, out, scheduler="sync", progress=False, command="intervox shards build (test)")
    return out


@pytest.fixture
def shard_copy(built_shards: Path, tmp_path: Path) -> Callable[[], Path]:
    """Return f() giving a private copy of the built shard folder (tests may corrupt it)."""

    def copy() -> Path:
        dst = tmp_path / "copy"
        shutil.copytree(built_shards, dst)
        return dst

    return copy
