"""Quarantine: the items a run could not write, one JSON line each, sorted so reruns match.

Every planned item ends either in a shard or here, so `input = written + quarantined`
holds exactly; `reconcile` checks that.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from intervox.errors import QuarantineError, ShardError
from intervox.shards import storage
from intervox.shards.storage import Location
from intervox.shards.write import atomic_write_bytes

QUARANTINE_FILE = "quarantine.jsonl"


@dataclass(frozen=True, order=True)
class QuarantineEntry:
    """One item not written: its key (or source id), split, why, and at which stage."""

    split: str
    item: str
    reason: str
    stage: str  # "synth" (grid), "prepare:KIND" (corpus prepare), "load", "check", "op", "encode", "qc"

    def to_dict(self) -> dict:
        return asdict(self)


def write_quarantine(entries: Iterable[QuarantineEntry], directory: Location) -> Location:
    """Write entries (sorted by split, item) to DIR/quarantine.jsonl atomically; return its path."""
    path = storage.join(directory, QUARANTINE_FILE)
    lines = [json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) + "\n" for e in sorted(entries)]
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))
    return path


def read_quarantine(directory: Location) -> list[QuarantineEntry]:
    """Return the entries of DIR/quarantine.jsonl (empty when the file does not exist)."""
    try:
        text = storage.read_bytes(storage.join(directory, QUARANTINE_FILE)).decode("utf-8")
    except FileNotFoundError:
        return []
    return [QuarantineEntry(**json.loads(line)) for line in text.splitlines() if line.strip()]


def reconcile(planned: int, written: int, quarantined: int) -> str:
    """Return the line `input N = written W + quarantined Q`; ShardError if it does not add up."""
    line = f"input {planned} = written {written} + quarantined {quarantined}"
    if planned != written + quarantined:
        raise ShardError(f"quarantine does not reconcile: {line} is false")
    return line


def reason_kind(entry: QuarantineEntry) -> str:
    """Return `stage: reason` without its item-specific parts, so alike reasons count together.

    Messages name their item first ("PATH: is silent", "KEY: noise failed: ..."): that prefix
    goes, and numbers become N ("too short (N s < N s)").
    """
    head, sep, tail = entry.reason.partition(": ")
    reason = tail if sep and " " not in head else entry.reason
    reason = re.sub(r"\d+(\.\d+)?", "N", reason)
    return f"{entry.stage}: {reason[:100]}"


def check_quarantine_fraction(
    entries: Sequence[QuarantineEntry], planned: int, max_fraction: float, where: str
) -> None:
    """Raise QuarantineError naming the top reasons when bad input exceeds `max_fraction` of `planned`.

    QC rejections (stage "qc") do not count: they are the filter doing its job, and the
    validity table reports them.
    """
    bad = [e for e in entries if e.stage != "qc"]
    if not planned or len(bad) <= max_fraction * planned:
        return
    top = Counter(reason_kind(e) for e in bad).most_common(5)
    reasons = "; ".join(f"{n} x {r}" for r, n in top)
    raise QuarantineError(
        f"{where}: {len(bad)} of {planned} input items quarantined ({len(bad) / planned:.1%} > "
        f"max_quarantine_fraction {max_fraction}); top reasons: {reasons} (all in quarantine.jsonl)"
    )
