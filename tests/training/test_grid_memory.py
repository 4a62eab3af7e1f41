"""Grid batches from the shard index: the same batches as the in-memory table, in memory that
does not grow with the data, on one rank or several."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from intervox.errors import ShardError
from intervox.training.config import DataConfig
from intervox.training.data import Batch, GridSampler, load_feature_table
from intervox.training.feature_index import grid_memory, index_feature_table
from intervox.training.synthetic import write_synthetic_features


def assert_same_batch(a: Batch, b: Batch) -> None:
    assert a.keys == b.keys and a.shards == b.shards and a.positives == b.positives
    assert torch.equal(a.speaker, b.speaker) and torch.equal(a.content, b.content)
    assert len(a.pooled) == len(b.pooled)
    for x, y in zip(a.pooled, b.pooled, strict=True):
        assert x.dtype == y.dtype == torch.float32 and torch.equal(x, y)
    for x, y in ((a.frame_source, b.frame_source), (a.frame_copy, b.frame_copy)):
        assert (x is None and y is None) or torch.equal(x, y)


@pytest.mark.parametrize(("rank", "world"), [(0, 1), (0, 2), (1, 2)])
def test_index_batches_equal_in_memory_batches(features: Path, rank: int, world: int) -> None:
    cfg = DataConfig(features=(str(features),), speakers_per_batch=4, contents_per_batch=8)
    table = load_feature_table([features], frames=True)
    index = index_feature_table([features], frames=True)
    assert [k.decode() for k in index.keys] == table.keys and index.speakers == table.speakers
    assert np.array_equal(index.pairs, table.pairs) and len(index.pairs) == 240
    assert index.inputs == table.inputs
    kw = {"rank": rank, "world": world, "frame_pairs": 4, "frames_per_pair": 3}
    memory, indexed = GridSampler(table, cfg, seed=5, **kw), GridSampler(index, cfg, seed=5, **kw)
    for step in range(6):
        batch = indexed.batch(step)
        assert len(batch.keys) == 32 and batch.frame_source.shape == (4, 3, 32)
        assert_same_batch(memory.batch(step), batch)


def test_fused_index_batches_equal_in_memory_batches(fused_features: list[Path]) -> None:
    cfg = DataConfig(features=tuple(map(str, fused_features)), speakers_per_batch=4, contents_per_batch=8)
    memory = GridSampler(load_feature_table(fused_features), cfg, seed=1)
    indexed = GridSampler(index_feature_table(fused_features), cfg, seed=1)
    for step in range(3):
        batch = indexed.batch(step)
        assert [p.shape[1:] for p in batch.pooled] == [(5, 32), (5, 24)]
        assert_same_batch(memory.batch(step), batch)


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The same grid at 1x and 10x the speakers: 8 x 16 and 80 x 16 clips of [7, 512] float16."""
    root = tmp_path_factory.mktemp("scaled")
    for scale in (1, 10):
        write_synthetic_features(root / f"{scale}x", speakers=8 * scale, contents=16, layers=6, hidden=512,
                                 blocks_per_shard=2, val_speakers=4, val_contents=4)
    return {1: root / "1x", 10: root / "10x"}


def test_grid_memory_does_not_grow_with_the_data(scaled: dict[int, Path]) -> None:
    cfg = DataConfig(features=("x",), speakers_per_batch=8, contents_per_batch=16)
    indexed = {k: grid_memory([d], cfg) for k, d in scaled.items()}
    assert indexed[1]["clips"] == 128 and indexed[10]["clips"] == 1280
    assert indexed[1]["batch"] == indexed[10]["batch"] == [128] * 3
    # the index is ~80 bytes a clip, against 7 KiB of pooled features
    assert indexed[10]["index_bytes"] < 100 * 1280
    assert indexed[10]["peak_bytes"] <= 1.2 * indexed[1]["peak_bytes"]
    # what the in-memory table costs on the same data: the measure sees the split's size
    memory = {k: grid_memory([d], cfg, in_memory=True) for k, d in scaled.items()}
    assert memory[10]["peak_bytes"] > 3 * memory[1]["peak_bytes"]
    assert memory[10]["peak_bytes"] > 3 * indexed[10]["peak_bytes"]


