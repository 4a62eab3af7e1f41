"""The block stream on webdataset: bad shards never leave a partial block, workers share an epoch."""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import pytest

from intervox.errors import ShardError
from intervox.training.config import DataConfig
from intervox.training.data import common_shards, load_feature_table
from intervox.training.stream import StreamSource
from intervox.training.synthetic import write_synthetic_features


@pytest.fixture(scope="module")
def two_block_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 train shards of 2 blocks (4 speakers x 8 contents) each."""
    d = tmp_path_factory.mktemp("stream") / "features"
    write_synthetic_features(d, speakers=16, contents=16, layers=2, hidden=8, blocks_per_shard=2)
    return d


def _epoch_blocks(source: StreamSource, table_blocks: dict) -> list[Counter]:
    """Return the block counts of each batch of epoch 0."""
    out = []
    while source.state()["epoch"] == 0:
        batch = source.batch(0)
        if source.state()["epoch"] == 0:
            out.append(Counter(table_blocks[k] for k in batch.keys))
    return out


def test_a_shard_cut_inside_its_second_block_gives_only_its_whole_first_block(
        two_block_shards: Path, tmp_path: Path) -> None:
    table = load_feature_table([two_block_shards])
    blocks = {k: (Path(s).name, int(b))
              for k, s, b in zip(table.keys, table.shards, table.block, strict=True)}
    d = tmp_path / "features"
    d.mkdir()
    names = common_shards([two_block_shards], "train")
    for name in names:
        (d / name).write_bytes((two_block_shards / name).read_bytes())
    cut = names[1]
    with tarfile.open(d / cut) as t:  # members: 64 clips x (json, pooled.npy); block 2 starts at clip 32
        offset = t.getmembers()[2 * 40 + 1].offset_data + 10  # inside clip 40's pooled.npy
    (d / cut).write_bytes((d / cut).read_bytes()[:offset])  # no sidecars here: the tar reader must see it
    cfg = DataConfig(features=(str(d),), batching="blocks", blocks_per_batch=2, shuffle_buffer_blocks=3,
                     max_bad_shard_fraction=0.25)
    seen = _epoch_blocks(StreamSource([d], names, cfg, seed=0), blocks)
    assert all(set(c.values()) == {32} for c in seen)  # only whole blocks, in every batch
    got = {b for c in seen for b in c}
    first_of_cut = min(b for s, b in blocks.values() if s == cut)
    assert got == {v for v in blocks.values() if v[0] != cut} | {(cut, first_of_cut)}
    strict = DataConfig(features=(str(d),), batching="blocks", blocks_per_batch=2)
    with pytest.raises(ShardError, match=f"1 of 4 shards are bad.*{cut}"):
        _epoch_blocks(StreamSource([d], names, strict, seed=0), blocks)


def test_two_workers_read_every_block_once_per_epoch(two_block_shards: Path) -> None:
    table = load_feature_table([two_block_shards])
    blocks = {k: (s, int(b)) for k, s, b in zip(table.keys, table.shards, table.block, strict=True)}
    names = common_shards([two_block_shards], "train")
    cfg = DataConfig(features=(str(two_block_shards),), batching="blocks", blocks_per_batch=2,
                     shuffle_buffer_blocks=2, num_workers=2)
    seen = _epoch_blocks(StreamSource([two_block_shards], names, cfg, seed=3), blocks)
    assert sum(len(c) for c in seen) == 8 and len({b for c in seen for b in c}) == 8
    assert all(set(c.values()) == {32} for c in seen)


def test_resampled_workers_give_a_fixed_epoch(two_block_shards: Path) -> None:
    table = load_feature_table([two_block_shards])
    blocks = {k: (s, int(b)) for k, s, b in zip(table.keys, table.shards, table.block, strict=True)}
    names = common_shards([two_block_shards], "train")[:1]  # fewer shards than workers
    cfg = DataConfig(features=(str(two_block_shards),), batching="blocks", blocks_per_batch=2,
                     shuffle_buffer_blocks=2, num_workers=2, resampled=True, epoch_batches=5)
    source = StreamSource([two_block_shards], names, cfg, seed=0, resampled=True)
    assert len(_epoch_blocks(source, blocks)) == 5
