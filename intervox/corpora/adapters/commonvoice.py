"""Mozilla Common Voice: root/<lang>/{train,dev,test,validated}.tsv + root/<lang>/clips/*.mp3.

`root` is either a language folder (it has clips/) or a release folder holding several.
Columns used: client_id (speaker), path (clip name), sentence, gender, locale, sentence_id.
Language: the `language` option, else the row's locale, else the folder name.
Split: train.tsv -> train, dev.tsv -> validation, test.tsv -> test, validated.tsv ->
validated (only clips not already in train/dev/test: validated.tsv is their superset, so
a clip listed twice is one input item, not two).
Common Voice sentences are read by many speakers: content_id is `cv-<sentence_id>` when the
TSV has that column, else `cv-<lang>-` + a hash of the sentence text.
mp3 is read by libsndfile >= 1.1 (soundfile 0.12+).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from intervox.corpora.adapters.common import (
    Collector,
    absolute,
    audio_header,
    norm_gender,
    read_table,
    require_columns,
    require_root,
)
from intervox.corpora.manifest import Utterance
from intervox.errors import ManifestError

SPLITS = {"train": "train", "dev": "validation", "test": "test", "validated": "validated",
          "other": "other", "invalidated": "invalidated"}
COLUMNS = ("client_id", "path", "sentence")


def language_dirs(root: Path) -> list[Path]:
    """Return the language folders under `root` (or [root] when root itself has clips/)."""
    if (root / "clips").is_dir():
        return [root]
    dirs = sorted(p for p in root.iterdir() if (p / "clips").is_dir())
    if not dirs:
        raise ManifestError(f"{root}: no Common Voice language folder (a folder with clips/ and *.tsv)")
    return dirs


def content_id(row: dict, lang: str) -> str:
    """Return the content identity of a row: its sentence_id, else a hash of its sentence."""
    if row.get("sentence_id"):
        return f"cv-{row['sentence_id']}"
    return f"cv-{lang}-" + hashlib.sha1(row["sentence"].strip().encode("utf-8")).hexdigest()[:16]


def prepare(root: Path, out: Path, *, language: str | None = None,
            tsvs: tuple[str, ...] | list[str] = ("train", "dev", "test"),
            corpus: str = "commonvoice") -> Path:
    """Write out/manifest.jsonl for a Common Voice release (one or more languages); return its path."""
    root = require_root(root, "Common Voice")
    unknown = [t for t in tsvs if t not in SPLITS]
    if unknown:
        raise ManifestError(f"commonvoice: unknown tsv name(s) {unknown}; known: {', '.join(SPLITS)}")
    col = Collector("commonvoice", root, out)
    missing_tsvs = []
    for lang_dir in language_dirs(root):
        earlier: set[str] = set()  # clips of the TSVs already read
        for name in tsvs:
            tsv = lang_dir / f"{name}.tsv"
            if not tsv.is_file():
                missing_tsvs.append(str(tsv))
                continue
            # Sentences contain bare quotes: Common Voice TSVs are unquoted.
            rows = read_table(tsv, "\t", quoting=csv.QUOTE_NONE)
            require_columns(tsv, rows, COLUMNS)
            for lineno, row in enumerate(rows, 2):
                if row.get("path") in earlier:
                    continue  # validated.tsv repeats train/dev/test clips: the same item
                item = f"{tsv}:{lineno}"
                col.attempt(item, lambda row=row, item=item, lang_dir=lang_dir, split=SPLITS[name]:
                            _utterance(row, item, lang_dir, split, language, corpus))
            earlier.update(row.get("path", "") for row in rows)
    return col.finish(missing_tsvs=missing_tsvs)


def _utterance(row: dict, item: str, lang_dir: Path, split: str, language: str | None,
               corpus: str) -> Utterance:
    """Return the Utterance of one TSV row; ManifestError/AudioError name the row or clip."""
    empty = [c for c in COLUMNS if not row.get(c)]
    if empty:
        raise ManifestError(f"{item}: empty {', '.join(empty)}")
    lang = language or row.get("locale") or lang_dir.name
    clip = lang_dir / "clips" / row["path"]
    if not clip.suffix and not clip.exists():  # the first releases listed clip names without ".mp3"
        clip = clip.with_name(clip.name + ".mp3")
    header = audio_header(clip)
    extra = {k: row[k] for k in ("age", "accents", "accent", "variant", "sentence_domain") if row.get(k)}
    return Utterance(
        id=Path(row["path"]).stem, audio=absolute(clip), speaker=row["client_id"], text=row["sentence"],
        language=lang, corpus=corpus, sample_rate=header.sample_rate, duration=header.duration,
        gender=norm_gender(row.get("gender")), content_id=content_id(row, lang), split=split, extra=extra,
    )
