"""The training split as a compact index: labels in memory, features read from the shards per batch.

The grid sampler draws S speakers x T contents from anywhere in the split every step, so it
needs every clip's labels but only a batch's features at a time. `index_feature_table` scans
the feature shards' tar headers once (intervox.shards.random_access) and keeps, per clip, its
key, speaker, content, block, shard and the byte spans of its `pooled.npy` (per fused dir)
and `frames.npy` members: about 80 bytes a clip instead of its features (a whisper-base
clip's pooled [7, 512] float16 alone is 7 KiB, its frames far more). `GridSampler.batch`
then reads the batch's members with one `pread` each. There is no feature cache: the OS page
cache already keeps recently read shards, and a cache of its own would grow with the data.

Draws, clips and values are those of the in-memory `load_feature_table` for the same seed
(tests/training/test_grid_memory.py). Evaluation loads its small splits in memory
(intervox/evaluation/data.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intervox.errors import ShardError, TrainingError
from intervox.shards.random_access import (
    IndexedSample,
    MemberReader,
    NpyHeader,
    ShardStamp,
    scan_shard,
    stamp,
)
from intervox.training.config import DataConfig
from intervox.training.data import common_shards, is_frame_pair_copy, made_by_excluded_op, specs_of
from intervox.training.model import InputSpec

log = logging.getLogger(__name__)


@dataclass
class FeatureIndex:
    """A split's clips as labels and member locations; features are read on demand (see module doc).

    Answers what GridSampler reads of a FeatureTable: `speaker`, `content`, `speakers`,
    `contents`, `pairs`, `clip_keys`, `clip_shards`, `pooled_rows`, `clip_frames`.
    """

    dirs: list[Path]
    names: list[str]  # the shards indexed (bad ones skipped); `shard` indexes this list
    keys: np.ndarray  # bytes (utf-8) per clip
    shard: np.ndarray  # int32 per clip
    pooled_at: np.ndarray  # int64 [dirs, clips, 2]: (offset, size) of KEY.pooled.npy in each dir's tar
    frames_at: np.ndarray  # int64 [clips, 2]: KEY.frames.npy in the first dir's tar; -1 where absent
    pooled_npy: list[NpyHeader]  # per dir: every clip's pooled shape and dtype
    speaker: np.ndarray  # int ids into `speakers`
    content: np.ndarray
    speakers: list[str]
    contents: list[str]
    block: np.ndarray
    inputs: list[InputSpec]
    pairs: np.ndarray  # [P, 2] (source index, timing-preserving intervened copy index), both with frames
    stamps: dict[str, ShardStamp]  # the offsets hold only for these sizes and mtimes
    bad_shards: list[dict] = field(default_factory=list)
    excluded: int = 0  # clips left out by data.exclude_ops
    _reader: MemberReader | None = field(default=None, repr=False)

    @property
    def reader(self) -> MemberReader:
        if self._reader is None:  # opened lazily: each DDP rank / process opens its own files
            self._reader = MemberReader(self.stamps)
        return self._reader

    @property
    def nbytes(self) -> int:
        """Return the bytes of the per-clip arrays (what grows with the split)."""
        arrays = (self.keys, self.shard, self.pooled_at, self.frames_at, self.speaker, self.content,
                  self.block, self.pairs)
        return sum(a.nbytes for a in arrays)

    @functools.cached_property
    def shard_paths(self) -> list[list[str]]:
        """Return per dir the path of every indexed shard (index with `shard`)."""
        return [[str(d / name) for name in self.names] for d in self.dirs]

    def clip_keys(self, idx: np.ndarray) -> list[str]:
        return [k.decode() for k in self.keys[idx]]

    def clip_shards(self, idx: np.ndarray) -> list[str]:
        paths = self.shard_paths[0]
        return [paths[s] for s in self.shard[idx].tolist()]

    def pooled_rows(self, idx: np.ndarray) -> list[np.ndarray]:
        """Return per dir the pooled features [len(idx), layers + 1, hidden] of clips `idx`, from disk."""
        idx = np.asarray(idx, dtype=np.int64)
        shard = self.shard[idx]
        order = np.lexsort((self.pooled_at[0, idx, 0], shard)).tolist()  # shard by shard, in file order
        shard = shard.tolist()
        out = []
        for paths, at, header in zip(self.shard_paths, self.pooled_at[:, idx].tolist(), self.pooled_npy,
                                     strict=True):
            rows = np.empty((len(idx), *header.shape), header.dtype)
            for j in order:
                rows[j] = self.reader.read_array(paths[shard[j]], at[j][0], at[j][1], header)
            out.append(rows)
        return out

    def clip_frames(self, idx: np.ndarray) -> list[np.ndarray]:
        """Return the frames [n_selected, F, hidden] of clips `idx` (each must have a frames member)."""
        paths = self.shard_paths[0]
        return [self.reader.read_npy(paths[self.shard[i]], tuple(self.frames_at[i].tolist()),
                                     f"{self.keys[i].decode()}.frames.npy") for i in idx]


def scan_fused_shard(dirs: list[Path], name: str, frames: bool) -> tuple[list[list[IndexedSample]], dict]:
    """Return the scanned samples of shard `name` in every dir (same keys, in order) and their stamps.

    Raises ShardError when the dirs disagree on keys or a clip lacks its JSON or pooled.npy.
    """
    per_dir, stamps = [], {}
    for u, d in enumerate(dirs):
        wanted = {"json", "pooled.npy"} | ({"frames.npy"} if frames and u == 0 else set())
        samples, stamps[str(d / name)] = scan_shard(d / name, wanted)
        per_dir.append(samples)
    for parts in zip(*per_dir, strict=False):
        key = parts[0].key
        if any(p.key != key for p in parts) or len({len(x) for x in per_dir}) != 1:
            raise ShardError(f"{name}: fused feature dirs disagree on keys near {key}")
        for d, p in zip(dirs, parts, strict=True):
            if p.json is None or "pooled.npy" not in p.spans:
                raise ShardError(f"{d / name}:{key}: missing json or pooled.npy")
            for label in ("speaker", "content"):
                if not isinstance(p.json.get(label), str):
                    raise ShardError(f"{d / name}:{key}: clip JSON has no '{label}' label")
    return per_dir, stamps


class _IndexBuilder:
    """Accumulates scanned shards as compact per-shard arrays (no per-clip Python objects kept)."""

    def __init__(self, dirs: list[Path], frames: bool, exclude_ops: tuple[str, ...] = ()) -> None:
        self.dirs, self.frames, self.exclude_ops = dirs, frames, exclude_ops
        self.excluded = 0
        self.names: list[str] = []
        self.chunks: dict[str, list[np.ndarray]] = {k: [] for k in
                                                    ("keys", "shard", "speaker", "content", "block",
                                                     "pooled_at", "frames_at", "copy", "source")}
        self.vocab: dict[str, dict[str, int]] = {"speaker": {}, "content": {}}
        self.headers: list[NpyHeader] | None = None
        self.upstreams: list = []
        self.stamps: dict[str, ShardStamp] = {}
        self.clips = 0

    def add(self, name: str, per_dir: list[list[IndexedSample]], stamps: dict[str, ShardStamp]) -> None:
        if self.exclude_ops:
            keep = [i for i, s in enumerate(per_dir[0]) if not made_by_excluded_op(s.json, self.exclude_ops)]
            self.excluded += len(per_dir[0]) - len(keep)
            per_dir = [[samples[i] for i in keep] for samples in per_dir]
        first = per_dir[0]
        if not first:
            return
        if self.headers is None:
            self.headers = [s[0].npy["pooled.npy"] for s in per_dir]
            self.upstreams = [s[0].json.get("upstream") for s in per_dir]
        for d, samples, want in zip(self.dirs, per_dir, self.headers, strict=True):
            for s in samples:
                if s.npy["pooled.npy"] != want:
                    got = s.npy["pooled.npy"]
                    raise TrainingError(f"{d / name}:{s.key}: pooled.npy is {list(got.shape)} {got.dtype}, "
                                        f"the split's first clip {list(want.shape)} {want.dtype}")
        c, n = self.chunks, len(first)
        metas = [s.json for s in first]
        c["keys"].append(np.array([s.key.encode() for s in first], dtype=bytes))
        c["shard"].append(np.full(n, len(self.names), dtype=np.int32))
        for label in ("speaker", "content"):
            ids = self.vocab[label]
            c[label].append(np.array([ids.setdefault(m[label], len(ids)) for m in metas], dtype=np.int32))
        c["block"].append(np.array([int(m.get("block", -1)) for m in metas], dtype=np.int32))
        c["pooled_at"].append(np.array([[(s.spans["pooled.npy"].offset, s.spans["pooled.npy"].size)
                                         for s in samples] for samples in per_dir], dtype=np.int64))
        spans = [s.spans.get("frames.npy") for s in first]
        c["frames_at"].append(np.array([(f.offset, f.size) if f else (-1, -1) for f in spans],
                                       dtype=np.int64).reshape(-1, 2))
        copies = [i for i, (m, f) in enumerate(zip(metas, spans, strict=True)) if f and is_frame_pair_copy(m)]
        c["copy"].append(np.array(copies, dtype=np.int64) + self.clips)
        c["source"].append(np.array([metas[i]["source_key"].encode() for i in copies], dtype=bytes))
        self.names.append(name)
        self.stamps.update(stamps)
        self.clips += n

    def finish(self, bad_shards: list[dict]) -> FeatureIndex:
        c = {k: np.concatenate(v) for k, v in self.chunks.items() if k != "pooled_at"}
        labels = {}
        for label, ids in self.vocab.items():  # ids in first-seen order -> ids into the sorted vocabulary
            values = sorted(ids)
            rank = {v: i for i, v in enumerate(values)}
            remap = np.array([rank[v] for v in ids], dtype=np.int64)
            labels[label] = (remap[c[label]], values)
        frames_at = c["frames_at"]
        pairs = _timing_pairs(c["keys"], c["source"], c["copy"], frames_at[:, 0] >= 0)
        where = f"{self.dirs[0] / self.names[0]}:{c['keys'][0].decode()}"
        return FeatureIndex(
            dirs=self.dirs, names=self.names, keys=c["keys"], shard=c["shard"],
            pooled_at=np.concatenate(self.chunks["pooled_at"], axis=1), frames_at=frames_at,
            pooled_npy=list(self.headers), speaker=labels["speaker"][0], content=labels["content"][0],
            speakers=labels["speaker"][1], contents=labels["content"][1], block=c["block"].astype(np.int64),
            inputs=specs_of(self.upstreams, [h.shape for h in self.headers], where), pairs=pairs,
            stamps=self.stamps, bad_shards=bad_shards, excluded=self.excluded)


def _timing_pairs(keys: np.ndarray, source: np.ndarray, copy: np.ndarray,
                  has_frames: np.ndarray) -> np.ndarray:
    """Return [P, 2] (source clip, copy clip) for copies whose source key is a clip with frames.

    A key that occurs twice resolves to its last clip, as a dict built in clip order would.
    """
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    at = np.searchsorted(ordered, source, side="right") - 1
    found = (at >= 0) & (ordered[np.maximum(at, 0)] == source)
    src, cpy = order[at[found]], copy[found]
    keep = has_frames[src]
    return np.stack([src[keep], cpy[keep]], axis=1).astype(np.int64).reshape(-1, 2)


_LAST: tuple[tuple, FeatureIndex] | None = None  # the last index built with reuse=True


def index_feature_table(dirs: Iterable[str | Path], split: str = "train", frames: bool = False,
                        names: list[str] | None = None, max_bad_fraction: float = 0.0,
                        reuse: bool = False, exclude_ops: tuple[str, ...] = ()) -> FeatureIndex:
    """Return a FeatureIndex of every clip of `split` in the (fused) feature dirs.

    A shard that fails the scan is skipped, logged and counted in `bad_shards`; past
    `max_bad_fraction` of the shards the ShardError is raised (as load_feature_table does).
    Clips made by an op in `exclude_ops` are left out (data.exclude_ops).
    `reuse=True` returns the previous reuse=True index when it was built from the same
    arguments and every shard still has its size and mtime (the seeds of one run share it).
    """
    global _LAST
    dirs = [Path(d) for d in dirs]
    names = names if names is not None else common_shards(dirs, split)
    key = (tuple(dirs), tuple(names), frames, max_bad_fraction, tuple(exclude_ops), _stamps(dirs, names))
    if reuse and _LAST is not None and _LAST[0] == key:
        log.info("%s: reusing the index of %d '%s' clips", dirs[0], len(_LAST[1].keys), split)
        return _LAST[1]
    builder, bad_shards = _IndexBuilder(dirs, frames, tuple(exclude_ops)), []
    for name in names:
        try:
            builder.add(name, *scan_fused_shard(dirs, name, frames))
        except ShardError as exc:
            log.warning("skipping bad feature shard %s: %s", name, exc)
            bad_shards.append({"shard": name, "reason": str(exc)})
            if len(bad_shards) > max_bad_fraction * len(names):
                raise
    if not builder.clips:
        left_out = f" ({builder.excluded} left out by data.exclude_ops)" if builder.excluded else ""
        raise TrainingError(f"{dirs[0]}: no usable '{split}' clips{left_out}")
    index = builder.finish(bad_shards)
    if reuse:
        _LAST = (key, index)
    return index


def _stamps(dirs: list[Path], names: list[str]) -> tuple | None:
    """Return every shard's (size, mtime), or None when one cannot be read (the scan says why)."""
    try:
        return tuple(stamp(d / name) for d in dirs for name in names)
    except OSError:
        return None


