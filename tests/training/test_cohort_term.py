"""The loss's cohort terms on real clips: speaker removal from the content subspace, and real voices."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from intervox.config import load_config
from intervox.errors import ConfigError, TrainingError
from intervox.features.clips import clip_hash
from intervox.training import loop
from intervox.training.api import load_trained
from intervox.training.config import TrainConfig
from intervox.training.losses import cohort_decorrelation
from intervox.training.synthetic import write_synthetic_features

SMALL = ["model.input=weighted_sum", "model.normalize_layers=true", "model.projector=linear",
         "model.subspace_layer_ranges={speaker: [0, 1], content: [3, 4]}", "model.speaker_dim=8",
         "model.content_dim=8", "data.speakers_per_batch=4", "data.contents_per_batch=8",
         "optim.steps=30", "optim.max_lr=3e-3", "loss.cohort_clips=64"]
LAYERS, HIDDEN, CLIPS = 4, 16, 48


def test_the_term_is_zero_for_independent_subspaces_and_moves_only_content() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4096, 8, generator=g, requires_grad=True)
    c = torch.randn(4096, 8, generator=g, requires_grad=True)
    assert cohort_decorrelation(s, c).item() < 0.01  # ~ dims^2 / N of sampling noise
    leaked = torch.cat([s.detach()[:, :4] * 3, c[:, 4:]], dim=1)  # half the content is the speaker
    loss = cohort_decorrelation(s, leaked)
    assert loss.item() > 0.1
    loss.backward()
    assert s.grad is None or not s.grad.any()  # the speaker side is held fixed
    assert c.grad is not None and c.grad.abs().sum() > 0
    assert cohort_decorrelation(s, c + 5.0).item() == pytest.approx(cohort_decorrelation(s, c).item(),
                                                                     abs=0.02)  # centred: a shift is no leak


def _write_corpus(corpus: Path, speakers: list[str], rng: np.random.Generator) -> Path:
    """Write a folder corpus of 0.1 s noise clips in split `cohort`, clip i said by speakers[i]."""
    (corpus / "audio").mkdir(parents=True)
    rows = []
    for i, speaker in enumerate(speakers):
        noise = 0.1 * rng.standard_normal(1600).astype(np.float32)
        sf.write(str(corpus / "audio" / f"c{i}.wav"), noise, 16000)
        rows.append({"path": f"audio/c{i}.wav", "speaker": speaker, "text": f"w{i}", "split": "cohort"})
    with (corpus / "table.tsv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "speaker", "text", "split"], delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    return corpus


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthetic features, a folder corpus of real-looking clips and its pooled features, pre-cached.

    The cohort's pooled rows carry a shared nuisance direction in every layer that the
    synthetic training data never varies in: raw, it ties the content rows to the speaker rows.
    """
    root = tmp_path_factory.mktemp("cohort")
    features = root / "feats"
    write_synthetic_features(features, speakers=8, contents=16, layers=LAYERS, hidden=HIDDEN,
                             blocks_per_shard=2)
    rng = np.random.default_rng(0)
    corpus = _write_corpus(root / "corpus", [f"v{i % 6}" for i in range(CLIPS)], rng)
    nuisance = rng.standard_normal((CLIPS, 1, 1)) * rng.standard_normal((1, 1, HIDDEN)) * 4
    pooled = (rng.standard_normal((CLIPS, LAYERS + 1, HIDDEN)) + nuisance).astype(np.float16)
    return {"features": features, "corpus": corpus, "pooled": pooled}


def _cache(setup: dict, run_dir: Path) -> None:
    """Pre-fill RUN_DIR/cohort's pooled cache, as a first run with the (here synthetic) upstream would."""
    from intervox.corpora.adapters import folder
    from intervox.corpora.manifest import read_manifest

    manifest = folder.prepare(setup["corpus"], run_dir / "cohort" / "scratch")
    utts = read_manifest(manifest)
    hashes = [clip_hash(u, manifest.parent) for u in utts]
    np.savez(run_dir / "cohort" / "pooled-synthetic0.npz", hashes=np.array(hashes), values=setup["pooled"])


def _run(setup: dict, run_dir: Path, *overrides: str) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "cohort").mkdir(exist_ok=True)
    _cache(setup, run_dir)
    cfg = load_config(None, TrainConfig, [f"data.features=[{setup['features']}]", f"run_dir={run_dir}",
                                          f"data.cohort={setup['corpus']}", *SMALL, *overrides])
    return loop.train(cfg)[0]


def _speaker_gap(pooled: np.ndarray, run_dir: Path) -> float:
    """Mean cosine of same-speaker cohort pairs minus that of other-speaker pairs, speaker subspace."""
    z = load_trained(run_dir).project([pooled.astype(np.float32)], cohort=False)["speaker"]
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sim, speaker = z @ z.T, np.arange(CLIPS) % 6
    same = (speaker[:, None] == speaker[None, :]) & ~np.eye(CLIPS, dtype=bool)
    return float(sim[same].mean() - sim[speaker[:, None] != speaker[None, :]].mean())


