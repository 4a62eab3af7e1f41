"""Fixtures for the reliability tests: tiny espeak-ng sources, configs, a CLI runner with fault points."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from relhelpers import Exited, render, run_python

from intervox.corpora.manifest import Utterance, write_manifest

os.environ.setdefault("OMP_NUM_THREADS", "1")

VOICES = (("en-us", 30), ("en-us", 85), ("en-gb", 55))
SENTENCES = ("The cat sat on the mat.", "A bird flew over the house.")


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest (absolute audio paths) of 3 espeak-ng voices x 2 sentences, all in `train`."""
    root = tmp_path_factory.mktemp("relsrc")
    utts = []
    for i, (voice, pitch) in enumerate(VOICES):
        for j, text in enumerate(SENTENCES):
            wav = render(text, root / f"v{i}s{j}.wav", voice, pitch)
            utts.append(Utterance(id=f"v{i}s{j}", audio=str(wav), speaker=f"espeak:{voice}:p{pitch}",
                                  text=text, language="en", corpus="test", content_id=f"s{j}", split="train"))
    write_manifest(utts, root / "manifest.jsonl")
    return root / "manifest.jsonl"


@pytest.fixture(scope="session")
def built_audio(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real audio shard folder (read-only): the source + a noise copy each, 3 shards of 4 clips."""
    from intervox.pipeline.config import BlockConfig, InterventionConfig, ShardsConfig, SourceConfig
    from intervox.pipeline.run import build_shards

    cfg = ShardsConfig(source=SourceConfig(kind="manifest", path=str(source)),
                       interventions=(InterventionConfig(op={"name": "noise"}),),
                       block=BlockConfig(speakers=1, contents=2), shard_size=4, max_seconds=8.0)
    out = tmp_path_factory.mktemp("relaudio") / "audio"
    build_shards(cfg, out, scheduler="sync", progress=False, command="intervox shards build (test)")
    return out


@pytest.fixture
def write_config() -> Callable[..., Path]:
    """Return f(path, manifest, **overrides) writing a small ShardsConfig YAML (noise op, 1 x 2 blocks)."""

    def write(path: Path, manifest: Path, **extra: object) -> Path:
        cfg = {"source": {"kind": "manifest", "path": str(manifest)},
               "interventions": [{"op": {"name": "noise"}}],
               "block": {"speakers": 1, "contents": 2}, "shard_size": 4,
               "min_seconds": 0.3, "max_seconds": 8.0}
        cfg.update(extra)
        path.write_text(yaml.safe_dump(cfg))
        return path

    return write


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., Exited]:
    """Return f(args, fault=None, **env) running `python ARGS` to its end (see relhelpers.run_python)."""
    count = itertools.count()

    def run(args: list[str], fault: str | None = None, **env: str) -> Exited:
        return run_python(args, tmp_path / f"stderr-{next(count)}.log", fault=fault, **env)

    return run