def grid_memory(dirs: Iterable[str | Path], cfg: DataConfig, steps: int = 3, seed: int = 0,
                in_memory: bool = False) -> dict:
    """Return the traced peak memory of grid-sampled training's data side: load the split, build
    the sampler, draw `steps` batches. tracemalloc counts Python and numpy allocations, not torch,
    so 1x and 10x the data compare exactly but for one thing the data do not decide: the
    interpreter's table of interned strings (pathlib interns every part of every path) is
    rebuilt after a set number of insertions, at a size set by the whole process (one rebuild
    measured 7.7 MB), inside whichever pass reaches that number. Rebuilds are thousands of
    passes apart, so the work is traced twice and the smaller peak is the figure.

    `in_memory=True` measures load_feature_table (the whole split in memory) instead of the
    index. Returns {"loader", "clips", "peak_bytes", "index_bytes", "batch"}.
    """
    import tracemalloc

    from intervox.training.data import GridSampler, load_feature_table

    loader = load_feature_table if in_memory else index_feature_table
    peaks = []
    for _ in range(2):
        tracemalloc.start()
        try:
            table = loader([Path(d) for d in dirs], cfg.split, cfg.frames)
            sampler = GridSampler(table, cfg, seed)
            sizes = [len(sampler.batch(k).keys) for k in range(steps)]
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return {"loader": loader.__name__, "clips": len(table.keys), "peak_bytes": min(peaks),
            "index_bytes": table.nbytes if isinstance(table, FeatureIndex) else None, "batch": sizes}
