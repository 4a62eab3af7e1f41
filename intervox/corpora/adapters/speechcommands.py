"""Google Speech Commands v0.01 / v0.02: root/<word>/<speaker>_nohash_<n>.wav.

Split: validation_list.txt -> validation, testing_list.txt -> test, else train (when a list
file is absent, the dataset's own hash rule `which_set` gives the same assignment).
speaker = the hash prefix, text = the word, content_id = "kw-<word>", and
extra["label12"] is the word when it is one of the ten commands, else "_unknown_" (the
standard 12-class protocol of Warden 2018 / the TensorFlow speech_commands example).

`_silence_` items: the files in _background_noise_ cut into 1 s windows (offset/duration
into the noise file, `silence_step` seconds apart). To keep splits disjoint in audio, the
first 80 % of each noise file's windows are train, the next 10 % validation, the last 10 %
test (the 80/10/10 proportions of the word lists). label12 = "_silence_", text "_silence_".

Version: "v0.02" when any word only v0.02 has is present, "v0.01" when exactly the 30
v0.01 words are, else None (a partial copy).
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from intervox.corpora.adapters.common import Collector, absolute, audio_header, require_root
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError, IntervoxError, ManifestError

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
WORDS_V001 = frozenset(COMMANDS + (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow"))
ONLY_V002 = frozenset(("backward", "follow", "forward", "learn", "visual"))
NOISE_DIR = "_background_noise_"
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # from the dataset's README / TF input_data.py


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """Return "validation", "test" or "train" for a file by the dataset's speaker-hash rule."""
    hash_name = re.sub(r"_nohash_.*$", "", Path(filename).name)
    hashed = int(hashlib.sha1(hash_name.encode("utf-8")).hexdigest(), 16)
    percentage = (hashed % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def detect_version(words: set[str]) -> str | None:
    """Return "v0.02", "v0.01" or None from the set of word folders present."""
    if words & ONLY_V002:
        return "v0.02"
    return "v0.01" if words == WORDS_V001 else None


def read_list(path: Path) -> set[str] | None:
    """Return the relative paths ("word/file.wav") in a split list, or None when it is absent."""
    if not path.is_file():
        return None
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def label12(word: str) -> str:
    """Return the 12-class label of a word: the word for the ten commands, else "_unknown_"."""
    return word if word in COMMANDS else UNKNOWN


def prepare(root: Path, out: Path, *, silence: bool = True, silence_step: float = 1.0,
            language: str = "en", corpus: str = "speechcommands") -> Path:
    """Write out/manifest.jsonl for a Speech Commands tree (words + _silence_ slices); return its path."""
    root = require_root(root, "Speech Commands")
    if silence_step <= 0:
        raise ConfigError(f"speechcommands: silence_step must be > 0 seconds, got {silence_step}")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if not words:
        raise ManifestError(f"{root}: no word folders (expected root/<word>/<speaker>_nohash_<n>.wav)")
    version = detect_version(set(words))
    lists = {"validation": read_list(root / "validation_list.txt"),
             "test": read_list(root / "testing_list.txt")}
    col = Collector("speechcommands", root, out)
    present: set[str] = set()
    for word in words:
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            present.add(rel)
            col.attempt(str(wav), lambda wav=wav, word=word, rel=rel:
                        _word_utterance(wav, word, _split(rel, lists), version, language, corpus))
    for split, listed in lists.items():
        for rel in sorted((listed or set()) - present):
            col.quarantine(str(root / rel), f"{root / rel}: in the {split} list but the file does not exist")
    if silence:
        for noise in sorted((root / NOISE_DIR).glob("*.wav")):
            _silence_slices(col, noise, silence_step, version, language, corpus)
    return col.finish(version=version, words=len(words),
                      lists={k: v is not None for k, v in lists.items()})


def _split(rel: str, lists: dict[str, set[str] | None]) -> str:
    """Return the split of "word/file.wav": from the lists, by `which_set` where a list is absent."""
    for split, listed in lists.items():
        if listed is not None and rel in listed:
            return split
    if any(listed is None for listed in lists.values()):
        hashed = which_set(rel)
        if lists.get(hashed, set()) is None:
            return hashed
    return "train"


def _word_utterance(wav: Path, word: str, split: str, version: str | None, language: str,
                    corpus: str) -> Utterance:
    if "_nohash_" not in wav.name:
        raise ManifestError(f"{wav}: name is not <speaker>_nohash_<n>.wav")
    header = audio_header(wav)
    extra = {"label12": label12(word), **({"version": version} if version else {})}
    return Utterance(
        id=f"{word}/{wav.stem}", audio=absolute(wav), speaker=wav.name.split("_nohash_")[0], text=word,
        language=language, corpus=corpus, sample_rate=header.sample_rate, duration=header.duration,
        content_id=f"kw-{word}", split=split, extra=extra,
    )


def _silence_slices(col: Collector, noise: Path, step: float, version: str | None, language: str,
                    corpus: str) -> None:
    """Add the 1 s windows of one background-noise file (or quarantine the file)."""
    try:
        header = audio_header(noise)
    except IntervoxError as exc:
        col.quarantine(str(noise), str(exc))
        return
    n = int(math.floor((header.duration - 1.0) / step)) + 1 if header.duration >= 1.0 else 0
    if n == 0:
        col.quarantine(str(noise), f"{noise}: background noise shorter than 1 s ({header.duration:.3f} s)")
        return
    for k in range(n):
        frac = k / n
        split = "train" if frac < 0.8 else "validation" if frac < 0.9 else "test"
        extra = {"label12": SILENCE, "noise_file": noise.name, **({"version": version} if version else {})}
        utt = Utterance(
            id=f"{SILENCE}/{noise.stem}/{k:04d}", audio=absolute(noise), speaker=f"noise:{noise.stem}",
            text=SILENCE, language=language, corpus=corpus, sample_rate=header.sample_rate,
            offset=round(k * step, 6), duration=1.0, content_id=f"kw-{SILENCE}", split=split, extra=extra,
        )
        col.add(utt, f"{noise}@{k * step:.3f}s")
