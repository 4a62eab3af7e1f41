"""Synthetic feature shards with known structure: for tests, demos and timing the trainer.

Every clip of speaker k saying content j has pooled features, per layer l,
`w_s(l) s_k A_l + w_c(l) c_j B_l + noise`: latent speaker and content vectors mixed into
the hidden size by per-upstream, per-layer random maps, speaker-heavy in early layers and
content-heavy in late ones (as measured for Whisper). Train is a dense grid cut into
contrastive blocks; validation uses new speakers and new contents. With `frames`, clips
carry frame features and every clip of a non-first speaker is marked as a timing-preserving
speaker intervention of the first speaker's clip with the same content.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from intervox.shards.write import write_shard


def _layer_maps(rng: np.random.Generator, layers: int, latent: int, hidden: int) -> np.ndarray:
    return rng.standard_normal((layers, latent, hidden)).astype(np.float32) / np.sqrt(latent)


def write_synthetic_features(out_dirs: str | Path | list[str | Path], *, speakers: int = 16,
                             contents: int = 16, layers: int = 6, hidden: int | list[int] = 64,
                             latent: int = 16,
                             block_speakers: int = 4, block_contents: int = 8, blocks_per_shard: int = 2,
                             val_speakers: int = 8, val_contents: int = 8, noise: float = 0.3,
                             frames: int = 0, seed: int = 0) -> dict:
    """Write train + validation feature shards (one dir per upstream: fusion) and return a summary.

    `hidden` may be a list (one per out dir). Keys are equal across dirs.
    """
    dirs = [Path(d) for d in (out_dirs if isinstance(out_dirs, list) else [out_dirs])]
    hiddens = hidden if isinstance(hidden, list) else [hidden] * len(dirs)
    rng = np.random.default_rng([seed, 0])
    maps = [(_layer_maps(rng, layers + 1, latent, h), _layer_maps(rng, layers + 1, latent, h))
            for h in hiddens]
    frame_maps = [rng.standard_normal((latent, h)).astype(np.float32) / np.sqrt(latent) for h in hiddens]
    w_s = np.linspace(1.0, 0.3, layers + 1, dtype=np.float32)
    w_c = np.linspace(0.3, 1.0, layers + 1, dtype=np.float32)
    summary = {"dirs": [str(d) for d in dirs], "splits": {}}
    for split, n_spk, n_con in (("train", speakers, contents), ("validation", val_speakers, val_contents)):
        srng = np.random.default_rng([seed, 1 if split == "train" else 2])
        spk_vec = srng.standard_normal((n_spk, latent)).astype(np.float32)
        con_vec = srng.standard_normal((n_con, latent)).astype(np.float32)
        con_frames = srng.standard_normal((n_con, max(frames, 1), latent)).astype(np.float32)
        clips = _grid_clips(n_spk, n_con, min(block_speakers, n_spk), min(block_contents, n_con))
        per_shard = min(block_speakers, n_spk) * min(block_contents, n_con) * blocks_per_shard
        shards = [clips[i:i + per_shard] for i in range(0, len(clips), per_shard)]
        keys = {(k, j): f"{split}-{si:06d}-{ci:06d}"
                for si, shard in enumerate(shards) for ci, (k, j, _) in enumerate(shard)}
        for u, d in enumerate(dirs):
            a, b = maps[u]
            for si, shard in enumerate(shards):
                samples = []
                for k, j, block in shard:
                    crng = np.random.default_rng([seed, 3, u, zlib.crc32(keys[(k, j)].encode())])
                    pooled = (w_s[:, None] * (spk_vec[k] @ a) + w_c[:, None] * (con_vec[j] @ b)
                              + noise * crng.standard_normal((layers + 1, hiddens[u])))
                    sample = _sample(keys, split, k, j, block, pooled, frames,
                                     {"name": f"synthetic{u}", "layers": layers, "hidden": hiddens[u]})
                    if frames:
                        fr = (con_frames[j] + 0.5 * spk_vec[k]) @ frame_maps[u]
                        fr = fr + noise * crng.standard_normal(fr.shape)
                        sample["frames.npy"] = _npy(fr[None].astype(np.float16))
                    samples.append(sample)
                write_shard(d / f"{split}-{si:06d}.tar", samples, plan_hash="synthetic")
        summary["splits"][split] = {"clips": len(clips), "shards": len(shards), "speakers": n_spk,
                                    "contents": n_con}
    return summary


def _grid_clips(n_spk: int, n_con: int, bs: int, bc: int) -> list[tuple[int, int, int]]:
    """Return every (speaker, content, block) of the grid, whole bs x bc blocks first (block -1: the rest)."""
    n_bc = n_con // bc
    clips = []
    for k in range(n_spk):
        for j in range(n_con):
            block = (k // bs) * n_bc + j // bc if (j // bc) < n_bc and (k // bs) < n_spk // bs else -1
            clips.append((k, j, block))
    clips.sort(key=lambda c: (c[2] < 0, c[2], c[0], c[1]))
    return clips


def _sample(keys: dict, split: str, k: int, j: int, block: int, pooled: np.ndarray, frames: int,
            upstream: dict) -> dict:
    """Return clip (k, j)'s sample; with frames, each speaker but 0 says a timing-preserving copy of 0's."""
    intervened = frames > 0 and k > 0
    meta = {"key": keys[(k, j)], "speaker": f"spk{split[0]}{k:04d}",
            "content": f"con{split[0]}{j:04d}", "channel": "clean", "split": split,
            "block": int(block), "source_key": keys[(0, j)] if intervened else None,
            "op": ({"name": "praat_gender", "target": "speaker", "keeps_timing": True}
                   if intervened else None),
            "upstream": upstream}
    return {"__key__": keys[(k, j)], "json": meta, "pooled.npy": _npy(pooled.astype(np.float16))}


def _npy(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