def test_the_cohort_speaker_term_teaches_the_real_speakers(setup: dict, tmp_path: Path) -> None:
    """Cohort voices that differ along directions the synthetic grid never varies in get apart."""
    rng = np.random.default_rng(1)
    voices = rng.standard_normal((6, 1, HIDDEN))  # per cohort speaker, every layer
    pooled = (rng.standard_normal((CLIPS, LAYERS + 1, HIDDEN)) + 0.7 * voices[np.arange(CLIPS) % 6])
    voiced = {**setup, "pooled": pooled.astype(np.float16)}
    _run(voiced, tmp_path / "off", "loss.cohort_weight=1", "optim.max_lr=1e-2")
    _run(voiced, tmp_path / "on", "loss.cohort_weight=1", "loss.cohort_speaker_weight=1", "optim.max_lr=1e-2")
    off, on = _speaker_gap(pooled, tmp_path / "off"), _speaker_gap(pooled, tmp_path / "on")
    assert on > off + 0.1, (on, off)  # measured: 0.54 against 0.35
    with (tmp_path / "on" / "seed-0" / "train_log.csv").open() as f:
        logged = [float(r["cohort_speaker"]) for r in csv.DictReader(f)]
    assert len(logged) == 30 and logged[-1] < logged[0]
    with (tmp_path / "off" / "seed-0" / "train_log.csv").open() as f:
        assert {float(r["cohort_speaker"]) for r in csv.DictReader(f)} == {0.0}


def _leak(setup: dict, run_dir: Path) -> float:
    emb = load_trained(run_dir).project([setup["pooled"].astype(np.float32)], cohort=False)
    return float(cohort_decorrelation(torch.from_numpy(emb["speaker"]), torch.from_numpy(emb["content"])))


def test_the_term_decorrelates_the_content_subspace_on_the_cohort(setup: dict, tmp_path: Path) -> None:
    _run(setup, tmp_path / "off", "loss.cohort_weight=0", "optim.max_lr=1e-2")
    _run(setup, tmp_path / "on", "loss.cohort_weight=300", "optim.max_lr=1e-2")
    off, on = _leak(setup, tmp_path / "off"), _leak(setup, tmp_path / "on")
    assert on < 0.5 * off, (on, off)  # measured: 0.009 against 0.51
    with (tmp_path / "on" / "seed-0" / "train_log.csv").open() as f:
        logged = [float(r["cohort"]) for r in csv.DictReader(f)]
    assert len(logged) == 30 and logged[-1] < logged[0]
    with (tmp_path / "off" / "seed-0" / "train_log.csv").open() as f:
        assert {float(r["cohort"]) for r in csv.DictReader(f)} == {0.0}


def test_reading_the_cohort_leaves_the_model_start_alone(setup: dict, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Building an upstream to pool the cohort draws from torch's RNG: the projector's start must not."""
    _run(setup, tmp_path / "plain", "loss.cohort_weight=0", "optim.steps=2")
    real_inputs = loop.cohort_inputs

    def drawing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - a stand-in for an upstream's init
        torch.randn(1000)
        return real_inputs(*args, **kwargs)

    monkeypatch.setattr(loop, "cohort_inputs", drawing)
    _run(setup, tmp_path / "drawn", "loss.cohort_weight=0", "optim.steps=2")
    a = load_trained(tmp_path / "plain").project([setup["pooled"].astype(np.float32)], cohort=False)
    b = load_trained(tmp_path / "drawn").project([setup["pooled"].astype(np.float32)], cohort=False)
    np.testing.assert_array_equal(a["speaker"], b["speaker"])


def test_bad_cohort_settings_are_clear_errors(setup: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loss.cohort_weight: needs data.cohort"):
        load_config(None, TrainConfig, ["loss.cohort_weight=1"])
    with pytest.raises(ConfigError, match="loss.cohort_speaker_weight: needs data.cohort"):
        load_config(None, TrainConfig, ["loss.cohort_speaker_weight=1"])
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = load_config(None, TrainConfig, [f"data.features=[{setup['features']}]", f"run_dir={tmp_path / 'r'}",
                                          f"data.cohort={empty}", "loss.cohort_weight=1", *SMALL])
    with pytest.raises(TrainingError, match=r"data.cohort .*empty: not a folder corpus"):
        loop.train(cfg)
    cfg = load_config(None, TrainConfig, [f"data.features=[{setup['features']}]",
                                          f"run_dir={tmp_path / 'r2'}",
                                          f"data.cohort={setup['corpus']}", "data.cohort_split=dev",
                                          "loss.cohort_weight=1", *SMALL])
    with pytest.raises(TrainingError, match="0 clip\\(s\\) in split 'dev'"):
        loop.train(cfg)
    one_voice = _write_corpus(tmp_path / "one_voice", ["v0"] * 3, np.random.default_rng(0))
    cfg = load_config(None, TrainConfig, [f"data.features=[{setup['features']}]",
                                          f"run_dir={tmp_path / 'r3'}", f"data.cohort={one_voice}",
                                          "loss.cohort_speaker_weight=1", *SMALL])
    with pytest.raises(TrainingError, match=r"one_voice: loss.cohort_speaker_weight needs 2\+ speakers"):
        loop.train(cfg)
