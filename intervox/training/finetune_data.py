"""Audio batches for `intervox finetune`: each rank's own audio shards, drawn as speakers x sentences grids.

Rank r of W reads shards r, r + W, ... of the split (disjoint shards; a rank without a shard is
an error, since it would hang the others), decodes them once with the project's safe reader, and
draws every step's batch with the projector's GridSampler (`training/data.py`) over its own
clips: S speakers x T sentences, each clip with a speaker and a content positive, batch k a pure
function of (seed, rank, k), so resuming needs only the step. Contrastive blocks are never split:
a block lives in one shard, a shard on one rank.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from intervox.audio import resample
from intervox.errors import ShardError, TrainingError
from intervox.shards.read import AUDIO_EXTS, StreamStats, iter_shards, list_shards
from intervox.training.config import DataConfig
from intervox.training.data import FeatureTable, GridSampler, anchors_with_positives, is_frame_pair_copy
from intervox.training.finetune_config import FinetuneDataConfig

log = logging.getLogger(__name__)

FRAME_PAIR_STREAM = 1  # the frame loss's draws: a seed stream of their own, apart from the grid's


def label_id(label: str) -> int:
    """Return a 63-bit id of a label string: equal labels get equal ids on every rank."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little") & (2**63 - 1)


@dataclass
class AudioBatch:
    """One rank's batch: waveforms, global label ids and what they are."""

    audio: list[np.ndarray]
    speaker: torch.Tensor  # int64 label_id of the speaker, comparable across ranks
    content: torch.Tensor
    keys: list[str]
    shards: list[str]
    positives: dict[str, int]


def shard_name(location: str | Path) -> str:
    """Return the file name of a shard path or URL."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def rank_shards(directory: str | Path, split: str, rank: int, world: int) -> list[str | Path]:
    """Return rank's audio shards of `split`: every world-th one from position rank."""
    shards = [p for p in list_shards(directory) if shard_name(p).startswith(f"{split}-")]
    if not shards:
        raise TrainingError(f"{directory}: no '{split}-*.tar' audio shards (build them with "
                            "`intervox shards build`)")
    if len(shards) < world:
        raise TrainingError(f"{directory}: {len(shards)} '{split}' shard(s) for {world} ranks: every rank "
                            "needs its own shard (build more, smaller shards or use fewer ranks)")
    return shards[rank::world]


class AudioGrid:
    """A rank's clips in memory with the grid sampler over their labels."""

    def __init__(self, cfg: FinetuneDataConfig, sample_rate: int, seed: int, rank: int, world: int) -> None:
        self.shard_paths = rank_shards(cfg.shards, cfg.split, rank, world)
        self.stats = StreamStats()
        audio, keys, shards, speakers, contents, metas = [], [], [], [], [], []
        max_len = int(cfg.max_seconds * sample_rate)
        for s in iter_shards(self.shard_paths, stats=self.stats, max_bad_fraction=cfg.max_bad_shard_fraction):
            ext = next((e for e in AUDIO_EXTS if e in s), None)
            meta = s.get("json")
            if ext is None or not isinstance(meta, dict) or "speaker" not in meta or "content" not in meta:
                raise ShardError(f"{s['__shard__']}:{s['__key__']}: sample lacks audio, speaker or content")
            wave, sr = s[ext]
            audio.append(resample(wave, sr, sample_rate)[:max_len])
            keys.append(s["__key__"])
            shards.append(s["__shard__"])
            speakers.append(str(meta["speaker"]))
            contents.append(str(meta["content"]))
            metas.append(meta)
        if not audio:
            raise TrainingError(f"{cfg.shards}: rank {rank} read no clips from its "
                                f"{len(self.shard_paths)} shard(s)")
        self.audio, self.keys, self.shards = audio, keys, shards
        self.speaker_ids = torch.tensor([label_id(s) for s in speakers], dtype=torch.long)
        self.content_ids = torch.tensor([label_id(c) for c in contents], dtype=torch.long)
        spk_vocab, con_vocab = sorted(set(speakers)), sorted(set(contents))
        sid, cid = {v: i for i, v in enumerate(spk_vocab)}, {v: i for i, v in enumerate(con_vocab)}
        # (anchor, timing-preserving copy) clip pairs for the frame loss: a copy lives in its anchor's
        # block, so in its anchor's shard and on its anchor's rank
        index = {k: i for i, k in enumerate(keys)}
        pairs = [(index[m["source_key"]], i) for i, m in enumerate(metas)
                 if is_frame_pair_copy(m) and m["source_key"] in index]
        # a label-only table: the grid sampler reads nothing but the labels
        table = FeatureTable(keys=keys, shards=shards, pooled=[],
                             speaker=np.array([sid[s] for s in speakers]),
                             content=np.array([cid[c] for c in contents]), speakers=spk_vocab,
                             contents=con_vocab, block=np.full(len(keys), -1), inputs=[], frames={},
                             pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2))
        grid_cfg = DataConfig(features=(str(cfg.shards),), speakers_per_batch=cfg.speakers_per_batch,
                              contents_per_batch=cfg.contents_per_batch)
        # world=1: the shards are already this rank's own; `rank` still seeds its own draws
        self.sampler = GridSampler(table, grid_cfg, seed, rank, 1)
        self.table, self.seed, self.rank = table, seed, rank

    def frame_pairs(self, step: int, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Return the audio of up to `n` (anchor, timing-preserving copy) pairs for step `step`.

        The draw is a pure function of (seed, rank, step), so a resumed run draws the same pairs.
        """
        pairs = self.table.pairs
        rng = np.random.default_rng([self.seed, self.rank, step, FRAME_PAIR_STREAM])
        chosen = pairs[np.sort(rng.choice(len(pairs), size=min(n, len(pairs)), replace=False))]
        return [self.audio[i] for i in chosen[:, 0]], [self.audio[i] for i in chosen[:, 1]]

    def describe(self) -> dict:
        """Return the rank's data: clips, speakers, sentences, shards and the grid's first draws."""
        return {"clips": len(self.keys), "speakers": len(self.table.speakers),
                "frame_pairs": len(self.table.pairs), "contents": len(self.table.contents),
                "shards": [shard_name(p) for p in self.shard_paths],
                "bad_shards": self.stats.to_dict()["bad_shards"], "grid": self.sampler.describe()}

    def batch(self, step: int) -> AudioBatch:
        """Return batch `step` of this rank."""
        idx = self.sampler.indices(step)
        t = self.table
        return AudioBatch(audio=[self.audio[i] for i in idx], speaker=self.speaker_ids[idx],
                          content=self.content_ids[idx], keys=[self.keys[i] for i in idx],
                          shards=sorted({self.shards[i] for i in idx}),
                          positives={"speaker": anchors_with_positives(t.speaker[idx]),
                                     "content": anchors_with_positives(t.content[idx])})