def _cut_member(tar: Path, member_end: str) -> None:
    """Overwrite the `.npy` header of the first member whose name ends with `member_end` with garbage."""
    import tarfile

    with tarfile.open(tar) as t:
        member = next(m for m in t.getmembers() if m.name.endswith(member_end))
    data = bytearray(tar.read_bytes())
    data[member.offset_data:member.offset_data + 6] = b"NOTNPY"
    tar.write_bytes(bytes(data))


def test_bad_shard_is_skipped_and_counted_like_the_in_memory_table(tmp_path: Path) -> None:
    d = tmp_path / "f"
    write_synthetic_features(d, speakers=8, contents=16, layers=2, hidden=8, blocks_per_shard=1)
    _cut_member(d / "train-000001.tar", ".pooled.npy")
    memory = load_feature_table([d], max_bad_fraction=0.5)
    index = index_feature_table([d], max_bad_fraction=0.5)
    assert [b["shard"] for b in index.bad_shards] == [b["shard"] for b in memory.bad_shards] == [
        "train-000001.tar"]
    assert "train-000001.tar" in index.bad_shards[0]["reason"]
    assert [k.decode() for k in index.keys] == memory.keys and len(memory.keys) == 96
    with pytest.raises(ShardError, match="train-000001.tar"):
        index_feature_table([d])


def test_a_shard_rewritten_after_indexing_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "f"
    write_synthetic_features(d, speakers=8, contents=16, layers=2, hidden=8, blocks_per_shard=4)
    cfg = DataConfig(features=(str(d),), speakers_per_batch=4, contents_per_batch=8)
    sampler = GridSampler(index_feature_table([d]), cfg, seed=0)
    sampler.batch(0)
    sampler.table.reader.close()  # the next batch opens the shard again
    tar = d / "train-000000.tar"  # rewritten (here: touched) by a features rerun while training
    os.utime(tar, ns=(tar.stat().st_atime_ns, tar.stat().st_mtime_ns + 10**9))
    with pytest.raises(ShardError, match="train-000000.tar: changed since it was indexed"):
        sampler.batch(1)
    assert len(GridSampler(index_feature_table([d]), cfg, seed=0).batch(1).keys) == 32


def test_reuse_keeps_the_index_until_a_shard_changes(tmp_path: Path) -> None:
    d = tmp_path / "f"
    write_synthetic_features(d, speakers=4, contents=8, layers=2, hidden=8, blocks_per_shard=1)
    first = index_feature_table([d], reuse=True)
    assert index_feature_table([d], reuse=True) is first
    assert index_feature_table([d]) is not first  # reuse is asked for, never implied
    tar = d / "train-000000.tar"
    os.utime(tar, ns=(tar.stat().st_atime_ns, tar.stat().st_mtime_ns + 10**9))
    assert index_feature_table([d], reuse=True) is not first


@pytest.mark.slow
def test_torchrun_two_ranks_train_on_grid_batches(features: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "intervox", "train", f"data.features=[{features}]", f"run_dir={run_dir}",
           "data.speakers_per_batch=4", "data.contents_per_batch=8", "optim.steps=3",
           "model.hidden_dims=[32]", "model.speaker_dim=8", "model.content_dim=8", "device=cpu",
           "debug.log_keys=true"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "seed-0" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["completed"]
    assert summary["batches"]["batch"] == {"min": 32.0, "mean": 32.0}
    table = load_feature_table([features])
    speaker_of = {k: table.speakers[s] for k, s in zip(table.keys, table.speaker, strict=True)}
    seen = []
    for rank in (0, 1):
        lines = (run_dir / "seed-0" / "debug" / f"rank-{rank}.txt").read_text().splitlines()
        keys = [line.split("\t")[2] for line in lines if line.startswith("K\t")]
        assert len(keys) == 3 * 32
        seen.append({speaker_of[k] for k in keys})
    assert seen[0] and seen[1] and not seen[0] & seen[1]  # each rank its own speakers
