"""Contrastive batches from feature shards: a grid sampler and a block stream.

`grid` (default): draw S speakers x T contents per step from the whole split (a full sub-grid
when the data hold one, else the densest groups they allow), keeping only clips with a
positive for both factors. The draw is a pure function of (seed, rank, step): resuming needs
only the step. Training draws from a FeatureIndex (feature_index.py: labels in memory, each
batch's features read from the shards, so memory does not grow with the split); a
FeatureTable holds a (small) split in memory and gives the same batches.
`blocks`: stream shards through webdataset-style stages (seeded shard shuffle, split_by_node,
split_by_worker, a shuffle buffer that moves whole contrastive blocks, batches of whole
blocks, `with_epoch` over resampled shards under DDP).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import zip_longest
from pathlib import Path

import numpy as np
import torch

from intervox.errors import ShardError, TrainingError
from intervox.shards.index import read_index
from intervox.shards.read import StreamStats, decode_sample, iter_tar_samples, list_shards, shard_pipeline
from intervox.training.config import DataConfig
from intervox.training.model import InputSpec

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One training batch: pooled features per upstream, label ids, keys, positives counts."""

    pooled: list[torch.Tensor]  # per upstream [B, layers + 1, hidden] float32
    speaker: torch.Tensor  # int64 [B]
    content: torch.Tensor
    keys: list[str]
    shards: list[str]
    frame_source: torch.Tensor | None = None  # [P, F, hidden] frames of source clips
    frame_copy: torch.Tensor | None = None  # the same frames of their speaker-intervened copies
    positives: dict[str, int] = field(default_factory=dict)  # anchors with >= 1 positive, per factor


