"""Quarantine: the items a run could not write, one JSON line each, sorted so reruns match.

Every planned item ends either in a shard or here, so `input = written + quarantined`
holds exactly; `reconcile` checks that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from intervox.errors import ShardError
from intervox.shards.write import atomic_write_bytes

QUARANTINE_FILE = "quarantine.jsonl"


@dataclass(frozen=True, order=True)
class QuarantineEntry:
    """One item not written: its key (or source id), split, why, and at which stage."""

    split: str
    item: str
    reason: str
    stage: str  # "source" (grid synthesis), "load", "check", "op", "encode", "qc", "shard"

    def to_dict(self) -> dict:
        return asdict(self)


def write_quarantine(entries: Iterable[QuarantineEntry], directory: str | Path) -> Path:
    """Write entries (sorted by split, item) to DIR/quarantine.jsonl atomically; return its path."""
    path = Path(directory) / QUARANTINE_FILE
    lines = [json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) + "\n" for e in sorted(entries)]
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))
    return path


def read_quarantine(directory: str | Path) -> list[QuarantineEntry]:
    """Return the entries of DIR/quarantine.jsonl (empty when the file does not exist)."""
    path = Path(directory) / QUARANTINE_FILE
    if not path.is_file():
        return []
    return [QuarantineEntry(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def reconcile(planned: int, written: int, quarantined: int) -> str:
    """Return the line `input N = written W + quarantined Q`; ShardError if it does not add up."""
    line = f"input {planned} = written {written} + quarantined {quarantined}"
    if planned != written + quarantined:
        raise ShardError(f"quarantine does not reconcile: {line} is false")
    return line
