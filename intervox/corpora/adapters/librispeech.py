"""LibriSpeech: root/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac + <spk>-<chapter>.trans.txt.

Gender comes from root/SPEAKERS.TXT when present (";ID |SEX| SUBSET |MINUTES| NAME").
The split is derived from the subset directory (train-* / dev-* / test-*); the subset name
is kept in `extra["subset"]`. Input items are every audio file and every transcript line:
audio without a line and lines without audio are both quarantined.
"""

from __future__ import annotations

from pathlib import Path

from intervox.corpora.adapters.common import (
    Collector,
    absolute,
    audio_header,
    norm_gender,
    require_root,
    split_of_subset,
)
from intervox.corpora.manifest import Utterance

AUDIO_EXTS = (".flac", ".wav")


def read_speakers_txt(path: Path) -> dict[str, str | None]:
    """Return speaker -> "m"/"f"/None from a LibriSpeech-style SPEAKERS.TXT (pipe-separated)."""
    genders: dict[str, str | None] = {}
    if not path.is_file():
        return genders
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 2 and fields[0]:
            genders[fields[0]] = norm_gender(fields[1])
    return genders


def chapter_dirs(root: Path) -> list[tuple[str, Path]]:
    """Return (subset, chapter dir) pairs; `root` may be the corpus root or one subset directory.

    A chapter is any folder at the right depth with a transcript or audio, so that audio
    whose transcript file is missing is quarantined rather than never seen.
    """
    for depth, nested in (("*/*/*/", True), ("*/*/", False)):
        found = sorted({p.parent for pat in ("*.trans.txt", *(f"*{e}" for e in AUDIO_EXTS))
                        for p in root.glob(depth + pat)})
        if found:
            return [(p.parent.parent.name if nested else root.name, p) for p in found]
    return []


def read_transcripts(path: Path) -> dict[str, str]:
    """Return utterance id -> text from a `<spk>-<chapter>.trans.txt` ("ID TEXT" lines)."""
    texts: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        uid, _, text = line.strip().partition(" ")
        if uid:
            texts[uid] = text.strip()
    return texts


def prepare(root: Path, out: Path, *, language: str = "en", corpus: str = "librispeech") -> Path:
    """Write out/manifest.jsonl for a LibriSpeech tree; return its path."""
    root = require_root(root, "LibriSpeech")
    genders = read_speakers_txt(root / "SPEAKERS.TXT")
    col = Collector("librispeech", root, out)
    for subset, chapter in chapter_dirs(root):
        texts: dict[str, str] = {}
        for trans in sorted(chapter.glob("*.trans.txt")):
            texts.update(read_transcripts(trans))
        audio = {p.stem: p for p in sorted(chapter.iterdir()) if p.suffix.lower() in AUDIO_EXTS}
        for uid in sorted(set(texts) | set(audio)):
            if uid not in audio:
                col.quarantine(f"{chapter}/{uid}", f"transcript line '{uid}' in {chapter} has no audio file")
                continue
            if not texts.get(uid):
                col.quarantine(str(audio[uid]), f"{audio[uid]}: no transcript line in {chapter}/*.trans.txt")
                continue

            def build(uid=uid, subset=subset, wav=audio[uid], text=texts[uid]) -> Utterance:
                header = audio_header(wav)
                speaker = uid.split("-")[0]
                return Utterance(
                    id=uid, audio=absolute(wav), speaker=speaker, text=text,
                    language=language, corpus=corpus, sample_rate=header.sample_rate,
                    duration=header.duration, gender=genders.get(speaker),
                    split=split_of_subset(subset), extra={"subset": subset},
                )

            col.attempt(str(audio[uid]), build)
    return col.finish(speakers_file=(root / "SPEAKERS.TXT").is_file())
