"""Linear probes and keyword spotting on Speech Commands v0.01-shaped fixtures."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from intervox.errors import IntervoxError
from intervox.evaluation.kws import CLASSES12, label12, probe_keywords, scan_speech_commands
from intervox.evaluation.probes import ProbeConfig, group_folds, split_by_group, train_probe


def clusters(rng, n_classes, n_per, dim=12, spread=0.3):
    centres = rng.standard_normal((n_classes, dim)) * 3
    x = np.repeat(centres, n_per, axis=0) + spread * rng.standard_normal((n_classes * n_per, dim))
    y = [f"c{i}" for i in range(n_classes) for _ in range(n_per)]
    return x, y


def test_probe_learns_separable_classes_and_is_deterministic():
    rng = np.random.default_rng(0)
    x, y = clusters(rng, 4, 30)
    xt, yt = clusters(np.random.default_rng(0), 4, 10)  # same centres, other noise draws
    cfg = ProbeConfig(epochs=30, seed=1)
    res = train_probe(x, y, xt + 0.1, yt, cfg)
    assert res.accuracy == 1.0 and res.confusion.trace() == 40 and res.chance == 0.25
    assert train_probe(x, y, xt + 0.1, yt, cfg).confusion.tolist() == res.confusion.tolist()
    # Random labels: no better than chance-ish on fresh data.
    noise = train_probe(rng.standard_normal((200, 12)), list(rng.choice(["a", "b"], 200)),
                        rng.standard_normal((200, 12)), list(rng.choice(["a", "b"], 200)), cfg)
    assert 0.3 < noise.accuracy < 0.7


def test_probe_errors_name_the_problem():
    with pytest.raises(IntervoxError, match="equal width"):
        train_probe(np.zeros((3, 2)), ["a"] * 3, np.zeros((3, 4)), ["a"] * 3)
    with pytest.raises(IntervoxError, match="not one of"):
        train_probe(np.zeros((2, 2)), ["a", "b"], np.zeros((1, 2)), ["z"], classes=["a", "b"])


def test_split_by_group_keeps_groups_whole():
    groups = [f"s{i % 7}" for i in range(70)]
    test = split_by_group(groups, 0.3, seed=0)
    train_groups = {g for g, t in zip(groups, test, strict=True) if not t}
    test_groups = {g for g, t in zip(groups, test, strict=True) if t}
    assert not train_groups & test_groups and len(test_groups) == 2
    assert (split_by_group(groups, 0.3, seed=0) == test).all()
    with pytest.raises(IntervoxError):
        split_by_group(["one"] * 5, 0.3, seed=0)


def test_label12_mapping():
    assert [label12(w) for w in ("yes", "Go", "bed", "marvin", "_background_noise_", "_silence_")] == [
        "yes", "go", "_unknown_", "_unknown_", "_silence_", "_silence_"]
    assert CLASSES12[:10] == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    assert len(CLASSES12) == 12


def test_scan_speech_commands_v001_layout(tmp_path, speech):
    root = tmp_path / "speech_commands_v0.01"
    files = ["yes/0a7c2a8d_nohash_0.wav", "yes/0b09edd3_nohash_0.wav", "bed/0a7c2a8d_nohash_0.wav",
             "stop/1a2b3c4d_nohash_1.wav", "_background_noise_/white_noise.wav"]
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(speech.path, root / f)
    (root / "validation_list.txt").write_text("yes/0b09edd3_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("bed/0a7c2a8d_nohash_0.wav\nstop/1a2b3c4d_nohash_1.wav\n")
    got = {e["path"]: (e["label12"], e["split"]) for e in scan_speech_commands(root)}
    assert got == {"yes/0a7c2a8d_nohash_0.wav": ("yes", "train"),
                   "yes/0b09edd3_nohash_0.wav": ("yes", "validation"),
                   "bed/0a7c2a8d_nohash_0.wav": ("_unknown_", "test"),
                   "stop/1a2b3c4d_nohash_1.wav": ("stop", "test"),
                   "_background_noise_/white_noise.wav": ("_silence_", "train")}
    (root / "testing_list.txt").unlink()
    with pytest.raises(IntervoxError, match="testing_list.txt"):
        scan_speech_commands(root)


def test_speech_commands_probe_uses_official_splits_and_12_classes():
    rng = np.random.default_rng(4)
    centres = {c: rng.standard_normal(8) * 3 for c in CLASSES12}
    metas, rows = [], []
    for split, n in (("train", 6), ("validation", 2), ("testing", 3)):
        for c in CLASSES12:
            for _ in range(n):
                metas.append({"label12": c, "split": split, "speaker": "x"})
                rows.append(centres[c] + 0.2 * rng.standard_normal(8))
    res = probe_keywords(np.array(rows), metas, ProbeConfig(seed=0))
    assert res.classes == list(CLASSES12) and res.confusion.shape == (12, 12)
    assert res.n_train == 72 and res.n_test == 36 and res.accuracy == 1.0
    assert res.extra["mode"] == "speech_commands_v0.01"


def keyword_clips(n_voices: int, words: list[str], seed: int, voice_scale: float = 0.5):
    rng = np.random.default_rng(seed)
    metas, rows = [], []
    for s in range(n_voices):
        voice = voice_scale * rng.standard_normal(8)
        for w in words:
            for _ in range(5):
                metas.append({"speaker": f"v{s}~p1" if s % 2 else f"v{s}", "source_speaker": f"v{s}",
                              "text": w.capitalize() + ".", "content": f"kw-{w}"})
                rows.append(voice + 3 * (np.arange(8) == words.index(w)) + 0.1 * rng.standard_normal(8))
    return np.array(rows), metas


def test_keyword_probe_tests_every_clip_on_unseen_voices():
    words = ["yes", "no", "up"]
    x, metas = keyword_clips(8, words, seed=5, voice_scale=0.2)
    res = probe_keywords(x, metas, ProbeConfig(seed=0), folds=4)
    assert res.classes == sorted(words) and res.extra["mode"] == "speaker_grouped_4_fold"
    assert res.n_test == 120 and res.n_train == 90  # every clip tested once; 6 of 8 voices train each fold
    assert res.confusion.sum() == 120 and res.extra["n_speakers"] == 8
    assert res.accuracy > 0.8
    lo, hi = res.extra["accuracy_ci"]
    assert lo <= res.accuracy <= hi


def test_keyword_folds_hold_whole_speakers():
    """Each speaker's clips (its op copies included) are tested by a probe that never trained on them."""
    groups = [f"v{i % 7}" for i in range(70)]
    fold = group_folds(groups, 5, seed=0, salt="keywords")
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]
    for g in set(groups):
        assert len({f for f, h in zip(fold, groups, strict=True) if h == g}) == 1
    sizes = np.bincount(fold) // 10  # groups per fold: 7 dealt over 5 folds
    assert sorted(sizes) == [1, 1, 1, 2, 2]
    assert np.array_equal(fold, group_folds(groups, 5, seed=0, salt="keywords"))
    assert len(set(group_folds(["a", "b", "c"], 5, seed=0))) == 3  # at most one fold per group


def test_keyword_probe_needs_two_speakers():
    x, metas = keyword_clips(1, ["yes", "no"], seed=1)
    with pytest.raises(IntervoxError, match="cross-validate over 1 group"):
        probe_keywords(x, metas, ProbeConfig(seed=0))
