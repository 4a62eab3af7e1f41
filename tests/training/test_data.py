"""Grid sampling and block streaming: whole blocks, positives, disjoint ranks, epochs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from intervox.errors import TrainingError
from intervox.training.config import DataConfig
from intervox.training.data import GridSampler, anchors_with_positives, common_shards, load_feature_table
from intervox.training.stream import StreamSource, shuffle_blocks


def test_anchors_with_positives_counts_shared_labels() -> None:
    assert anchors_with_positives(np.array([0, 0, 1, 2, 2, 2, 3])) == 5


def test_grid_batch_is_speakers_by_contents_with_positives(features: Path) -> None:
    table = load_feature_table([features])
    assert len(table.keys) == 256 and table.pooled[0].shape == (256, 7, 32)
    cfg = DataConfig(features=(str(features),), speakers_per_batch=4, contents_per_batch=8)
    sampler = GridSampler(table, cfg, seed=0)
    batch = sampler.batch(3)
    assert len(batch.keys) == 32
    spk, con = batch.speaker.numpy(), batch.content.numpy()
    assert len(set(spk)) == 4 and len(set(con)) == 8
    assert Counter(zip(spk, con, strict=True)).most_common(1)[0][1] == 1  # every (speaker, content) once
    assert batch.positives == {"speaker": 32, "content": 32}
    assert np.array_equal(sampler.indices(3), GridSampler(table, cfg, seed=0).indices(3))  # pure in step
    assert not np.array_equal(sampler.indices(3), sampler.indices(4))


def test_grid_ranks_get_disjoint_speakers(features: Path) -> None:
    table = load_feature_table([features])
    cfg = DataConfig(features=(str(features),), speakers_per_batch=4, contents_per_batch=8)
    seen = [set(), set()]
    for rank in (0, 1):
        sampler = GridSampler(table, cfg, seed=0, rank=rank, world=2)
        for step in range(10):
            seen[rank] |= {table.speakers[s] for s in sampler.batch(step).speaker.numpy()}
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def _block_ids(batch, table_blocks: dict) -> Counter:
    return Counter(table_blocks[k] for k in batch.keys)


def test_block_stream_keeps_blocks_whole_and_ranks_disjoint(features: Path) -> None:
    table = load_feature_table([features])
    blocks = {k: (s, b) for k, s, b in zip(table.keys, table.shards, table.block, strict=True)}
    names = common_shards([features], "train")
    cfg = DataConfig(features=(str(features),), batching="blocks", blocks_per_batch=2,
                     shuffle_buffer_blocks=4, epoch_batches=5)
    keys_per_rank = []
    for rank in (0, 1):
        source = StreamSource([features], names, cfg, seed=0, rank=rank, world=2, resampled=True)
        keys = set()
        for step in range(12):  # more than two epochs of 5
            batch = source.batch(step)
            counts = _block_ids(batch, blocks)
            assert len(counts) == 2 and set(counts.values()) == {32}  # 2 whole blocks of 4 x 8
            assert batch.positives == {"speaker": 64, "content": 64}
            keys |= set(batch.keys)
        assert source.state() == {"kind": "blocks", "epoch": 2, "batch": 2}
        keys_per_rank.append(keys)
    assert not keys_per_rank[0] & keys_per_rank[1]


def test_block_stream_epoch_covers_every_block_once(features: Path) -> None:
    names = common_shards([features], "train")
    cfg = DataConfig(features=(str(features),), batching="blocks", blocks_per_batch=3)
    source = StreamSource([features], names, cfg, seed=1)
    keys = []
    for step in range(3):  # 8 blocks -> batches of 3, 3, 2
        keys += source.batch(step).keys
    assert len(keys) == len(set(keys)) == 256
    assert source.state()["epoch"] == 0
    source.batch(3)
    assert source.state() == {"kind": "blocks", "epoch": 1, "batch": 1}


def test_resumed_stream_continues_identically(features: Path) -> None:
    names = common_shards([features], "train")
    cfg = DataConfig(features=(str(features),), batching="blocks", blocks_per_batch=2)
    a = StreamSource([features], names, cfg, seed=2)
    first = [a.batch(i).keys for i in range(7)]
    b = StreamSource([features], names, cfg, seed=2)
    for i in range(3):
        b.batch(i)
    c = StreamSource([features], names, cfg, seed=2)
    c.restore(b.state())
    assert [c.batch(i).keys for i in range(3, 7)] == first[3:]


def test_shuffle_buffer_moves_whole_blocks() -> None:
    blocks = [[{"k": i, "j": j} for j in range(3)] for i in range(10)]
    out = list(shuffle_blocks(iter(blocks), 4, np.random.default_rng(0)))
    assert sorted(b[0]["k"] for b in out) == list(range(10))
    assert [b[0]["k"] for b in out] != list(range(10))
    assert all(len(b) == 3 and len({x["k"] for x in b}) == 1 for b in out)


def test_fused_dirs_are_joined_by_key(fused_features: list[Path]) -> None:
    table = load_feature_table(fused_features)
    assert [p.shape[1:] for p in table.pooled] == [(5, 32), (5, 24)]
    assert [s.name for s in table.inputs] == ["synthetic0", "synthetic1"]


def test_missing_split_and_mismatched_fusion_are_errors(features: Path, fused_features: list[Path]) -> None:
    with pytest.raises(TrainingError, match="no 'nosuch"):
        common_shards([features], "nosuch")
    with pytest.raises(TrainingError, match="different"):
        common_shards([features, fused_features[0]], "train")
