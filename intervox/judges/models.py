"""Locating and loading the judges' offline models: Whisper (CTranslate2) and Resemblyzer.

Everything comes from pip packages on local disk (located by `intervox.assets`, the same
verified copies the feature stage uses); nothing here ever downloads. Loaded models are
cached per process, so a Dask worker pays the load cost once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from intervox import assets
from intervox.errors import ConfigError, UpstreamError

ASR_MODELS = ("whisper-tiny.en", "whisper-base")
ENGLISH_ONLY = {"whisper-tiny.en"}


def audio_digest(audio: np.ndarray, sr: int) -> str:
    """Return a short hash of a clip's samples (as float32) and rate: the judges' cache key."""
    return hashlib.blake2b(np.ascontiguousarray(audio, dtype=np.float32).tobytes() + str(sr).encode(),
                           digest_size=16).hexdigest()


class ClipCache:
    """A thread-safe LRU of per-clip judge results (one source clip is scored against every edit).

    Dask workers may score clips from several threads, hence the lock; the oldest entry goes
    once `size` is passed.
    """

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """Return the cached value of `key` (marking it recent), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Hashable]:
        with self._lock:
            return iter(list(self._items))


def whisper_model_dir(name: str) -> Path:
    """Return the local CTranslate2 directory of Whisper `name` ("whisper-tiny.en" | "whisper-base").

    The same verified copy the feature stage uses (intervox.assets); raises ConfigError for an
    unknown name, UpstreamError when the packages are missing.
    """
    if name == "whisper-tiny.en":
        return assets.whisper_tiny_en_dir()
    if name == "whisper-base":
        return assets.whisper_base_dir()
    raise ConfigError(f"asr_model {name!r} is not one of {list(ASR_MODELS)}")


def asr_model_for(name: str, language: str) -> str:
    """Return the ASR model to use for `language`: English-only models fall back to whisper-base."""
    if name in ENGLISH_ONLY and not language.lower().startswith("en"):
        return "whisper-base"
    return name


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the block with BLAS/OpenMP pools and torch on one thread, then restore them.

    Multi-threaded reductions sum in another order, so Whisper's log-mel features and Resemblyzer's
    embeddings changed in their last bits with the thread count, enough to flip Whisper's beam on a
    near tie ("sun" vs "sound"): QC scores, and so the shards QC decides, must not depend on how many
    cores a worker has. Sets torch's process-wide thread count: fine for Dask workers, which run
    one task per process (threads_per_worker=1).
    """
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(n)


@functools.lru_cache(maxsize=4)
def load_asr(name: str, cpu_threads: int = 1) -> Any:
    """Return a cached faster-whisper `WhisperModel` for `name` on CPU, int8 (never downloads)."""
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise UpstreamError("faster-whisper is not installed: pip install 'intervox[judges]'") from exc
    # faster-whisper logs one INFO line per transcribed clip; QC transcribes thousands.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    path = whisper_model_dir(name)
    try:
        return WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=cpu_threads,
                            local_files_only=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise UpstreamError(f"{name}: cannot load Whisper from {path} ({exc})") from exc


def resemblyzer_weights() -> Path:
    """Return the path of Resemblyzer's `pretrained.pt` (inside the pip package)."""
    return assets.dist_file("resemblyzer", "pretrained.pt")


@functools.lru_cache(maxsize=1)
def load_voice_encoder() -> Any:
    """Return a cached Resemblyzer `VoiceEncoder` on CPU."""
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise UpstreamError(
            "resemblyzer is not importable: pip install 'intervox[judges]' (needs setuptools < 81)"
        ) from exc
    return VoiceEncoder(device="cpu", verbose=False, weights_fpath=resemblyzer_weights())
