"""A real-speech cohort from Debian's `ktuberling-data`: words said by KDE's volunteers.

KTuberling (a stamp toy) names its stamps aloud: /usr/share/ktuberling/sounds/<lang>/*.{ogg,wav,opus},
one voice per language folder, 22 languages, 8-44.1 kHz, 11-200 words each (about 1,600 clips
once the Serbian script variants, which hold the same files, are read once). No clip says what
another voice says, so it is no panel: it is the **cohort** `make demo` fits the subspaces'
cohort backend on (`intervox cohort RUN shards/ktuberling --split cohort --ridge 0.3`),
unlabelled, so that both splits of the dev panel can be reported with it and none of their clips
is used to fit it; and the real clips configs/train/default.yaml's cohort term trains on
(`data.cohort`).

It shares no voice with the dev panel as far as CAM++ can tell: each voice's centroid (mean of
its unit embeddings) has cosine <= 0.65 to every panel voice's, against 0.75-0.99 between two
halves of one voice's clips and up to 0.69 between two panel voices; the exception is Catalan
(0.71 to KLettres' Norwegian Bokmal, a test-split voice), which is left out (`EXCLUDED`).

Clips are written like the panel's (16 kHz mono FLAC, leading and trailing silence trimmed) in
the same `folder` corpus layout, split `cohort`; speaker = the language folder.
"""

from __future__ import annotations

from pathlib import Path

from intervox.corpora.devpanel import PanelItem, write_panel
from intervox.errors import ManifestError
from intervox.shards.write import file_sha256

KTUBERLING_ROOT = Path("/usr/share/ktuberling/sounds")
SPLIT = "cohort"
AUDIO_SUFFIXES = (".ogg", ".wav", ".opus")
# Voices left out, with why (CAM++ centroid cosines; see the module doc).
EXCLUDED = {"ca": "nearest of any voice to a dev-panel voice: CAM++ centroid cosine 0.71 to "
                   "KLettres nb (test)"}
SOURCES = {"ktuberling-data": {"path": str(KTUBERLING_ROOT),
                               "licence": "GPL-2+ (KDE KTuberling, Albert Astals Cid et al.)"}}


def ktuberling_items(root: Path, exclude: tuple[str, ...]) -> tuple[list[PanelItem], int]:
    """Return the cohort's items (each distinct audio file of each language folder) and the duplicates.

    Folders are read in sorted order, so of identical files the first folder's is kept
    (`sr` before `sr@latin`).
    """
    if not root.is_dir():
        raise ManifestError(f"{root}: no KTuberling sounds folder (is ktuberling-data installed?)")
    items, seen, duplicates = [], set(), 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in exclude):
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            digest = file_sha256(path)
            if digest in seen:
                duplicates += 1
                continue
            seen.add(digest)
            items.append(PanelItem(id=f"ktuberling/{folder.name}/{path.stem}", source=path,
                                   speaker=f"ktuberling:{folder.name}", text=path.stem.replace("_", " "),
                                   language=folder.name.split("@")[0], split=SPLIT,
                                   content_id=f"ktuberling:{folder.name}:{path.stem}"))
    if not items:
        raise ManifestError(f"{root}: no {'/'.join(AUDIO_SUFFIXES)} files in its language folders")
    return items, duplicates


def build_ktuberling(out: str | Path, *, root: Path = KTUBERLING_ROOT,
                     exclude: tuple[str, ...] = tuple(EXCLUDED)) -> Path:
    """Write the KTuberling cohort under `out` (audio/*.flac, panel.tsv, panel.json); return the table path.

    Resumable like the dev panel: clips already written are kept.
    """
    items, duplicates = ktuberling_items(Path(root), tuple(exclude))
    excluded = {lang: EXCLUDED.get(lang, "excluded by the caller") for lang in exclude}
    extra = {"excluded": excluded, "duplicate_files_skipped": duplicates}
    return write_panel(Path(out), items, SOURCES, extra)
