"""Synthetic feature shards with known speaker/content structure, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from intervox.training.synthetic import write_synthetic_features


@pytest.fixture(scope="session")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 speakers x 16 contents, 6 layers x 32 hidden; 8 shards of 2 blocks (4 spk x 8 con)."""
    d = tmp_path_factory.mktemp("features") / "synthetic"
    write_synthetic_features(d, speakers=16, contents=16, layers=6, hidden=32, blocks_per_shard=1, frames=6)
    return d


@pytest.fixture(scope="session")
def fused_features(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two upstreams (hidden 32 and 24) over the same keys."""
    root = tmp_path_factory.mktemp("fused")
    dirs = [root / "up0", root / "up1"]
    write_synthetic_features(dirs, speakers=8, contents=16, layers=4, hidden=[32, 24], blocks_per_shard=1)
    return dirs