def anchors_with_positives(labels: np.ndarray) -> int:
    """Return how many rows share their label with at least one other row."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return int((counts[inverse] > 1).sum())


def split_shards(directory: str | Path, split: str) -> list[str]:
    """Return the names of the `{split}-NNNNNN.tar` shards of a feature dir, sorted."""
    return [p.name for p in list_shards(directory) if p.name.startswith(f"{split}-")]


def common_shards(dirs: Iterable[str | Path], split: str) -> list[str]:
    """Return the shard names of `split`, checking fused feature dirs hold the same shards."""
    dirs = [Path(d) for d in dirs]
    names = split_shards(dirs[0], split)
    if not names:
        raise TrainingError(f"{dirs[0]}: no '{split}-*.tar' feature shards")
    for d in dirs[1:]:
        other = split_shards(d, split)
        if other != names:
            raise TrainingError(f"fused feature dirs {dirs[0]} and {d} hold different '{split}' shards")
    return names


def iter_fused_shard(dirs: list[Path], name: str, frames: bool = False) -> Iterator[dict]:
    """Yield the samples of shard `name` of every dir, joined by key, as they are read.

    Each sample: {"key", "shard", "meta", "pooled": [array per dir], "frames": array | None}.
    Raises ShardError when the dirs disagree on keys or a member is missing.
    """
    wanted = {"json", "pooled.npy"} | ({"frames.npy"} if frames else set())
    streams = [iter_tar_samples(d / name) for d in dirs]
    for raw in zip_longest(*streams):
        if any(p is None for p in raw):
            raise ShardError(f"{name}: fused feature dirs hold different numbers of clips")
        parts = [decode_sample({k: v for k, v in p.items() if k.startswith("__") or k in wanted})
                 for p in raw]
        key = parts[0]["__key__"]
        if any(p["__key__"] != key for p in parts):
            raise ShardError(f"{name}: fused feature dirs disagree on keys near {key}")
        for p in parts:
            if "json" not in p or "pooled.npy" not in p:
                raise ShardError(f"{p['__shard__']}:{key}: missing json or pooled.npy")
        yield {"key": key, "shard": str(dirs[0] / name), "meta": parts[0]["json"],
               "upstreams": [p["json"].get("upstream") for p in parts],
               "pooled": [p["pooled.npy"] for p in parts], "frames": parts[0].get("frames.npy")}


def iter_fused_samples(dirs: list[Path], names: Iterable[str], frames: bool = False,
                       max_bad_fraction: float = 0.0, total: int | None = None,
                       bad_shards: list[dict] | None = None) -> Iterator[dict]:
    """Yield joined samples shard by shard, skipping bad shards (raise past the allowed fraction).

    Each skipped shard is logged and, when `bad_shards` is given, appended to it as
    {"shard", "reason"} so the run's summary can count it.
    """
    names = list(names)
    stats = StreamStats()
    allowed = max_bad_fraction * (total or len(names)) / max(len(names), 1)  # the pipeline counts `names`
    try:
        if names:
            yield from shard_pipeline(names, read=partial(iter_fused_shard, dirs, frames=frames), stats=stats,
                                      max_bad_fraction=allowed, split=False)
    finally:
        if bad_shards is not None:
            bad_shards.extend({"shard": s, "reason": r} for s, r in stats.bad_shards)


def input_specs(sample: dict) -> list[InputSpec]:
    """Return the InputSpec of every upstream from one joined sample."""
    return specs_of(list(sample["upstreams"]), [p.shape for p in sample["pooled"]],
                    f"{sample['shard']}:{sample['key']}")


def specs_of(upstreams: list, shapes: list[tuple[int, ...]], where: str) -> list[InputSpec]:
    """Return the InputSpec of every upstream from its clip JSON "upstream" and its pooled shape."""
    specs = []
    for i, (upstream, shape) in enumerate(zip(upstreams, shapes, strict=True)):
        name = upstream.get("name") if isinstance(upstream, dict) else upstream
        if len(shape) != 2:
            raise TrainingError(f"{where}: pooled.npy must be [layers + 1, hidden], got {list(shape)}")
        specs.append(InputSpec(str(name or f"upstream{i}"), *shape))
    return specs


def is_frame_pair_copy(meta: dict) -> bool:
    """Return whether a clip is a timing-preserving op copy of another (the frame loss pairs the two)."""
    op = meta.get("op") or {}
    return bool(op.get("keeps_timing")) and meta.get("source_key") not in (None, "")


def made_by_excluded_op(meta: dict, exclude_ops: tuple[str, ...]) -> bool:
    """Return whether a clip was made by one of the ops `data.exclude_ops` leaves out."""
    return bool(exclude_ops) and (meta.get("op") or {}).get("name") in exclude_ops


def no_frame_pairs_error(data_dir: str | Path, split: str, where: str) -> TrainingError:
    """Return the error for a frame loss that would silently add nothing: no copy to pair frames with."""
    return TrainingError(f"{data_dir}: loss.frame_content_weight > 0, but no '{split}' {where} has a "
                         "timing-preserving copy (praat_gender) to pair frames with: build the shards with "
                         "one in train (configs/shards/default.yaml), or set loss.frame_content_weight=0")


@dataclass
class FeatureTable:
    """A split held in memory: pooled arrays per upstream and integer factor labels."""

    keys: list[str]
    shards: list[str]
    pooled: list[np.ndarray]  # per upstream [N, layers + 1, hidden] float16
    speaker: np.ndarray  # int ids into `speakers`
    content: np.ndarray
    speakers: list[str]
    contents: list[str]
    block: np.ndarray
    inputs: list[InputSpec]
    frames: dict[int, np.ndarray]  # clip index -> frames [n_selected, F, hidden]
    pairs: np.ndarray  # [P, 2] (source index, timing-preserving intervened copy index)
    bad_shards: list[dict] = field(default_factory=list)  # shards skipped as corrupt: {"shard", "reason"}

    # What a sampler reads of a table; feature_index.FeatureIndex answers the same from the shards.
    def clip_keys(self, idx: np.ndarray) -> list[str]:
        return [self.keys[i] for i in idx]

    def clip_shards(self, idx: np.ndarray) -> list[str]:
        return [self.shards[i] for i in idx]

    def pooled_rows(self, idx: np.ndarray) -> list[np.ndarray]:
        """Return per upstream the pooled features [len(idx), layers + 1, hidden] of clips `idx`."""
        return [p[idx] for p in self.pooled]

    def clip_frames(self, idx: np.ndarray) -> list[np.ndarray]:
        return [self.frames[i] for i in idx]


def load_feature_table(dirs: Iterable[str | Path], split: str = "train", frames: bool = False,
                       names: list[str] | None = None, max_bad_fraction: float = 0.0) -> FeatureTable:
    """Return a FeatureTable of every clip of `split` in the (fused) feature dirs."""
    dirs = [Path(d) for d in dirs]
    names = names if names is not None else common_shards(dirs, split)
    bad_shards: list[dict] = []
    samples = list(iter_fused_samples(dirs, names, frames, max_bad_fraction, len(names), bad_shards))
    if not samples:
        raise TrainingError(f"{dirs[0]}: no usable '{split}' clips")
    speakers = sorted({s["meta"]["speaker"] for s in samples})
    contents = sorted({s["meta"]["content"] for s in samples})
    sid, cid = {v: i for i, v in enumerate(speakers)}, {v: i for i, v in enumerate(contents)}
    keys = [s["key"] for s in samples]
    index = {k: i for i, k in enumerate(keys)}
    frame_map = {i: s["frames"] for i, s in enumerate(samples) if s["frames"] is not None}
    pairs = [(index[s["meta"]["source_key"]], i) for i, s in enumerate(samples)
             if is_frame_pair_copy(s["meta"]) and s["meta"]["source_key"] in index
             and i in frame_map and index[s["meta"]["source_key"]] in frame_map]
    return FeatureTable(
        keys=keys, shards=[s["shard"] for s in samples],
        pooled=[np.stack([s["pooled"][u] for s in samples]) for u in range(len(dirs))],
        speaker=np.array([sid[s["meta"]["speaker"]] for s in samples]),
        content=np.array([cid[s["meta"]["content"]] for s in samples]),
        speakers=speakers, contents=contents,
        block=np.array([int(s["meta"].get("block", -1)) for s in samples]),
        inputs=input_specs(samples[0]), frames=frame_map,
        pairs=np.array(pairs, dtype=np.int64).reshape(-1, 2), bad_shards=bad_shards)


def stored_frame_layers(feature_dir: str | Path) -> list | None:
    """Return the layers KEY.frames.npy holds, in slot order, as index.json records them (None: no record)."""
    try:
        stored = read_index(feature_dir).get("features", {}).get("frames_layers")
    except ShardError:
        return None
    return stored if isinstance(stored, list) else None


def frame_slot(feature_dir: str | Path, content_layer: int, frame_layer: int | None) -> int:
    """Return the index into KEY.frames.npy that holds the content subspace's layer.

    The feature dir's index.json records the layers `intervox features --frames-layers`
    stored; the frame loss must see the layer the content view reads. Without that record
    (older or hand-made dirs) `frame_layer` (default 0) is trusted. Raises TrainingError when
    the frames do not hold the content layer or `frame_layer` points at another one.
    """
    stored = stored_frame_layers(feature_dir)
    if stored is None:
        log.warning("%s: index.json does not say which layers KEY.frames.npy holds: the frame loss uses "
                    "slot %d and assumes it is layer %d", feature_dir, frame_layer or 0, content_layer)
        return frame_layer or 0
    if content_layer not in stored:
        held = f"frames of layers {stored}" if stored else "no frames"
        raise TrainingError(f"{feature_dir}: the frame-level content loss needs frames of layer "
                            f"{content_layer} (the content subspace's layer) but the dir holds {held}; "
                            f"re-run `intervox features ... --frames-layers {content_layer}`")
    slot = stored.index(content_layer)
    if frame_layer is not None and frame_layer != slot:
        raise TrainingError(f"loss.frame_layer={frame_layer} selects frames of layer "
                            f"{stored[frame_layer] if 0 <= frame_layer < len(stored) else '?'} "
                            f"(stored: {stored}) but the content subspace reads layer {content_layer}: "
                            f"set loss.frame_layer={slot} or leave it unset")
    return slot


def frame_layers_for_sum(feature_dir: str | Path, rows: list[int]) -> list[int]:
    """Return the layers KEY.frames.npy holds (slot order) when they include every row of a layer sum.

    The frame loss on a content view that sums rows needs each row's frames. Raises TrainingError
    when the feature dir does not record its frame layers or lacks one of `rows`.
    """
    stored = stored_frame_layers(feature_dir)
    if stored is None:
        raise TrainingError(f"{feature_dir}: index.json does not say which layers KEY.frames.npy holds; "
                            "the frame loss on a sum of rows needs that record")
    if any(r not in stored for r in rows):
        wanted = ",".join(map(str, rows))
        raise TrainingError(f"{feature_dir}: the frame-level content loss on the content subspace's sum of "
                            f"rows {rows} needs frames of every row, but the dir holds frames of layers "
                            f"{stored}; re-run `intervox features ... --frames-layers {wanted}`")
    return stored


def sample_frame_pairs(frames: list[np.ndarray], copies: list[np.ndarray], n_frames: int, layer: int | None,
                       rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return source and copy frames at the same random time positions: [P, F, hidden] of slot
    `layer`, or with `layer` None [P, F, slots, hidden] of every stored layer."""
    src, cpy = [], []
    for a, b in zip(frames, copies, strict=False):
        if layer is not None and layer >= a.shape[0]:
            raise TrainingError(f"KEY.frames.npy holds {a.shape[0]} layer(s): frame slot {layer} "
                                "(loss.frame_layer) does not exist")
        length = min(a.shape[1], b.shape[1])
        t = np.sort(rng.choice(length, size=min(n_frames, length), replace=length < n_frames))
        if layer is None:
            src.append(a[:, t].swapaxes(0, 1).astype(np.float32))
            cpy.append(b[:, t].swapaxes(0, 1).astype(np.float32))
        else:
            src.append(a[layer, t].astype(np.float32))
            cpy.append(b[layer, t].astype(np.float32))
    return torch.from_numpy(np.stack(src)), torch.from_numpy(np.stack(cpy))


