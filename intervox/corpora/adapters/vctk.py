"""VCTK (VCTK-Corpus and VCTK-Corpus-0.92): wav48[_silence_trimmed]/<spk>/<file> + txt/<spk>/<id>.txt.

Files are `p225_001.wav` (old release) or `p225_001_mic1.flac` (0.92, two microphones; the
`mic` option picks "mic1", "mic2" or "both"; the other mic's files are skipped, and counted).
Gender and accent come from speaker-info.txt (IDs with or without the leading "p").

content_id: VCTK speakers read a shared set of sentences (the "Please call Stella"
elicitation paragraph and the Rainbow passage) under the same sentence number, but most
numbers are newspaper sentences that differ per speaker. So the number alone is not the
content: within each number, transcripts are grouped by normalised text (lower case, no
punctuation); the largest group gets `vctk-<num>` and any other text at that number gets
`vctk-<num>-<k>`. Equal content_id therefore always means equal (normalised) words;
`extra["parallel"]` is how many speakers share that text. (The same text under two
different numbers still gets two ids: VCTK does not renumber shared sentences.)
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from intervox.corpora.adapters.common import Collector, absolute, audio_header, norm_gender, require_root
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError, ManifestError

AUDIO_DIRS = ("wav48_silence_trimmed", "wav48", "wav")
MICS = ("mic1", "mic2", "both")


def read_speaker_info(path: Path) -> dict[str, dict]:
    """Return speaker ("p225") -> {"gender", "accent"} from speaker-info.txt (empty when absent)."""
    info: dict[str, dict] = {}
    if not path.is_file():
        return info
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        tokens = line.split()
        if len(tokens) < 3:
            continue
        spk = tokens[0] if not tokens[0].isdigit() else f"p{tokens[0]}"
        info[spk] = {"gender": norm_gender(tokens[2]), "accent": tokens[3] if len(tokens) > 3 else None}
    return info


def normalise_text(text: str) -> str:
    """Return `text` lower-cased with punctuation dropped and whitespace collapsed (for equality)."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def assign_content_ids(records: list[dict]) -> None:
    """Set record["content_id"] and record["parallel"] by sentence number + normalised text."""
    by_num: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in records:
        by_num[r["num"]][normalise_text(r["text"])].add(r["speaker"])
    ids: dict[tuple[str, str], tuple[str, int]] = {}
    for num, groups in by_num.items():
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        for k, (norm, speakers) in enumerate(ordered):
            ids[num, norm] = (f"vctk-{num}" if k == 0 else f"vctk-{num}-{k + 1}", len(speakers))
    for r in records:
        r["content_id"], r["parallel"] = ids[r["num"], normalise_text(r["text"])]


def prepare(root: Path, out: Path, *, mic: str = "mic1", audio_dir: str | None = None,
            language: str = "en", corpus: str = "vctk") -> Path:
    """Write out/manifest.jsonl for a VCTK tree; return its path."""
    root = require_root(root, "VCTK")
    if mic not in MICS:
        raise ConfigError(f"vctk: mic must be one of {', '.join(MICS)}, got {mic!r}")
    names = (audio_dir,) if audio_dir else AUDIO_DIRS
    wav_root = next((root / n for n in names if (root / n).is_dir()), None)
    if wav_root is None:
        raise ManifestError(f"{root}: no audio directory ({' or '.join(names)}) in the VCTK root")
    speakers = read_speaker_info(root / "speaker-info.txt")
    col = Collector("vctk", root, out)
    records, skipped = [], 0
    for path in sorted(wav_root.glob("*/*")):
        if path.suffix.lower() not in (".wav", ".flac"):
            continue
        parts = path.stem.split("_")
        file_mic = parts[2] if len(parts) > 2 else None
        if file_mic is not None and mic != "both" and file_mic != mic:
            skipped += 1
            continue
        if len(parts) < 2:
            col.quarantine(str(path), f"{path}: name is not <speaker>_<number>[_micN]")
            continue
        txt = root / "txt" / parts[0] / f"{parts[0]}_{parts[1]}.txt"
        text = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else ""
        if not text:
            col.quarantine(str(path), f"{path}: no transcript {txt}")
            continue
        records.append({"path": path, "speaker": parts[0], "num": parts[1], "mic": file_mic, "text": text})
    assign_content_ids(records)
    for r in records:

        def build(r=r) -> Utterance:
            header = audio_header(r["path"])
            spk = speakers.get(r["speaker"], {})
            extra = {"sentence": r["num"], "parallel": r["parallel"], "mic": r["mic"],
                     "accent": spk.get("accent")}
            return Utterance(
                id=r["path"].stem, audio=absolute(r["path"]), speaker=r["speaker"], text=r["text"],
                language=language, corpus=corpus, sample_rate=header.sample_rate, duration=header.duration,
                gender=spk.get("gender"), content_id=r["content_id"],
                extra={k: v for k, v in extra.items() if v is not None},
            )

        col.attempt(str(r["path"]), build)
    return col.finish(audio_dir=wav_root.name, mic=mic, skipped_other_mic=skipped)
