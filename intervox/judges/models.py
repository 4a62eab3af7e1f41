"""Locating and loading the judges' offline models: Whisper (CTranslate2) and Resemblyzer.

Everything comes from pip packages on local disk (located by `intervox.assets`, the same
verified copies the feature stage uses); nothing here ever downloads. Loaded models are
cached per process, so a Dask worker pays the load cost once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from intervox import assets
from intervox.errors import ConfigError, UpstreamError

ASR_MODELS = ("whisper-tiny.en", "whisper-base")
ENGLISH_ONLY = {"whisper-tiny.en"}


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
