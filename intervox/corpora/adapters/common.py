"""Helpers every corpus adapter shares: audio headers, gender/split names, tables, quarantine.

An adapter walks its corpus layout and hands each input item to a `Collector`: a usable
item becomes an `Utterance`, an unusable one becomes a quarantine line with its reason.
`Collector.finish` writes `manifest.jsonl`, `quarantine.jsonl` and `prepare_summary.json`
and checks that nothing was lost: input = written + quarantined.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

# AudioHeader and audio_header live with the manifest (corpus validate checks audio too);
# re-exported: the adapters import them from here with the other helpers.
from intervox.corpora.manifest import AudioHeader as AudioHeader
from intervox.corpora.manifest import Utterance, path_problem, write_manifest
from intervox.corpora.manifest import audio_header as audio_header
from intervox.errors import IntervoxError, ManifestError

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
QUARANTINE = "quarantine.jsonl"
SUMMARY = "prepare_summary.json"


_GENDERS = {
    "m": "m", "male": "m", "man": "m", "male_masculine": "m",
    "f": "f", "female": "f", "woman": "f", "female_feminine": "f",
}


def norm_gender(value: str | None) -> str | None:
    """Return "m", "f" or None (unknown, other, not given) for a corpus's gender spelling."""
    if value is None:
        return None
    return _GENDERS.get(value.strip().lower())


def split_of_subset(subset: str) -> str:
    """Return train / validation / test for a subset name like "dev-clean" or "train-other-500"."""
    name = subset.lower()
    if name.startswith(("dev", "valid")):
        return "validation"
    if name.startswith(("test", "eval")):
        return "test"
    return "train"


def read_table(path: Path, delimiter: str | None = None, *, quoting: int = csv.QUOTE_MINIMAL) -> list[dict]:
    """Return the rows of a CSV/TSV file with a header line (TSV when the name ends in .tsv/.txt)."""
    problem = path_problem(path, "table")
    if problem:
        raise ManifestError(problem)
    if delimiter is None:
        delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    try:  # utf-8-sig: a BOM (Excel's "CSV UTF-8") must not become part of the first column's name
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f, delimiter=delimiter, quoting=quoting))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: not a readable {delimiter!r}-separated table ({exc})") from exc
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in rows]


def require_columns(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    """Raise ManifestError naming the table when any of `columns` is missing from its header."""
    have = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in have]
    if rows and missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(sorted(have))})")


def require_root(root: Path, kind: str) -> Path:
    """Return `root` as a Path, or raise ManifestError when it is not a directory."""
    root = Path(root)
    problem = path_problem(root, f"{kind} root", directory=True)
    if problem:
        raise ManifestError(problem)
    return root


class Collector:
    """Gathers the utterances and quarantine lines of one adapter run, then writes them."""

    def __init__(self, kind: str, root: Path, out: Path) -> None:
        self.kind, self.root, self.out = kind, Path(root), Path(out)
        self.utterances: list[Utterance] = []
        self.quarantined: list[dict] = []
        self._ids: dict[str, str] = {}

    def add(self, utt: Utterance, item: str) -> None:
        """Keep `utt` (from input `item`), quarantining it when its id is already taken."""
        if utt.id in self._ids:
            self.quarantine(item, f"duplicate utterance id '{utt.id}' (first from {self._ids[utt.id]})")
            return
        self._ids[utt.id] = item
        self.utterances.append(utt)

    def quarantine(self, item: str, reason: str) -> None:
        """Record one input item that is not written, with the reason."""
        self.quarantined.append({"item": item, "reason": reason, "stage": f"prepare:{self.kind}"})

    def attempt(self, item: str, build: Callable[[], Utterance | None]) -> None:
        """Call `build` and keep its utterance; an IntervoxError quarantines `item` with the message."""
        try:
            utt = build()
        except IntervoxError as exc:
            self.quarantine(item, str(exc))
            return
        if utt is not None:
            self.add(utt, item)

    def finish(self, **details: object) -> Path:
        """Write manifest, quarantine and summary under `out`; return the manifest path."""
        if not self.utterances and not self.quarantined:
            raise ManifestError(f"{self.root}: no {self.kind} items found (is this the corpus root?)")
        self.out.mkdir(parents=True, exist_ok=True)
        manifest = self.out / MANIFEST
        written = write_manifest(self.utterances, manifest)
        with (self.out / QUARANTINE).open("w", encoding="utf-8") as f:
            for entry in self.quarantined:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        summary = {
            "kind": self.kind, "root": str(self.root), "manifest": str(manifest),
            "input": written + len(self.quarantined), "written": written,
            "quarantined": len(self.quarantined),
            "speakers": len({u.speaker for u in self.utterances}),
            "splits": _counts(u.split or "" for u in self.utterances),
            **details,
        }
        (self.out / SUMMARY).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        log.info("%s: %d input = %d written + %d quarantined (%s)", self.kind, summary["input"], written,
                 len(self.quarantined), manifest)
        return manifest


def _counts(values: Iterator[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def absolute(path: Path) -> str:
    """Return the absolute path string the manifest stores (corpora stay where they are)."""
    return str(Path(path).absolute())
