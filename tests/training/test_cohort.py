"""The cohort backend: content less what the speaker embedding predicts of it; speaker whitened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intervox.errors import TrainingError
from intervox.training.cohort import Cohort, fit_cohort_backend


def planted(rng: np.random.Generator, n_speakers: int, n_texts: int, leak: np.ndarray) -> tuple:
    """Speaker embeddings s (6-d: the cohort spans them); content = text code + leak @ s."""
    voices = rng.standard_normal((n_speakers, 6))
    texts = rng.standard_normal((n_texts, 24))
    spk, txt = np.meshgrid(np.arange(n_speakers), np.arange(n_texts), indexing="ij")
    spk, txt = spk.ravel(), txt.ravel()
    s = voices[spk] + 0.1 * rng.standard_normal((len(spk), 6))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    c = 0.3 * texts[txt] / np.linalg.norm(texts[txt], axis=1, keepdims=True) + s @ leak
    return s, c, spk, txt


def same_speaker_gap(c: np.ndarray, spk: np.ndarray, txt: np.ndarray) -> float:
    """Mean cosine of a speaker's two different texts minus that of two strangers' different texts."""
    e = c / np.linalg.norm(c, axis=1, keepdims=True)
    sim = e @ e.T
    other_text = txt[:, None] != txt[None, :]
    same = (spk[:, None] == spk[None, :]) & other_text
    diff = (spk[:, None] != spk[None, :]) & other_text
    return float(sim[same].mean() - sim[diff].mean())


def test_regression_fitted_on_other_speakers_removes_the_voice_and_keeps_the_words() -> None:
    rng = np.random.default_rng(0)
    leak = rng.standard_normal((6, 24)) * 0.1
    s_fit, c_fit, _, _ = planted(rng, 12, 10, leak)  # the cohort: other voices, other texts
    s, c, spk, txt = planted(rng, 6, 8, leak)
    reg = fit_cohort_backend(s_fit, c_fit, ridge=1e-4, source="planted")
    before, after = same_speaker_gap(c, spk, txt), same_speaker_gap(reg.content(s, c), spk, txt)
    assert before > 0.3 and abs(after) < 0.05 * before
    out = reg.content(s, c)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    sim = out @ out.T
    np.fill_diagonal(sim, -np.inf)
    sim[spk[:, None] == spk[None, :]] = -np.inf  # candidates: other speakers only
    assert np.mean(txt[sim.argmax(axis=1)] == txt) == 1.0  # every clip finds its text in another voice


def test_save_and_load_give_the_same_regression(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    s, c, _, _ = planted(rng, 5, 6, rng.standard_normal((6, 24)))
    reg = fit_cohort_backend(s, c, source="panel split dev", clip_hashes=("a1", "b2"))
    reg.save(tmp_path / "cohort.safetensors")
    back = Cohort.load(tmp_path / "cohort.safetensors")
    assert np.array_equal(back.weight, reg.weight) and np.array_equal(back.speaker_mean, reg.speaker_mean)
    assert np.array_equal(back.white_proj, reg.white_proj)
    assert (back.ridge, back.floor, back.clips, back.source, back.clip_hashes) == (
        reg.ridge, reg.floor, 30, "panel split dev", ("a1", "b2"))
    assert not (tmp_path / "cohort.safetensors.tmp").exists()


def test_bad_cohorts_and_inputs_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    s, c, _, _ = planted(rng, 5, 6, rng.standard_normal((6, 24)))
    with pytest.raises(TrainingError, match="10 clips; a speaker regression needs >= 20"):
        fit_cohort_backend(s[:10], c[:10], source="tiny")
    with pytest.raises(TrainingError, match="30 speaker but 29 content"):
        fit_cohort_backend(s, c[:29])
    with pytest.raises(TrainingError, match="ridge and floor must be > 0"):
        fit_cohort_backend(s, c, ridge=0.0)
    with pytest.raises(TrainingError, match="ridge and floor must be > 0"):
        fit_cohort_backend(s, c, floor=0.0)
    reg = fit_cohort_backend(s, c, source="x")
    with pytest.raises(TrainingError, match="maps 6 -> 24 dims, got 6 -> 8"):
        reg.content(s, c[:, :8])
    with pytest.raises(TrainingError, match="whitens 6 dims, got 5"):
        reg.speaker(s[:, :5])
    junk = tmp_path / "cohort.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(TrainingError, match="cohort.safetensors: not a readable cohort file"):
        Cohort.load(junk)


def test_speaker_whitening_gives_the_cohort_zero_mean_and_unit_covariance() -> None:
    rng = np.random.default_rng(4)
    s, c, _, _ = planted(rng, 40, 10, rng.standard_normal((6, 24)))
    reg = fit_cohort_backend(s, c, floor=1e-9)
    w = reg.speaker(s).astype(np.float64)
    np.testing.assert_allclose(w.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.cov(w.T), np.eye(6), atol=1e-3)
    assert reg.speaker(s).dtype == np.float32
