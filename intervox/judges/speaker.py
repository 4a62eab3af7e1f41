"""Speaker judge: Resemblyzer d-vectors (GE2E, 256-d) and their cosine similarities.

A speaker op must move a clip's embedding away from its source; content and channel ops
must not. Embeddings of recently seen audio are cached, because one source clip is
compared against every edit made from it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from intervox.audio import check_audio, resample
from intervox.errors import AudioError
from intervox.judges.models import load_voice_encoder, single_threaded

ENCODER_SR = 16000  # Resemblyzer's hparams.sampling_rate
_EMBEDDINGS: OrderedDict[str, np.ndarray] = OrderedDict()
_MAX_CACHED = 2048
_CACHE_LOCK = threading.Lock()  # Dask workers may score clips from several threads


def embed(audio: np.ndarray, sr: int) -> np.ndarray:
    """Return the L2-normalised 256-d Resemblyzer embedding of `audio` (cached by content)."""
    from resemblyzer import preprocess_wav

    audio = check_audio(audio, sr, "speaker judge input")
    key = hashlib.blake2b(audio.tobytes() + str(sr).encode(), digest_size=16).hexdigest()
    with _CACHE_LOCK:
        if key in _EMBEDDINGS:
            _EMBEDDINGS.move_to_end(key)
            return _EMBEDDINGS[key]
    # Resample with soxr here: preprocess_wav would use librosa's (slower, numba JIT on first call).
    wav = preprocess_wav(resample(audio, sr, ENCODER_SR))  # volume-normalise, trim long silences
    if wav.size < ENCODER_SR // 10:
        raise AudioError(f"speaker judge: only {wav.size / ENCODER_SR:.2f} s of voiced audio after VAD trim")
    encoder = load_voice_encoder()
    with single_threaded():  # same embedding bits on any core count (byte-reproducible QC)
        e = np.asarray(encoder.embed_utterance(wav), dtype=np.float32)
    e = e / max(float(np.linalg.norm(e)), 1e-12)
    with _CACHE_LOCK:
        _EMBEDDINGS[key] = e
        if len(_EMBEDDINGS) > _MAX_CACHED:
            _EMBEDDINGS.popitem(last=False)
    return e


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Return the cosine similarity of two vectors."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / max(na * nb, 1e-12))


def mean_similarity(e: np.ndarray, refs: Sequence[np.ndarray]) -> float | None:
    """Return the mean cosine of `e` to reference embeddings, or None when there are none."""
    if not len(refs):
        return None
    return float(np.mean([cosine(e, r) for r in refs]))
