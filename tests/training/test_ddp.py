"""Two-process gloo DDP through torchrun: it trains, and the ranks read disjoint shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from intervox.training.api import load_trained


def read_seen(path: Path) -> tuple[set[str], set[str]]:
    keys, shards = set(), set()
    for line in path.read_text().splitlines():
        kind, _, value = line.split("\t")
        (keys if kind == "K" else shards).add(value)
    return keys, shards


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_torchrun_two_ranks_train_on_disjoint_shards(features: Path, tmp_path: Path, where: str,
                                                     request: pytest.FixtureRequest) -> None:
    run_dir = tmp_path / "ddp"
    feats = str(features)
    if where == "s3":  # rank 0 copies the set to this node while rank 1 waits, then finds it up to date
        from intervox.shards import storage

        feats = f"{request.getfixturevalue('s3_bucket')}/features"
        storage.upload_tree(features, feats)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "intervox", "train", f"data.features=[{feats}]", f"run_dir={run_dir}",
           "data.batching=blocks", "data.blocks_per_batch=2", "data.epoch_batches=3", "optim.steps=4",
           "model.hidden_dims=[32]", "model.speaker_dim=8", "model.content_dim=8", "device=cpu",
           "debug.log_keys=true", "checkpoint_every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INTERVOX_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seed_dir = run_dir / "seed-0"
    summary = json.loads((seed_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["completed"] and summary["data"]["resampled"]
    assert (tmp_path / "cache").is_dir() == (where == "s3")
    keys0, shards0 = read_seen(seed_dir / "debug" / "rank-0.txt")
    keys1, shards1 = read_seen(seed_dir / "debug" / "rank-1.txt")
    assert keys0 and keys1 and not keys0 & keys1
    assert shards0 and shards1 and not shards0 & shards1
    assert len((seed_dir / "train_log.csv").read_text().splitlines()) == 5  # header + 4 steps, rank 0 only
    assert load_trained(run_dir).project(np.zeros((1, 7, 32)))["speaker"].shape == (1, 8)


@pytest.mark.slow
def test_torchrun_uneven_shards_with_workers_never_hang(tmp_path: Path) -> None:
    """3 shards over 2 ranks (rank 1 holds one, fewer than its 2 DataLoader workers): resampled
    epochs of a fixed length keep both ranks stepping together to the end."""
    from intervox.training.synthetic import write_synthetic_features

    features = tmp_path / "features"
    write_synthetic_features(features, speakers=16, contents=16, layers=2, hidden=8, blocks_per_shard=3)
    assert len(list(features.glob("train-*.tar"))) == 3
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "intervox", "train", f"data.features=[{features}]", f"run_dir={run_dir}",
           "data.batching=blocks", "data.blocks_per_batch=2", "data.epoch_batches=3", "data.num_workers=2",
           "optim.steps=7", "model.hidden_dims=[16]", "model.speaker_dim=4", "model.content_dim=4",
           "device=cpu", "debug.log_keys=true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seed_dir = run_dir / "seed-0"
    assert json.loads((seed_dir / "summary.json").read_text())["completed"]
    _, shards0 = read_seen(seed_dir / "debug" / "rank-0.txt")
    _, shards1 = read_seen(seed_dir / "debug" / "rank-1.txt")
    assert len(shards0) == 2 and len(shards1) == 1 and not shards0 & shards1
