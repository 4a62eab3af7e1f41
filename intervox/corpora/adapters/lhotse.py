"""A lhotse CutSet JSONL(.gz) as a corpus: `root` is the cut file or a folder of cuts*.jsonl[.gz].

Each MonoCut with one speaker, text and a file source becomes one utterance (offset =
cut start, duration = cut duration); anything else is quarantined with the reason. Relative
audio paths are resolved against `audio_root` (default: the cut file's folder).
"""

from __future__ import annotations

from pathlib import Path

from intervox.corpora.adapters.common import Collector
from intervox.corpora.lhotse_io import cut_to_utterance, iter_cuts
from intervox.errors import ManifestError


def cut_files(root: Path) -> list[Path]:
    """Return the cut files named by `root` (a file, or the cuts*.jsonl[.gz] in a folder)."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ManifestError(f"{root}: lhotse cut set (file or folder) does not exist")
    files = sorted(p for p in root.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz")) and "cuts" in p.name)
    if not files:
        raise ManifestError(f"{root}: no cuts*.jsonl or cuts*.jsonl.gz file in this folder")
    return files


def prepare(root: Path, out: Path, *, audio_root: str | Path | None = None, language: str = "en",
            corpus: str = "lhotse") -> Path:
    """Write out/manifest.jsonl from a lhotse CutSet; return its path."""
    root = Path(root)
    files = cut_files(root)
    col = Collector("lhotse", root, out)
    for path in files:
        base = Path(audio_root) if audio_root else path.parent
        for where, cut in iter_cuts(path, on_bad_line=col.quarantine):
            col.attempt(where, lambda cut=cut, where=where, base=base:
                        cut_to_utterance(cut, where, base, language=language, corpus=corpus))
    return col.finish(files=[str(p) for p in files])
