"""Pooled features of loose clips (a folder corpus's utterances), cached by audio hash.

The feature stage reads audio shards; real recordings that are no shard set (the dev panel,
the KTuberling cohort) go through here instead, pooled exactly as the feature stage pools.
`eval --real` scores panels with it and training reads its cohort of real clips with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from intervox.corpora.manifest import Utterance
from intervox.errors import AudioError

log = logging.getLogger(__name__)
BATCH_SECONDS = 60.0  # audio per upstream forward when pooling loose clips


def clip_hash(utt: Utterance, base: Path) -> str:
    """Return a hash of the clip's audio file bytes and its offset/duration (the cache key)."""
    h = hashlib.blake2b(digest_size=16)
    path = utt.resolve_audio(base)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the audio of {utt.id} ({exc.strerror or exc})") from exc
    h.update(f"|{utt.offset}|{utt.duration}".encode())
    return h.hexdigest()


def load_clip(utt: Utterance, base: Path, sr: int) -> np.ndarray:
    """Return the clip's audio as mono float32 at `sr`."""
    from intervox.audio import load_audio

    duration = utt.duration if utt.offset else None
    return load_audio(utt.resolve_audio(base), sr, offset=utt.offset, duration=duration)[0]


def cached(rows: np.ndarray, hashes: Sequence[str], path: Path,
           compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
    """Return one array row per clip in `rows`, computing only clips whose hash is not in `path` (.npz)."""
    store: dict[str, np.ndarray] = {}
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                store = dict(zip(z["hashes"].tolist(), z["values"], strict=True))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable cache (%s); recomputing", path, exc)
    todo = [int(i) for i in rows if hashes[i] not in store]
    if todo:
        for i, v in zip(todo, compute(todo), strict=True):
            store[hashes[i]] = v
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # two evals of one run never share it
        np.savez(tmp, hashes=np.array(list(store)), values=np.stack(list(store.values())))
        tmp.replace(path)
    return np.stack([store[hashes[i]] for i in rows])


def feature_dir_padded(feature_dir: Path) -> bool:
    """Return whether a feature dir was extracted with Whisper's padded 30 s input (its index.json says)."""
    try:
        index = json.loads((Path(feature_dir) / "index.json").read_text())
        return bool(index.get("upstream", {}).get("padded", False))
    except (OSError, ValueError, AttributeError):
        return False  # features gone or moved: the default (unpadded) input


def pooled_cache_name(upstream_name: str, padded: bool) -> str:
    """Return the cache file name of an upstream's pooled features (a merged model: keyed by its weights)."""
    safe = upstream_name.replace("/", "_").replace(":", "_") + ("-padded" if padded else "")
    if upstream_name.startswith("finetuned:"):  # a re-merged model keeps its name: key by its weights
        from intervox.features.base import cached_weights_sha256
        from intervox.features.finetuned import merged_path

        safe += "-" + cached_weights_sha256([merged_path(upstream_name)])[:12]
    return f"pooled-{safe}.npz"


def pooled_utterances(utts: Sequence[Utterance], base: Path, rows: np.ndarray, hashes: Sequence[str],
                      upstream_name: str, cache: Path, batch_seconds: float = BATCH_SECONDS,
                      padded: bool = False) -> np.ndarray:
    """Return pooled [N, layers + 1, hidden] float16 of `rows` of `utts`, cached in `cache` (.npz)."""
    from intervox.features.extract import featurize, load_upstream

    def compute(todo: list[int]) -> np.ndarray:
        upstream = load_upstream(upstream_name, "cpu", padded)
        audios = [load_clip(utts[i], base, upstream.sample_rate) for i in todo]
        return np.stack([p for p, _ in featurize(upstream, audios, (), batch_seconds)])

    return cached(rows, hashes, cache, compute)
