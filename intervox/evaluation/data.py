"""Load one split of a feature shard dir into memory: keys, clip JSONs and pooled features."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervox.errors import IntervoxError, ShardError
from intervox.shards.read import StreamStats, iter_shards, list_shards

log = logging.getLogger(__name__)


def layer_norm(x: np.ndarray) -> np.ndarray:
    """Return float32 `x` layer-normed over its last axis, as the projector's `normalize_layers` input.

    F.layer_norm without affine and eps 1e-5: a raw-layer baseline must see what the projector sees.
    """
    x = np.asarray(x, dtype=np.float32)
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)


@dataclass(frozen=True)
class FeatureSet:
    """The clips of one split: keys, their JSON metadata, and pooled features [N, layers + 1, hidden]."""

    split: str
    keys: list[str]
    metas: list[dict]
    pooled: np.ndarray  # float16 as stored; cast per use

    def __len__(self) -> int:
        return len(self.keys)

    def values(self, field: str) -> list:
        """Return the clip JSON field `field` of every clip (None where missing)."""
        return [m.get(field) for m in self.metas]

    def index(self) -> dict[str, int]:
        """Return {key: row}."""
        return {k: i for i, k in enumerate(self.keys)}

    def genders(self) -> dict[str, str | None]:
        """Return {key: gender}."""
        return {k: m.get("gender") for k, m in zip(self.keys, self.metas, strict=False)}


def split_shards(features: Path, split: str | None) -> list[Path]:
    """Return the shards `{split}-NNNNNN.tar` of a feature dir (every shard when split is None)."""
    shards = list_shards(features)
    if split is None:
        return shards
    return [p for p in shards if p.name.rsplit("-", 1)[0] == split]


def load_split(features: str | Path, split: str | None, *, max_clips: int | None = None,
               seed: int = 0) -> FeatureSet:
    """Return the clips of `split` in a feature dir, at most `max_clips` of them (whole anchor groups).

    Subsampling keeps an anchor together with its intervened clips (chosen by seed), so
    interventional pairs survive. Raises IntervoxError when the split has no shards.
    """
    features = Path(features)
    if not features.is_dir():
        raise IntervoxError(f"{features}: feature dir does not exist")
    shards = split_shards(features, split)
    if not shards:
        raise IntervoxError(f"{features}: no shards for split {split!r}")
    keys, metas, pooled = [], [], []
    stats = StreamStats()
    for sample in iter_shards(shards, stats=stats):
        if "json" not in sample or "pooled.npy" not in sample:
            raise ShardError(f"{sample['__shard__']}:{sample['__key__']}: "
                             "feature clip lacks json or pooled.npy")
        keys.append(sample["__key__"])
        metas.append(sample["json"])
        pooled.append(sample["pooled.npy"])
    if not keys:
        raise IntervoxError(f"{features}: split {split!r} has no clips")
    shapes = {p.shape for p in pooled}
    if len(shapes) != 1:
        raise ShardError(f"{features}: split {split!r} mixes pooled shapes {sorted(shapes)}")
    fs = FeatureSet(split or "all", keys, metas, np.stack(pooled))
    if max_clips is not None and len(fs) > max_clips:
        fs = subsample(fs, max_clips, seed)
    log.info("loaded %d clips of %s/%s", len(fs), features, split)
    return fs


def subsample(fs: FeatureSet, max_clips: int, seed: int) -> FeatureSet:
    """Return about `max_clips` clips of `fs`: random whole anchor groups (anchor + its intervened clips)."""
    group = [m.get("source_key") or k for k, m in zip(fs.keys, fs.metas, strict=False)]
    anchors = sorted(set(group))
    rng = np.random.default_rng([seed, len(fs)])
    per_group = len(fs) / len(anchors)
    chosen = {anchors[i] for i in rng.permutation(len(anchors))[: max(1, int(max_clips / per_group))]}
    rows = [i for i, g in enumerate(group) if g in chosen]
    return FeatureSet(fs.split, [fs.keys[i] for i in rows], [fs.metas[i] for i in rows], fs.pooled[rows])


def audio_shard_dir(features: Path) -> Path | None:
    """Return the audio shard dir recorded in a feature dir's index.json, if any and present."""
    index = Path(features) / "index.json"
    if not index.is_file():
        return None
    try:
        data = json.loads(index.read_text())
    except ValueError:
        return None
    # features.extract writes {"features": {"source_dir": ...}}; the others are fallbacks.
    section = data.get("features") if isinstance(data.get("features"), dict) else {}
    candidates = [section.get("source_dir"), section.get("audio_shards")]
    candidates += [data.get(k) for k in ("audio_shards", "source_dir", "audio_dir")]
    for c in candidates:
        if isinstance(c, str) and c:
            p = Path(c)
            for q in (p, Path(features) / p):
                if q.is_dir():
                    return q
    return None
