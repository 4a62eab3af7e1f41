"""LibriTTS (and LibriTTS-R): root/<subset>/<spk>/<chapter>/<id>.wav + <id>.normalized.txt.

The text is the `.normalized.txt` next to the audio, falling back to `.original.txt`.
Gender comes from root/speakers.tsv (READER, GENDER, SUBSET, NAME) or, failing that, the
LibriSpeech-style root/SPEAKERS.txt. Split from the subset directory, as for LibriSpeech.
"""

from __future__ import annotations

from pathlib import Path

from intervox.corpora.adapters.common import (
    Collector,
    absolute,
    audio_header,
    norm_gender,
    read_table,
    require_root,
    split_of_subset,
)
from intervox.corpora.adapters.librispeech import read_speakers_txt
from intervox.corpora.manifest import Utterance
from intervox.errors import ManifestError


def read_genders(root: Path) -> dict[str, str | None]:
    """Return speaker -> gender from speakers.tsv, else SPEAKERS.txt / SPEAKERS.TXT (empty if none)."""
    tsv = root / "speakers.tsv"
    if tsv.is_file():
        return {r.get("READER", ""): norm_gender(r.get("GENDER")) for r in read_table(tsv)}
    for name in ("SPEAKERS.txt", "SPEAKERS.TXT"):
        if (root / name).is_file():
            return read_speakers_txt(root / name)
    return {}


def read_text(wav: Path) -> str:
    """Return the normalized (else original) transcript of `wav`; ManifestError names the file."""
    for suffix in (".normalized.txt", ".original.txt"):
        p = wav.with_suffix(suffix)
        if p.is_file():
            text = p.read_text(encoding="utf-8").strip()
            if text:
                return text
            raise ManifestError(f"{p}: transcript is empty")
    raise ManifestError(f"{wav}: no transcript ({wav.stem}.normalized.txt or .original.txt)")


def prepare(root: Path, out: Path, *, language: str = "en", corpus: str = "libritts") -> Path:
    """Write out/manifest.jsonl for a LibriTTS tree; return its path."""
    root = require_root(root, "LibriTTS")
    genders = read_genders(root)
    wavs = sorted(root.glob("*/*/*/*.wav"))
    nested = True
    if not wavs:  # root is one subset directory
        wavs, nested = sorted(root.glob("*/*/*.wav")), False
    col = Collector("libritts", root, out)
    for wav in wavs:
        subset = wav.parents[2].name if nested else root.name

        def build(wav=wav, subset=subset) -> Utterance:
            text = read_text(wav)
            header = audio_header(wav)
            speaker = wav.parents[1].name
            return Utterance(
                id=wav.stem, audio=absolute(wav), speaker=speaker, text=text, language=language,
                corpus=corpus, sample_rate=header.sample_rate, duration=header.duration,
                gender=genders.get(speaker), split=split_of_subset(subset), extra={"subset": subset},
            )

        col.attempt(str(wav), build)
    return col.finish()