def speaker_families(speakers: list[str]) -> np.ndarray:
    """Return a family id per speaker label: its base voice, the label before '~'.

    A derived voice (`base~op...`) says the sentences of its base, so the two must land on
    one rank under DDP or the content positives between them are lost.
    """
    bases = sorted({s.split("~", 1)[0] for s in speakers})
    index = {b: i for i, b in enumerate(bases)}
    return np.array([index[s.split("~", 1)[0]] for s in speakers], dtype=np.int64)


def rank_speakers(speakers: list[str], per_batch: int, rank: int, world: int) -> np.ndarray:
    """Return the speaker ids of `rank`: whole families dealt round-robin, or all when too few."""
    everyone = np.arange(len(speakers))
    if world == 1:
        return everyone
    family = speaker_families(speakers)
    mine = [everyone[family % world == r] for r in range(world)]
    if min(len(m) for m in mine) >= per_batch:
        return mine[rank]
    log.warning("%d speakers in %d families cannot give %d ranks %d speakers each: ranks share speakers",
                len(speakers), int(family.max()) + 1, world, per_batch)
    return everyone


def keep_with_positives(speaker: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Return a mask of the rows that keep a positive for both factors once rows without are dropped."""
    keep = np.ones(len(speaker), dtype=bool)
    while True:
        ok = keep.copy()
        for labels in (speaker, content):
            _, inverse, counts = np.unique(labels[keep], return_inverse=True, return_counts=True)
            ok[np.flatnonzero(keep)[counts[inverse] < 2]] = False
        if np.array_equal(ok, keep):
            return keep
        keep = ok


def _by_coverage(order: np.ndarray, cover: np.ndarray, least: int) -> np.ndarray:
    """Return the contents of `order` covered at least `least` times, most covered first (stable)."""
    cand = order[cover[order] >= least]
    return cand[np.argsort(-cover[cand], kind="stable")]


def dense_subgrid(has: np.ndarray, order: np.ndarray, s: int, t: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Return (rows, contents) of a full s x t sub-grid of `has` [speakers, contents], or None.

    Greedy over contents in `order`: a content joins when at least s speakers still say every
    content chosen so far; s of those speakers are then drawn at random.
    """
    alive = np.ones(has.shape[0], dtype=bool)
    chosen = []
    for c in order[has[:, order].sum(0) >= s]:
        nxt = alive & has[:, c]
        if nxt.sum() >= s:
            alive, chosen = nxt, [*chosen, c]
            if len(chosen) == t:
                return np.sort(rng.choice(np.flatnonzero(alive), size=s, replace=False)), np.array(chosen)
    return None


def grouped_grid(has: np.ndarray, order: np.ndarray, s: int, t: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (rows, contents) for data without a full s x t sub-grid: groups of speakers.

    Each group is the not-yet-chosen speakers of a seed content (a base voice and its
    derived voices on a corpus whose speakers share no sentences), with a share of the t
    contents proportional to its size, chosen among those most of the group said.
    """
    in_batch = np.zeros(has.shape[0], dtype=bool)
    used = np.zeros(has.shape[1], dtype=bool)
    chosen: list[int] = []
    for seed in order:
        room = s - int(in_batch.sum())
        if room < 2 or len(chosen) >= t:
            break
        new = np.flatnonzero(has[:, seed] & ~in_batch)
        if used[seed] or len(new) < 2:
            continue
        group = np.sort(rng.choice(new, size=room, replace=False)) if len(new) > room else new
        cover = has[group].sum(0) * ~used
        quota = min(max(2, round(t * len(group) / s)), t - len(chosen))
        take = _by_coverage(order, cover, 2)[:quota]
        if len(take) < 2:  # one content gives the group no speaker positives
            continue
        in_batch[group], used[take] = True, True
        chosen += take.tolist()
    if chosen and len(chosen) < t:  # spare content slots: more sentences the batch's speakers share
        cover = has[in_batch].sum(0) * ~used
        chosen += _by_coverage(order, cover, 2)[: t - len(chosen)].tolist()
    return np.flatnonzero(in_batch), np.array(chosen, dtype=np.int64)


def refine_grid(has: np.ndarray, order: np.ndarray, rows: np.ndarray, contents: np.ndarray, s: int, t: int,
                rng: np.random.Generator, rounds: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Return the densest of (rows, contents) and a few alternations: the s speakers who say most
    of the contents, then the t contents most of those speakers say (ties broken at random).

    On a sparse grid (each sentence said by a few random voices) this raises the mean batch from
    180 to 209 clips (40 voices x 3 identities, 512 sentences, 4 voices each; 16 x 32 batches).
    """
    best = (int(has[np.ix_(rows, contents)].sum()), rows, contents)
    for _ in range(rounds):
        perm = rng.permutation(has.shape[0])
        said = has[:, contents].sum(1)
        rows = np.sort(perm[np.argsort(-said[perm], kind="stable")][:s])
        contents = _by_coverage(order, has[rows].sum(0), 2)[:t]
        cells = int(has[np.ix_(rows, contents)].sum())
        if cells > best[0]:
            best = (cells, rows, contents)
    return best[1], best[2]


class GridSampler:
    """Draw batches of S speakers x T contents from a FeatureTable; batch k depends on (seed, rank, k).

    Each step first looks for a full S x T sub-grid (contents said by many speakers first,
    then S speakers who say all of them); data without one (speakers who share no
    sentences) gets groups of speakers with their shared sentences instead. Clips left
    without a speaker or a content positive are dropped, so every anchor has both.
    Under DDP each rank draws from its own families of speakers (a base voice and its
    derived voices) when each rank still gets S of them; otherwise ranks share the table.
    """

    def __init__(self, table: FeatureTable, cfg: DataConfig, seed: int, rank: int = 0, world: int = 1,
                 frame_pairs: int = 0, frames_per_pair: int = 0, frame_layer: int | None = 0) -> None:
        self.table, self.cfg, self.seed, self.rank = table, cfg, seed, rank
        n_spk, n_con = len(table.speakers), len(table.contents)
        self.my_speakers = rank_speakers(table.speakers, cfg.speakers_per_batch, rank, world)
        # clips of each (speaker, content) cell: a run of `by_cell`, found by binary search (a dict of
        # one array per cell costs ~150 bytes a cell: as much as the compact index of a clip)
        self.by_cell = np.lexsort((table.content, table.speaker))
        codes = table.speaker[self.by_cell].astype(np.int64) * n_con + table.content[self.by_cell]
        self.cell_codes, self.cell_start, self.cell_size = np.unique(codes, return_index=True,
                                                                     return_counts=True)
        self.has = np.zeros((n_spk, n_con), dtype=bool)
        self.has[table.speaker, table.content] = True
        self.mine = self.has[self.my_speakers]  # [my speakers, contents]
        self.said_by = self.mine.sum(0)  # how many of my speakers say each content
        self.shape = (min(cfg.speakers_per_batch, len(self.my_speakers)),
                      min(cfg.contents_per_batch, int((self.said_by >= 2).sum())))
        self.frame_pairs, self.frames_per_pair, self.frame_layer = frame_pairs, frames_per_pair, frame_layer
        mine = set(self.my_speakers.tolist())
        self.pairs = np.array([p for p in table.pairs if table.speaker[p[1]] in mine], dtype=np.int64)

    def cell(self, code: int) -> np.ndarray:
        """Return the clip indices of cell `code` (speaker * contents + content), in table order."""
        at = int(np.searchsorted(self.cell_codes, code))
        if at == len(self.cell_codes) or self.cell_codes[at] != code:
            return self.by_cell[:0]
        return self.by_cell[self.cell_start[at]:self.cell_start[at] + self.cell_size[at]]

    def state(self) -> dict:
        """Return the sampler state: nothing beyond the step, which the checkpoint holds."""
        return {"kind": "grid"}

    def restore(self, state: dict) -> None:
        if state.get("kind") != "grid":
            raise TrainingError(f"checkpoint data state {state} is not a grid sampler's")

    def draw(self, step: int) -> tuple[np.ndarray, bool]:
        """Return (clip indices of batch `step`, whether they form a full S x T sub-grid)."""
        rng = np.random.default_rng([self.seed, self.rank, step])
        shuffled = rng.permutation(len(self.said_by))
        order = shuffled[np.argsort(-self.said_by[shuffled], kind="stable")]  # random among equals
        order = order[self.said_by[order] >= 2]
        s, t = self.shape
        grid = None
        if s >= 2 and t >= 2:
            # A random start first: most-covered-first would always start in the same group of a
            # grid of sentence groups (source.sentences_per_voice) and never draw the others'
            # voices. On a dense grid both orders are the same permutation.
            grid = dense_subgrid(self.mine, shuffled[self.said_by[shuffled] >= 2], s, t, rng)
            grid = grid if grid is not None else dense_subgrid(self.mine, order, s, t, rng)
        full = grid is not None
        if grid is None:
            grid = refine_grid(self.mine, order, *grouped_grid(self.mine, order, s, t, rng), s, t, rng)
        rows, contents = grid
        out = []
        n_c = len(self.table.contents)
        for sp in self.my_speakers[rows]:
            for c in np.sort(contents):
                cell = self.cell(int(sp) * n_c + int(c))
                if len(cell):
                    out.append(cell[rng.integers(len(cell))] if len(cell) > 1 else cell[0])
        idx = np.array(out, dtype=np.int64)
        idx = idx[keep_with_positives(self.table.speaker[idx], self.table.content[idx])]
        if not len(idx):
            raise TrainingError(f"no grid batch: among {len(self.my_speakers)} speakers and "
                                f"{len(self.table.contents)} contents no two speakers share two contents "
                                "(every clip would lack a speaker or a content positive)")
        return idx, full

    def indices(self, step: int) -> np.ndarray:
        """Return the clip indices of batch `step`."""
        return self.draw(step)[0]

    def describe(self, steps: int = 16) -> dict:
        """Return what the batches will be, from the first `steps` draws (logged at the start of a run)."""
        sizes, dense = zip(*((len(idx), full) for idx, full in (self.draw(k) for k in range(steps))),
                           strict=True)
        s, t = self.cfg.speakers_per_batch, self.cfg.contents_per_batch
        return {"speakers_per_batch": s, "contents_per_batch": t, "target": s * t,
                "full_grid": all(dense) and self.shape == (s, t),
                "probe_steps": steps, "probe_min": int(min(sizes)), "probe_mean": float(np.mean(sizes)),
                "probe_max": int(max(sizes))}

    def batch(self, step: int) -> Batch:
        """Return batch `step` as tensors."""
        idx = self.indices(step)
        t = self.table
        batch = Batch(pooled=[torch.from_numpy(p.astype(np.float32)) for p in t.pooled_rows(idx)],
                      speaker=torch.from_numpy(t.speaker[idx]), content=torch.from_numpy(t.content[idx]),
                      keys=t.clip_keys(idx), shards=sorted(set(t.clip_shards(idx))),
                      positives={"speaker": anchors_with_positives(t.speaker[idx]),
                                 "content": anchors_with_positives(t.content[idx])})
        if self.frame_pairs and len(self.pairs):
            rng = np.random.default_rng([self.seed, self.rank, step, 1])
            chosen = self.pairs[rng.choice(len(self.pairs), size=min(self.frame_pairs, len(self.pairs)),
                                           replace=False)]
            batch.frame_source, batch.frame_copy = sample_frame_pairs(
                t.clip_frames(chosen[:, 0]), t.clip_frames(chosen[:, 1]),
                self.frames_per_pair, self.frame_layer, rng)
        return batch
