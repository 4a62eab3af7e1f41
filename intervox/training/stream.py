"""Streamed block batches: webdataset-style stages over feature shards, for large data.

Stages (each a small generator): seeded shard shuffle or resampling -> split_by_node ->
split_by_worker -> joined samples -> whole contrastive blocks -> a shuffle buffer of
blocks -> batches of `blocks_per_batch` blocks -> `with_epoch`. Ranks get disjoint shards
(split_by_node comes before resampling), and under DDP resampled epochs have a fixed
length so no rank runs dry while another still trains.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import groupby, islice
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from intervox.errors import TrainingError
from intervox.training.config import DataConfig, LossConfig
from intervox.training.data import (
    Batch,
    anchors_with_positives,
    iter_fused_samples,
    sample_frame_pairs,
)
from intervox.training.losses import labels_to_ids


def split_by_node(names: list[str], rank: int, world: int) -> list[str]:
    """Return this rank's shards: every world-th shard starting at `rank`."""
    return names[rank::world]


def split_by_worker(names: list[str], worker: int, workers: int) -> list[str]:
    """Return this DataLoader worker's share of the rank's shards."""
    return names[worker::workers]


def shard_order(names: list[str], rng: np.random.Generator, resampled: bool) -> Iterator[str]:
    """Yield shards once in a seeded random order, or draw them with replacement forever."""
    if resampled:
        while True:
            yield names[rng.integers(len(names))]
    else:
        yield from (names[i] for i in rng.permutation(len(names)))


def group_blocks(samples: Iterable[dict]) -> Iterator[list[dict]]:
    """Yield whole contrastive blocks: consecutive samples of one shard read with equal `block` (>= 0)."""
    for (_, block), group in groupby(samples, key=lambda s: (s.get("read", s["shard"]),
                                                             int(s["meta"].get("block", -1)))):
        if block >= 0:
            yield list(group)


def shuffle_blocks(blocks: Iterable[list[dict]], size: int, rng: np.random.Generator) -> Iterator[list[dict]]:
    """Yield blocks through a shuffle buffer of `size` blocks (blocks are never split)."""
    buffer: list[list[dict]] = []
    for block in blocks:
        buffer.append(block)
        if len(buffer) >= size:
            yield buffer.pop(rng.integers(len(buffer)))
    while buffer:
        yield buffer.pop(rng.integers(len(buffer)))


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
                 if (s["meta"].get("op") or {}).get("keeps_timing") and s["meta"].get("source_key") in index
                 and s["frames"] is not None and index[s["meta"]["source_key"]]["frames"] is not None]
        if pairs:
            chosen = np.sort(rng.choice(len(pairs), min(loss.frame_pairs, len(pairs)), replace=False))
            pairs = [pairs[i] for i in chosen]
            batch.frame_source, batch.frame_copy = sample_frame_pairs(
                [a["frames"] for a, _ in pairs], [b["frames"] for _, b in pairs],
                loss.frames_per_pair, loss.frame_layer or 0, rng)
    return batch


class BlockStream(IterableDataset):
    """One epoch of block batches for one rank (and its DataLoader workers)."""

    def __init__(self, dirs: list[Path], names: list[str], cfg: DataConfig, seed: int, rank: int, world: int,
                 epoch: int, resampled: bool, loss: LossConfig | None = None) -> None:
        super().__init__()
        self.dirs, self.names, self.cfg, self.seed = dirs, names, cfg, seed
        self.rank, self.world, self.epoch, self.resampled, self.loss = rank, world, epoch, resampled, loss

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        names = split_by_worker(split_by_node(self.names, self.rank, self.world), worker, workers)
        if not names:
            return
        rng = np.random.default_rng([self.seed, self.rank, self.epoch, worker])
        samples = iter_fused_samples(self.dirs, shard_order(names, rng, self.resampled), self.cfg.frames,
                                     self.cfg.max_bad_shard_fraction, len(names))
        blocks = shuffle_blocks(group_blocks(samples), self.cfg.shuffle_buffer_blocks, rng)
        batches = batch_blocks(blocks, self.cfg.blocks_per_batch)
        if self.resampled:  # with_epoch: a fixed number of batches per worker
            batches = islice(batches, math.ceil(self.cfg.epoch_batches / workers))
        for blocks_ in batches:
            yield collate_blocks(blocks_, self.loss, rng)


class StreamSource:
    """Endless batches over epochs of BlockStream; its state is (epoch, batches taken in it)."""

    def __init__(self, dirs: list[Path], names: list[str], cfg: DataConfig, seed: int, rank: int = 0,
                 world: int = 1, resampled: bool = False, loss: LossConfig | None = None) -> None:
        if len(names) < world:
            raise TrainingError(f"{len(names)} shards cannot be split over {world} ranks: "
                                "every rank needs one")
        self.dirs, self.names, self.cfg, self.seed = dirs, names, cfg, seed
        self.rank, self.world, self.resampled, self.loss = rank, world, resampled, loss
        self.epoch, self.in_epoch = 0, 0
        self._it: Iterator[Batch] | None = None

    def _open(self) -> Iterator[Batch]:
        ds = BlockStream(self.dirs, self.names, self.cfg, self.seed, self.rank, self.world, self.epoch,
                         self.resampled, self.loss)
        it: Iterator[Batch] = iter(DataLoader(ds, batch_size=None, num_workers=self.cfg.num_workers,
                                              collate_fn=lambda b: b))
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
