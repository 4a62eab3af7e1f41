"""Any folder of audio plus one table: a TSV or CSV with columns path, speaker, text.

Optional columns: id, language, gender, split, content_id. `path` is relative to the
table's folder (or absolute). Without an `id` column the id is the path without extension.
"""

from __future__ import annotations

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

COLUMNS = ("path", "speaker", "text")


def find_table(root: Path) -> Path:
    """Return the single *.tsv or *.csv directly under `root`; ManifestError when none or several."""
    tables = sorted(p for p in root.iterdir() if p.suffix.lower() in (".tsv", ".csv") and p.is_file())
    if len(tables) != 1:
        found = ", ".join(p.name for p in tables) or "none"
        raise ManifestError(f"{root}: expected exactly one .tsv or .csv table (found {found}); "
                            f"name it with the option table=FILE, e.g. `intervox corpus prepare folder "
                            f"--root {root} --out OUT table={tables[0].name if tables else 'utts.tsv'}`")
    return tables[0]


def prepare(root: Path, out: Path, *, table: str | Path | None = None, language: str = "en",
            corpus: str | None = None) -> Path:
    """Write out/manifest.jsonl for an audio folder described by a TSV/CSV table; return its path."""
    root = require_root(root, "folder")
    table_path = find_table(root) if table is None else Path(table)
    if not table_path.is_absolute() and not table_path.exists():
        table_path = root / table_path
    rows = read_table(table_path)
    require_columns(table_path, rows, COLUMNS)
    corpus = corpus or root.absolute().name
    col = Collector("folder", root, out)
    for lineno, row in enumerate(rows, 2):  # line 1 is the header
        item = f"{table_path}:{lineno}"
        col.attempt(item, lambda row=row, item=item:
                    _utterance(row, item, table_path.parent, language, corpus))
    return col.finish(table=str(table_path))


def _utterance(row: dict, item: str, base: Path, language: str, corpus: str) -> Utterance:
    """Return the Utterance of one table row; ManifestError/AudioError name the row."""
    empty = [c for c in COLUMNS if not row.get(c)]
    if empty:
        raise ManifestError(f"{item}: empty {', '.join(empty)}")
    audio = Path(row["path"])
    audio = audio if audio.is_absolute() else base / audio
    header = audio_header(audio)
    return Utterance(
        id=row.get("id") or str(Path(row["path"]).with_suffix("")),
        audio=absolute(audio), speaker=row["speaker"], text=row["text"],
        language=row.get("language") or language, corpus=corpus,
        sample_rate=header.sample_rate, duration=header.duration,
        gender=norm_gender(row.get("gender")), content_id=row.get("content_id") or None,
        split=row.get("split") or None,
    )
