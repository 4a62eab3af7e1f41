"""Speaker judge: Resemblyzer d-vectors (GE2E, 256-d) and their cosine similarities.

A speaker op must move a clip's embedding away from its source; content and channel ops
must not. Embeddings of recently seen audio are cached, because one source clip is
compared against every edit made from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from intervox.audio import check_audio, resample
from intervox.errors import AudioError
from intervox.judges.models import ClipCache, audio_digest, load_voice_encoder, single_threaded

ENCODER_SR = 16000  # Resemblyzer's hparams.sampling_rate
_EMBEDDINGS = ClipCache(2048)


def embed(audio: np.ndarray, sr: int) -> np.ndarray:
    """Return the L2-normalised 256-d Resemblyzer embedding of `audio` (cached by content)."""
    from resemblyzer import preprocess_wav

    audio = check_audio(audio, sr, "speaker judge input")
    key = audio_digest(audio, sr)
    cached = _EMBEDDINGS.get(key)
    if cached is not None:
        return cached
    # Resample with soxr here: preprocess_wav would use librosa's (slower, numba JIT on first call).
    wav = preprocess_wav(resample(audio, sr, ENCODER_SR))  # volume-normalise, trim long silences
    if wav.size < ENCODER_SR // 10:
        raise AudioError(f"speaker judge: only {wav.size / ENCODER_SR:.2f} s of voiced audio after VAD trim")
    encoder = load_voice_encoder()
    with single_threaded():  # same embedding bits on any core count (byte-reproducible QC)
        e = np.asarray(encoder.embed_utterance(wav), dtype=np.float32)
    e = e / max(float(np.linalg.norm(e)), 1e-12)
    _EMBEDDINGS.put(key, e)
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
