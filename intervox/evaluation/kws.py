"""Keyword spotting by linear probe: Speech Commands v0.01 12-class task, or any keyword split.

Speech Commands v0.01 (Warden 2018) as used by SUPERB: the ten command words, every other
word as `_unknown_`, and background-noise slices as `_silence_`; a file's split comes from
`validation_list.txt` / `testing_list.txt` (everything else is train). Feature clips of a
Speech Commands corpus carry `label12` and `split` in their JSON; the embedded `keywords`
split of intervox carries the keyword as its text, and its probe train/test split is made
by (source) speaker so that test voices are unseen by the probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intervox.errors import IntervoxError
from intervox.evaluation.probes import ProbeConfig, ProbeResult, group_folds, train_probe

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
CLASSES12 = (*COMMANDS, UNKNOWN, SILENCE)
BACKGROUND_DIR = "_background_noise_"
SC_SPLITS = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation",
             "test": "test", "testing": "test"}


def label12(word: str) -> str:
    """Return the 12-class label of a Speech Commands word (folder name)."""
    word = word.strip().lower()
    if word in COMMANDS:
        return word
    if word in (SILENCE, "silence", BACKGROUND_DIR):
        return SILENCE
    return UNKNOWN


def speech_commands_split(relpath: str, validation: set[str], testing: set[str]) -> str:
    """Return 'validation', 'test' or 'train' for a `word/file.wav` path, per the official lists."""
    if relpath in testing:
        return "test"
    if relpath in validation:
        return "validation"
    return "train"


def scan_speech_commands(root: str | Path) -> list[dict]:
    """Return `{"path", "word", "label12", "split"}` per WAV of a Speech Commands v0.01 folder.

    Background-noise files are listed once each with label `_silence_` and split 'train'
    (a corpus adapter cuts them into 1 s slices and spreads them over the splits).
    """
    root = Path(root)
    lists = {}
    for name in ("validation_list.txt", "testing_list.txt"):
        f = root / name
        if not f.is_file():
            raise IntervoxError(f"{root}: not a Speech Commands folder ({name} is missing)")
        lists[name] = {line.strip() for line in f.read_text().splitlines() if line.strip()}
    out = []
    for wav in sorted(root.glob("*/*.wav")):
        word = wav.parent.name
        rel = f"{word}/{wav.name}"
        split = "train" if word == BACKGROUND_DIR else speech_commands_split(
            rel, lists["validation_list.txt"], lists["testing_list.txt"])
        out.append({"path": rel, "word": word, "label12": label12(word), "split": split})
    return out


def keyword_label(meta: dict) -> str:
    """Return a clip's keyword class: its `label12` if present, else its spoken word, else its content id."""
    if meta.get("label12"):
        return str(meta["label12"])
    text = str(meta.get("text") or "").strip().lower().strip(".!?,")
    return text or str(meta.get("content"))


def is_speech_commands(metas: Sequence[dict]) -> bool:
    """True when every clip carries a 12-class label and a Speech Commands split."""
    return bool(metas) and all(m.get("label12") and str(m.get("split")) in SC_SPLITS for m in metas)


def probe_keywords(x: np.ndarray, metas: Sequence[dict], cfg: ProbeConfig = ProbeConfig(),
                   folds: int = 5, bootstrap: int = 200) -> ProbeResult:
    """Return the keyword probe's test accuracy and confusion matrix for embeddings `x` of clips `metas`.

    Speech Commands clips: train on 'train', test on 'test' (12 classes in the standard order).
    Other keyword clips: grouped cross-validation over speakers (grouped by source speaker, so
    an op copy or pseudo-speaker of a voice stays with it): every clip is tested once, by a
    probe that never saw its speaker, so all clips count (one point is visible with 100+
    clips). `extra["accuracy_ci"]` is a 95% bootstrap interval over speakers.
    """
    x = np.asarray(x)
    labels = np.array([keyword_label(m) for m in metas], dtype=object)
    if is_speech_commands(metas):
        split = np.array([SC_SPLITS[str(m["split"])] for m in metas])
        train, test = split == "train", split == "test"
        if not train.any() or not test.any():
            raise IntervoxError("Speech Commands probe: need clips in both the train and test splits")
        res = train_probe(x[train], list(labels[train]), x[test], list(labels[test]), cfg, classes=CLASSES12)
        res.extra["mode"] = "speech_commands_v0.01"
        return res
    groups = np.array([str(m.get("source_speaker") or m.get("speaker")) for m in metas], dtype=object)
    fold = group_folds(list(groups), folds, cfg.seed, salt="keywords")
    classes = sorted(set(labels))
    correct = np.zeros(len(x), dtype=bool)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    n_train, chance = [], []
    for k in range(int(fold.max()) + 1):
        test = fold == k
        res = train_probe(x[~test], list(labels[~test]), x[test], list(labels[test]), cfg, classes=classes)
        confusion += res.confusion
        correct[test] = res.extra["correct"]
        n_train.append(res.n_train)
        chance.append(res.chance * res.n_test)
    accuracy = float(correct.mean())
    ci = group_bootstrap_ci(correct, groups, bootstrap, cfg.seed)
    return ProbeResult(accuracy=accuracy, classes=classes, confusion=confusion, n_train=int(np.mean(n_train)),
                       n_test=len(x), chance=float(sum(chance) / len(x)),
                       extra={"mode": f"speaker_grouped_{int(fold.max()) + 1}_fold",
                              "n_speakers": len(set(groups)), "accuracy_ci": ci})


def group_bootstrap_ci(correct: np.ndarray, groups: np.ndarray, draws: int, seed: int) -> list[float]:
    """Return the 95% interval of accuracy over `draws` resamples of whole groups (speakers)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    hits = np.bincount(inverse, weights=correct.astype(float), minlength=len(uniq))
    sizes = np.bincount(inverse, minlength=len(uniq)).astype(float)
    rng = np.random.default_rng([seed, 1613])
    counts = rng.multinomial(len(uniq), np.full(len(uniq), 1.0 / len(uniq)), size=draws)
    acc = (counts @ hits) / np.maximum(counts @ sizes, 1.0)
    return [float(np.percentile(acc, 2.5)), float(np.percentile(acc, 97.5))]
