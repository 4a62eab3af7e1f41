"""Streamed block batches: a webdataset pipeline over feature shards, for large data.

Stages (intervox.shards.read.shard_pipeline plus three of ours): seeded shard order
(`wds.SimpleShardList`) or this rank's shards resampled (`wds.ResampledShards`) ->
`wds.split_by_node` -> `wds.split_by_worker` -> whole contrastive blocks of each shard read ->
`wds.shuffle` of blocks (whole blocks move) -> batches of `blocks_per_batch` distinct blocks ->
collate -> `with_epoch` (resampled). Ranks get disjoint shards (split_by_node comes before
resampling), and under DDP resampled epochs have a fixed length so no rank runs dry while
another still trains. The pipeline is built afresh each epoch with the epoch in its seeds, so
non-persistent DataLoader workers cannot restart an epoch counter.

Blocks are grouped inside each shard's read: a block is yielded only once the shard has moved
past it or ended cleanly, so a block that a bad shard cuts short never reaches a batch (the
shard's earlier, whole blocks do).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import groupby, islice
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from intervox.errors import TrainingError
from intervox.shards.read import shard_pipeline, shuffled, worker_info
from intervox.training.config import DataConfig, LossConfig
from intervox.training.data import (
    Batch,
    anchors_with_positives,
    is_frame_pair_copy,
    iter_fused_shard,
    made_by_excluded_op,
    sample_frame_pairs,
)
from intervox.training.losses import labels_to_ids


def group_blocks(samples: Iterable[dict]) -> Iterator[list[dict]]:
    """Yield whole contrastive blocks: consecutive samples with equal `block` (>= 0) of one shard read."""
    for block, group in groupby(samples, key=lambda s: int(s["meta"].get("block", -1))):
        if block >= 0:
            yield list(group)


def shard_blocks(dirs: list[Path], frames: bool, name: str, exclude_ops: tuple[str, ...] = ()
                 ) -> Iterator[list[dict]]:
    """Yield the whole blocks of feature shard `name` (joined over the fused dirs), less the clips
    made by an op in `exclude_ops`."""
    samples = iter_fused_shard(dirs, name, frames)
    yield from group_blocks(s for s in samples if not made_by_excluded_op(s["meta"], exclude_ops))


def worker_seed(seed: int, epoch: int) -> list[int]:
    """Return the seed of this rank's DataLoader worker in `epoch` (webdataset's rank/worker view)."""
    rank, _, worker, _ = worker_info()
    return [seed, rank, epoch, worker]


def _block_id(block: list[dict]) -> tuple[str, int]:
    return block[0]["shard"], int(block[0]["meta"].get("block", -1))


def batch_blocks(blocks: Iterable[list[dict]], per_batch: int) -> Iterator[list[list[dict]]]:
    """Yield lists of `per_batch` distinct blocks (the last may be shorter).

    A block drawn again while a copy is in the batch (resampled shards) waits for the next
    batch: duplicated clips would be trivially easy positives.
    """
    current: list[list[dict]] = []
    waiting: list[list[dict]] = []
    for block in blocks:
        for candidate in [*waiting, block]:
            if candidate is not block:
                waiting.remove(candidate)
            if _block_id(candidate) in {_block_id(b) for b in current}:
                waiting.append(candidate)
                continue
            current.append(candidate)
            if len(current) == per_batch:
                yield current
                current = []
    for block in waiting:  # end of a finite stream: leftovers, still never two copies together
        if _block_id(block) in {_block_id(b) for b in current}:
            yield current
            current = []
        current.append(block)
        if len(current) == per_batch:
            yield current
            current = []
    if current:
        yield current


def collate_blocks(blocks: list[list[dict]], loss: LossConfig | None, rng: np.random.Generator) -> Batch:
    """Return a Batch from whole blocks; timing-preserving pairs inside it give frame pairs."""
    samples = [s for block in blocks for s in block]
    speakers = np.asarray(labels_to_ids([s["meta"]["speaker"] for s in samples]))
    contents = np.asarray(labels_to_ids([s["meta"]["content"] for s in samples]))
    batch = Batch(pooled=[torch.from_numpy(np.stack([s["pooled"][u] for s in samples]).astype(np.float32))
                          for u in range(len(samples[0]["pooled"]))],
                  speaker=torch.from_numpy(speakers), content=torch.from_numpy(contents),
                  keys=[s["key"] for s in samples], shards=sorted({s["shard"] for s in samples}),
                  positives={"speaker": anchors_with_positives(speakers),
                             "content": anchors_with_positives(contents)})
    if loss is not None and loss.frame_content_weight > 0:
        index = {s["key"]: s for s in samples}
        pairs = [(index[s["meta"]["source_key"]], s) for s in samples
                 if is_frame_pair_copy(s["meta"]) and s["meta"]["source_key"] in index
                 and s["frames"] is not None and index[s["meta"]["source_key"]]["frames"] is not None]
        if pairs:
            chosen = np.sort(rng.choice(len(pairs), min(loss.frame_pairs, len(pairs)), replace=False))
            pairs = [pairs[i] for i in chosen]
            batch.frame_source, batch.frame_copy = sample_frame_pairs(
                [a["frames"] for a, _ in pairs], [b["frames"] for _, b in pairs],
                loss.frames_per_pair, loss.frame_layer, rng)
    return batch


def _shuffled(blocks: Iterable[list[dict]], size: int, seed: int, epoch: int) -> Iterator[list[dict]]:
    return shuffled(blocks, size, worker_seed(seed, epoch))  # whole blocks move through the buffer


def _collated(batches: Iterable[list[list[dict]]], loss: LossConfig | None, seed: int,
              epoch: int) -> Iterator[Batch]:
    rng = np.random.default_rng(worker_seed(seed, epoch))
    for blocks in batches:
        yield collate_blocks(blocks, loss, rng)


def block_pipeline(dirs: list[Path], names: list[str], cfg: DataConfig, seed: int, epoch: int,
                   resampled: bool, loss: LossConfig | None = None) -> IterableDataset:
    """Return one epoch of block batches for this rank (and its DataLoader workers) as a wds pipeline."""
    stages = [partial(_shuffled, size=cfg.shuffle_buffer_blocks, seed=seed, epoch=epoch),
              partial(batch_blocks, per_batch=cfg.blocks_per_batch),
              partial(_collated, loss=loss, seed=seed, epoch=epoch)]
    per_worker = math.ceil(cfg.epoch_batches / max(cfg.num_workers, 1))  # with_epoch when resampled
    return shard_pipeline(names, read=partial(shard_blocks, dirs, cfg.frames, exclude_ops=cfg.exclude_ops),
                          max_bad_fraction=cfg.max_bad_shard_fraction,
                          seed=int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]),
                          resampled=resampled, stages=stages, epoch_length=per_worker if resampled else None)


class StreamSource:
    """Endless batches over epochs of `block_pipeline`; its state is (epoch, batches taken in it)."""

    def __init__(self, dirs: list[Path], names: list[str], cfg: DataConfig, seed: int,
                 resampled: bool = False, loss: LossConfig | None = None) -> None:
        self.rank, self.world, _, _ = worker_info()  # what wds.split_by_node splits by
        if len(names) < self.world:
            raise TrainingError(f"{len(names)} shards cannot be split over {self.world} ranks: "
                                "every rank needs one")
        self.dirs, self.names, self.cfg, self.seed = dirs, names, cfg, seed
        self.resampled, self.loss = resampled, loss
        self.epoch, self.in_epoch = 0, 0
        self._it: Iterator[Batch] | None = None

    def _open(self) -> Iterator[Batch]:
        ds = block_pipeline(self.dirs, self.names, self.cfg, self.seed, self.epoch, self.resampled, self.loss)
        it: Iterator[Batch] = iter(DataLoader(ds, batch_size=None, num_workers=self.cfg.num_workers,
                                              collate_fn=_identity))
        if self.resampled:
            it = islice(it, self.cfg.epoch_batches)
        for _ in range(self.in_epoch):  # resume: replay the batches already taken this epoch
            next(it)
        return it

    def batch(self, step: int) -> Batch:
        """Return the next batch (`step` is not needed: the stream position is the state)."""
        for _ in range(2):
            if self._it is None:
                self._it = self._open()
            try:
                batch = next(self._it)
            except StopIteration:
                if self.in_epoch == 0:
                    raise TrainingError(f"epoch {self.epoch} of rank {self.rank} yielded no block batch "
                                        "(no clips with block >= 0?)") from None
                self.epoch, self.in_epoch, self._it = self.epoch + 1, 0, None
                continue
            self.in_epoch += 1
            return batch
        raise TrainingError("block stream ended unexpectedly")

    def state(self) -> dict:
        return {"kind": "blocks", "epoch": self.epoch, "batch": self.in_epoch}

    def restore(self, state: dict) -> None:
        self.epoch, self.in_epoch, self._it = int(state["epoch"]), int(state["batch"]), None


def _identity(batch: Batch) -> Batch:
    return batch
