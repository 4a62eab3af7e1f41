"""Grid sampling and block streaming: whole blocks, positives, disjoint ranks, epochs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from intervox.errors import TrainingError
from intervox.shards.read import shuffled
from intervox.training.config import DataConfig
from intervox.training.data import (
    FeatureTable,
    GridSampler,
    anchors_with_positives,
    common_shards,
    load_feature_table,
)
from intervox.training.model import InputSpec
from intervox.training.stream import StreamSource


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


def label_table(rows: list[tuple[str, str]]) -> FeatureTable:
    """Return a FeatureTable of (speaker, content) rows with 1-d dummy features."""
    spk, con = sorted({r[0] for r in rows}), sorted({r[1] for r in rows})
    n = len(rows)
    return FeatureTable(keys=[f"k{i}" for i in range(n)], shards=["s"] * n,
                        pooled=[np.zeros((n, 1, 1), np.float16)],
                        speaker=np.array([spk.index(r[0]) for r in rows]),
                        content=np.array([con.index(r[1]) for r in rows]), speakers=spk, contents=con,
                        block=np.zeros(n, np.int64), inputs=[InputSpec("x", 1, 1)], frames={},
                        pairs=np.zeros((0, 2), np.int64))


def voices_and_copies(voices: int, texts_of, channels: int = 1) -> list[tuple[str, str]]:
    """Rows of an interventional set: each anchor, its channel copies and two derived identities."""
    rows = []
    for v in range(voices):
        for text in texts_of(v):
            rows += [(f"v{v:02d}", text)] * (1 + channels)
            rows += [(f"v{v:02d}~praat_gender1", text), (f"v{v:02d}~world_vc2", text)]
    return rows


PAPER_BATCH = DataConfig(features=("x",), speakers_per_batch=16, contents_per_batch=32)


def test_dense_identity_grid_gives_full_batches_every_step() -> None:
    # 16 voices x 3 identities x 32 sentences: the default set once derived voices are identities
    table = label_table(voices_and_copies(16, lambda v: [f"s{j}" for j in range(32)]))
    sampler = GridSampler(table, PAPER_BATCH, seed=0)
    for step in range(20):
        idx = sampler.indices(step)
        assert len(idx) == 512
        assert len(set(table.speaker[idx])) == 16 and len(set(table.content[idx])) == 32
        assert anchors_with_positives(table.speaker[idx]) == anchors_with_positives(table.content[idx]) == 512
    assert np.array_equal(sampler.indices(7), GridSampler(table, PAPER_BATCH, seed=0).indices(7))
    assert sampler.describe()["full_grid"]


def test_holes_still_give_full_batches_when_a_full_subgrid_exists() -> None:
    rows = voices_and_copies(16, lambda v: [f"s{j}" for j in range(32)])
    # 20 of the 48 identities lose one sentence each (quarantined clips): 28 complete ones remain
    holes = {(f"v{v:02d}~praat_gender1", f"s{v}") for v in range(16)}
    holes |= {(f"v{v:02d}", "s3") for v in range(4)}
    table = label_table([r for r in rows if r not in holes])
    sampler = GridSampler(table, PAPER_BATCH, seed=0)
    assert {len(sampler.indices(step)) for step in range(20)} == {512}


def test_sparse_corpus_gets_the_densest_batches_it_allows() -> None:
    # LibriSpeech-like: 40 speakers with 50 texts of their own; only derived voices repeat a text
    table = label_table(voices_and_copies(40, lambda v: [f"t{v}_{j}" for j in range(50)], channels=2))
    sampler = GridSampler(table, PAPER_BATCH, seed=0)
    for step in range(10):
        idx = sampler.indices(step)
        # each text has 3 speakers: 32 texts x 3 = 96 is the most a 16 x 32 batch can hold
        assert len(idx) == 96
        assert anchors_with_positives(table.speaker[idx]) == anchors_with_positives(table.content[idx]) == 96
        assert len({table.speakers[s].split("~")[0] for s in table.speaker[idx]}) == 5  # 5 voices x 3
    desc = sampler.describe()
    assert not desc["full_grid"] and desc["probe_min"] == desc["probe_max"] == 96 and desc["target"] == 512


def test_sparse_grid_batches_are_dense_and_all_positive() -> None:
    # each of 512 sentences said by 4 of 40 voices (and their derived identities)
    rng = np.random.default_rng(0)
    said = {v: [] for v in range(40)}
    for j in range(512):
        for v in rng.choice(40, 4, replace=False):
            said[int(v)].append(f"s{j}")
    table = label_table(voices_and_copies(40, lambda v: said[v]))
    sampler = GridSampler(table, PAPER_BATCH, seed=0)
    sizes = []
    for step in range(20):
        idx = sampler.indices(step)
        sizes.append(len(idx))
        for labels in (table.speaker[idx], table.content[idx]):
            assert anchors_with_positives(labels) == len(idx)
    assert min(sizes) >= 180 and np.mean(sizes) > 200  # measured 193-224, mean 209 (today's sampler: 126)


def test_grid_of_sentence_groups_gives_full_batches_every_step() -> None:
    # source.sentences_per_voice=32 on 47 voices x 64 sentences: two groups of 24 and 23 voices
    table = label_table(voices_and_copies(47, lambda v: [f"s{(v % 2) * 32 + j}" for j in range(32)]))
    sampler = GridSampler(table, PAPER_BATCH, seed=0)
    groups = set()
    for step in range(20):
        idx = sampler.indices(step)
        assert len(idx) == 512 and len(set(table.content[idx])) == 32
        assert anchors_with_positives(table.speaker[idx]) == anchors_with_positives(table.content[idx]) == 512
        groups.add(int(table.contents[table.content[idx][0]][1:]) // 32)
    assert groups == {0, 1} and sampler.describe()["full_grid"]  # both groups are drawn


def test_data_without_shared_contents_is_an_error() -> None:
    table = label_table([(f"v{v}", f"t{v}_{j}") for v in range(8) for j in range(4)])
    with pytest.raises(TrainingError, match="no two speakers share two contents"):
        GridSampler(table, PAPER_BATCH, seed=0).indices(0)


def test_ranks_keep_a_voice_and_its_derived_identities_together() -> None:
    table = label_table(voices_and_copies(12, lambda v: [f"t{v}_{j}" for j in range(8)]))
    cfg = DataConfig(features=("x",), speakers_per_batch=4, contents_per_batch=8)
    bases = []
    for rank in (0, 1):
        sampler = GridSampler(table, cfg, seed=0, rank=rank, world=2)
        mine = {table.speakers[s] for s in sampler.my_speakers}
        assert len(mine) == 18
        bases.append({s.split("~")[0] for s in mine})
        assert all(f"{b}~praat_gender1" in mine and f"{b}~world_vc2" in mine for b in bases[-1])
        assert len(sampler.indices(0)) == 8 * 3  # 8 contents, each with its 3 speakers
    assert not bases[0] & bases[1]


def _block_ids(batch, table_blocks: dict) -> Counter:
    return Counter(table_blocks[k] for k in batch.keys)


def test_block_stream_keeps_blocks_whole_and_ranks_disjoint(features: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    table = load_feature_table([features])
    blocks = {k: (s, b) for k, s, b in zip(table.keys, table.shards, table.block, strict=True)}
    names = common_shards([features], "train")
    cfg = DataConfig(features=(str(features),), batching="blocks", blocks_per_batch=2,
                     shuffle_buffer_blocks=4, epoch_batches=5)
    keys_per_rank = []
    for rank in (0, 1):  # the ranks webdataset's split_by_node sees (torchrun sets RANK and WORLD_SIZE)
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        source = StreamSource([features], names, cfg, seed=0, resampled=True)
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
    out = list(shuffled(iter(blocks), 4, [0]))
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
